"""`python -m harness COMMAND ...`: one entry point for every tool of the project."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import IO, NoReturn

from harness.text import one_line

EXIT_OK, EXIT_STOPPED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED, EXIT_SIGPIPE = 128 + 2, 128 + 13  # as a shell reports a process ended by SIGINT, SIGPIPE

# Commands implemented in other packages: (module, help).
_DELEGATED = {
    "scenarios": ("harness.scenarios.cli", "run the world-switch scenarios and decide the claims"),
    "explore": ("harness.scenarios.explore_cli", "an IRQ/FIQ/SError at every instruction boundary of the world switch"),
    "fidelity": ("harness.fidelity.cli", "compare the board with qemu-system-aarch64"),
    "debug": ("harness.debugger.cli", "interactive single-step debugger"),
    "gdbserver": ("harness.debugger.gdbcli", "GDB remote stub for gdb-multiarch"),
    "selftest": ("harness.selftest", "run the bare-metal exception tests in asm/tests"),
    "build": ("harness.build", "write an ELF with symbols and DWARF lines (a .S, or a scenario's program)"),
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse for every command here: a usage error is one line and exit status 2, like every
    other bad input (argparse's own prints the usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, one_line(f"{self.prog}: {message} (--help for usage)") + "\n")


def _int(text: str) -> int:
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _positive(text: str) -> int:
    n = _int(text)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of instructions, not {text!r}")
    return n


def jobs_arg(text: str) -> int:
    """argparse type of -j N (scenarios, explore): a number of worker processes, at least 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of worker processes, at least 1")
    return n


def load_addr_arg(text: str) -> int:
    """argparse type of --load-addr (run, debug, gdbserver): an address in RAM, 4-byte aligned."""
    from harness.memmap import RAM_BASE, RAM_END

    a = _int(text)
    if a % 4:
        raise argparse.ArgumentTypeError(f"{a:#x} is not 4-byte aligned (the PC starts there)")
    if not RAM_BASE <= a < RAM_END:
        raise argparse.ArgumentTypeError(f"{a:#x} is outside RAM {RAM_BASE:#x}..{RAM_END:#x}")
    return a


def add_load_addr(ap: argparse.ArgumentParser) -> None:
    """The --load-addr option, as every command that loads a program takes it."""
    ap.add_argument("--load-addr", type=load_addr_arg,
                    help="where a flat .bin is loaded, or a .S placed (default 0x40080000); an ELF's headers place it")


def define_arg(item: str) -> tuple[str, int | str]:
    """argparse type of -D NAME[=VALUE] (run, build): (NAME, an int where VALUE is one, else VALUE)."""
    from harness.asm.preprocess import DEFINE_NAME

    name, _, value = item.partition("=")
    if not DEFINE_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(f"{item!r}: NAME must be an identifier (NAME[=VALUE])")
    if any(c in value for c in "\n\r\0"):
        raise argparse.ArgumentTypeError(f"{item!r}: VALUE must be one line")
    try:
        return name, int(value or "1", 0)
    except ValueError:
        return name, value


def _output(path: str | None, what: str) -> IO[str] | None:
    """Open an output file before the run, so a bad path is bad input, not a failure at the end."""
    if path is None:
        return None
    if Path(path).is_dir():
        raise OSError(f"{what} {path}: is a directory")
    try:
        return open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by the caller
    except OSError as e:
        raise OSError(f"{what} {path}: {e.strerror or e}") from None


UART_CHUNK = 1 << 16


class _Uart:
    """Board UART output to stdout, in chunks of UART_CHUNK bytes (a write and flush per byte made
    a 25 MB loop take 91 s; sys.stdout.buffer does not buffer under PYTHONUNBUFFERED or -u), at
    each newline on a terminal, and at the end. A reader that goes away (`| head`) ends the run
    quietly, as SIGPIPE would."""

    def __init__(self) -> None:
        self.out = sys.stdout.buffer
        self.tty = sys.stdout.isatty()
        self.pending = bytearray()
        self.closed = False
        self.board = None

    def write(self, b: bytes) -> None:
        if self.closed:
            return
        self.pending += b
        if len(self.pending) >= UART_CHUNK or (self.tty and b == b"\n"):
            self.flush()

    def flush(self) -> None:
        if self.closed:
            return
        try:
            self.out.write(self.pending)
            self.out.flush()
        except BrokenPipeError:
            self._reader_gone()
        self.pending.clear()

    def _reader_gone(self) -> None:
        self.closed = True
        # Python would report the broken pipe again when it flushes stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        if self.board is not None:
            self.board.interrupt()


