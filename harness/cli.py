"""`python -m harness COMMAND ...`: one entry point for every tool of the project."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

EXIT_OK, EXIT_STOPPED, EXIT_BAD_INPUT = 0, 1, 2

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


def _int(text: str) -> int:
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _defines(items: list[str]) -> dict[str, int | str]:
    out: dict[str, int | str] = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name] = int(value or "1", 0)
        except ValueError:
            out[name] = value
    return out


def _run(argv: list[str]) -> int:
    from harness.asm import AsmError, load_program
    from harness.machine.board import DEFAULT_MAX_INSNS, Board, BoardError

    ap = argparse.ArgumentParser(prog="python -m harness run", description="Run an AArch64 program on the emulated board.")
    ap.add_argument("program", help=".S (assembled by the harness), .elf, or .bin with --load-addr")
    ap.add_argument("--cpu", choices=("max", "a57"), default="max", help="max: PAN/UAO/VHE; a57: v8.0, none of them")
    ap.add_argument("--el", type=int, choices=(1, 2), default=2, help="exception level at reset (default EL2, as QEMU)")
    ap.add_argument("--max-insns", type=_int, default=DEFAULT_MAX_INSNS, help="instruction budget (default 50 million)")
    ap.add_argument("--load-addr", type=_int, help="load address of a flat .bin")
    ap.add_argument("--events", metavar="FILE", help="write every event as JSON lines")
    ap.add_argument("--trace-insns", metavar="FILE", help="write an instruction trace (slow: a hook per instruction)")
    ap.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME[=VALUE]", help="preprocessor define for .S input")
    args = ap.parse_args(argv)

    path = Path(args.program)
    if not path.is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        board = Board(args.cpu, trace_insns=bool(args.trace_insns), label_events=bool(args.events),
                      uart_sink=lambda b: (sys.stdout.buffer.write(b), sys.stdout.buffer.flush()))
        image = load_program(path, load_addr=args.load_addr, features=board.features, defines=_defines(args.defines))
        board.load(image, el=args.el)
    except (AsmError, BoardError) as e:
        print(str(e), file=sys.stderr)
        return EXIT_BAD_INPUT
    result = board.run(args.max_insns)
    if args.events:
        from harness.trace.events import write_jsonl

        with open(args.events, "w") as f:
            write_jsonl(result.events, f)
    if args.trace_insns:
        with open(args.trace_insns, "w") as f:
            for line in board.trace_lines():
                f.write(line + "\n")
    if result.ok:
        return EXIT_OK
    where = board.location(result.pc)
    print(f"stopped ({result.status}): {result.message} at PC {result.pc:#x} {where} after {result.icount:,} instructions",
          file=sys.stderr)
    return EXIT_STOPPED


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"run": "run an AArch64 program (.S, .elf, .bin) on the emulated board"}
    # Only commands that are built; `scenarios` falls back to selftest until its package exists.
    commands.update({k: v[1] for k, v in _DELEGATED.items() if k == "scenarios" or _available(v[0])})
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m harness COMMAND [ARGS...]\n\ncommands:")
        for name, text in commands.items():
            print(f"  {name:<10} {text}")
        return EXIT_OK if argv else EXIT_BAD_INPUT
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