def _run_parser() -> argparse.ArgumentParser:
    from harness.machine.board import DEFAULT_MAX_INSNS

    ap = ArgumentParser(prog="python -m harness run", description="Run an AArch64 program on the emulated board.")
    ap.add_argument("program", help=".S (assembled by the harness), .elf, or .bin with --load-addr")
    ap.add_argument("--cpu", choices=("max", "a57"), default="max", help="max: PAN/UAO/VHE; a57: v8.0, none of them")
    ap.add_argument("--el", type=int, choices=(1, 2), default=2, help="exception level at reset (default EL2, as QEMU)")
    ap.add_argument("--max-insns", type=_positive, default=DEFAULT_MAX_INSNS, help="instruction budget (default 50 million)")
    add_load_addr(ap)
    ap.add_argument("--events", metavar="FILE", help="write every event as JSON lines")
    ap.add_argument("--trace-insns", metavar="FILE", help="write an instruction trace (slow: a hook per instruction)")
    ap.add_argument("-D", dest="defines", type=define_arg, action="append", default=[], metavar="NAME[=VALUE]",
                    help="preprocessor define for .S input")
    return ap


def _run(argv: list[str]) -> int:
    from harness.asm import AsmError, load_program
    from harness.machine.board import Board, BoardError
    from harness.machine.sigint import stop_on_sigint

    args = _run_parser().parse_args(argv)
    uart = _Uart()
    board = events_file = trace_file = None
    outputs: list[IO[str]] = []
    try:
        board = Board(args.cpu, trace_insns=bool(args.trace_insns), label_events=bool(args.events), uart_sink=uart.write)
        uart.board = board
        image = load_program(args.program, load_addr=args.load_addr, features=board.features, defines=dict(args.defines))
        board.load(image, el=args.el)
        events_file = _output(args.events, "--events")
        outputs = [f for f in (events_file,) if f]
        trace_file = _output(args.trace_insns, "--trace-insns")
        outputs += [f for f in (trace_file,) if f]
    except (AsmError, BoardError, OSError) as e:
        for f in outputs:
            f.close()
        if board is not None:
            board.close()
        print(str(e) if isinstance(e, AsmError) else one_line(str(e)), file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        with stop_on_sigint(board):
            result = board.run(args.max_insns)
        return _run_end(board, result, uart, events_file, trace_file)
    finally:
        for f in outputs:
            f.close()
        board.close()


def _run_end(board, result, uart: _Uart, events_file: IO[str] | None, trace_file: IO[str] | None) -> int:
    """Write the run's outputs and say how it ended: its exit status."""
    from harness.trace.events import StopReason, write_jsonl

    uart.flush()
    if events_file:
        write_jsonl(result.events, events_file)
    if trace_file:
        for line in board.trace_lines():
            trace_file.write(line + "\n")
    if result.ok:
        return EXIT_OK
    if uart.closed:
        return EXIT_SIGPIPE  # stdout's reader went away: quiet, as a process killed by SIGPIPE
    pc = result.pc
    where = board.location(pc)
    at = where if where == f"{pc:#x}" else f"{pc:#x} {where}"
    print(one_line(f"stopped ({result.status}): {result.message} at PC {at} after {result.icount:,} instructions"),
          file=sys.stderr)
    return EXIT_INTERRUPTED if result.status == StopReason.INTERRUPT else EXIT_STOPPED


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:  # Ctrl-C outside a run (a run stops itself and keeps its events)
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: list[str]) -> int:
    commands = {"run": "run an AArch64 program (.S, .elf, .bin) on the emulated board"}
    # Only commands that are built; `scenarios` falls back to selftest until its package exists.
    commands.update({k: v[1] for k, v in _DELEGATED.items() if k == "scenarios" or _available(v[0])})
    if not argv:
        print(f"python -m harness: which command? {', '.join(commands)} (--help for usage)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if argv[0] in ("-h", "--help"):
        print("usage: python -m harness COMMAND [ARGS...]\n\ncommands:")
        for name, text in commands.items():
            print(f"  {name:<10} {text}")
        return EXIT_OK
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        return _run(rest)
    if cmd in _DELEGATED:
        try:
            module = importlib.import_module(_DELEGATED[cmd][0])
        except ModuleNotFoundError as e:
            if cmd == "scenarios" and e.name == _DELEGATED[cmd][0]:
                # Until the world-switch scenarios exist, the main job is the bare-metal table.
                print("world-switch scenarios are not built yet: running the bare-metal exception tests")
                module = importlib.import_module(_DELEGATED["selftest"][0])
            else:
                print(f"'{cmd}' is not available: {e}", file=sys.stderr)
                return EXIT_BAD_INPUT
        return int(module.main(rest) or 0)
    print(f"unknown command {cmd!r}; try: {', '.join(commands)}", file=sys.stderr)
    return EXIT_BAD_INPUT
