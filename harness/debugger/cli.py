"""`python -m harness debug SCENARIO|PROGRAM`: the terminal front end of the debugger.

Interactive (a terminal on stdin): prompt_toolkit with history and completion of commands,
labels and register names; rich for colour. `--batch FILE`, or commands piped on stdin, run
without a prompt (scripts and tests). Ctrl-C interrupts a running `continue`.
The program's UART output is printed as it is produced. Exit status: 0, or 1 when a batch
command failed, 2 for bad usage or a target that does not load.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.cli import ArgumentParser, add_load_addr  # one-line usage errors, exit 2
from harness.debugger.commands import COMMANDS
from harness.debugger.core import Debugger, DebuggerError
from harness.debugger.render import PSTATE_FIELDS, SYSREG_GROUPS

HISTORY = Path.home() / ".pstate_harness_history"


def _parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog="python -m harness debug",
                        description="Single-step the world-switch scenarios or a program, forwards and backwards.")
    ap.add_argument("target", nargs="?", help="scenario id (e.g. max-vhe-kvm_run-pan1-uao0-hvc) or a .S/ELF/binary")
    ap.add_argument("--variant", help="code variant of the scenario (default v4.13)")
    add_load_addr(ap)
    ap.add_argument("--inject", metavar="KIND@ICOUNT", type=_injection,
                    help="run to instruction boundary ICOUNT, make irq|fiq|serror pending there and stop where it "
                         "is taken (the replay command of `explore`)")
    ap.add_argument("--batch", metavar="FILE", type=Path, help="run the commands in FILE, then exit")
    ap.add_argument("--no-color", action="store_true", help="plain text output")
    return ap


def _injection(text: str) -> tuple[str, int]:
    kind, sep, count = text.partition("@")
    try:
        n = int(count.replace("_", "").replace(",", ""), 0)
    except ValueError:
        n = -1
    if not sep or kind.lower() not in ("irq", "fiq", "serror") or n < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KIND@ICOUNT, KIND one of irq, fiq, serror")
    return kind.lower(), n


class _Interrupt:
    """SIGINT sets a flag the debugger polls between chunks of a continue."""

    def __init__(self) -> None:
        self.flag = False

    def __call__(self, *_args: object) -> None:
        self.flag = True

    def poll(self) -> bool:
        hit, self.flag = self.flag, False
        return hit


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(no_color=args.no_color, highlight=False, soft_wrap=True)
    dbg = Debugger()
    intr = _Interrupt()
    dbg.interrupt = intr.poll
    out = _ProgramOutput()
    dbg.output = out.write
    for given, flag in ((args.inject, "--inject"), (args.load_addr is not None, "--load-addr")):
        if given and not args.target:
            print(f"debug: {flag} needs a scenario or program to run", file=sys.stderr)
            return 2
    if args.target:
        try:
            console.print(dbg.load(args.target, args.variant, args.load_addr))
            if args.inject:
                console.print(dbg.inject_at(*args.inject))
        except DebuggerError as e:
            print(f"debug: {e}", file=sys.stderr)
            return 2
    if args.batch is not None:
        try:
            lines = args.batch.read_text().splitlines()
        except OSError as e:
            print(f"debug: {args.batch}: {e.strerror}", file=sys.stderr)
            return 2
        return _run_lines(dbg, console, lines, str(args.batch), out)
    if not sys.stdin.isatty():
        return _run_lines(dbg, console, sys.stdin.read().splitlines(), "<stdin>", out)
    return _interactive(dbg, console, intr, out)


class _ProgramOutput:
    """The program's UART bytes to stdout as they come; a stop display starts on a new line."""

    def __init__(self) -> None:
        self.midline = False

    def write(self, data: bytes) -> None:
        sys.stdout.write(data.decode("utf-8", "replace"))
        sys.stdout.flush()
        self.midline = not data.endswith(b"\n")

    def end_line(self) -> None:
        if self.midline:
            sys.stdout.write("\n")
            self.midline = False


def _run_lines(dbg: Debugger, console: Console, lines: list[str], name: str, prog: _ProgramOutput) -> int:
    status = 0
    for n, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("#"):
            console.print(f"[dim]({name}:{n})[/] {escape(line.strip())}", markup=True)
        try:
            out = dbg.execute(line)
        except DebuggerError as e:
            prog.end_line()
            print(f"{name}:{n}: {e}", file=sys.stderr)
            status = 1
            continue
        prog.end_line()
        if out:
            console.print(out)
        if dbg.done:
            break
    return status


def _interactive(dbg: Debugger, console: Console, intr: _Interrupt, prog: _ProgramOutput) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.history import FileHistory

    def words() -> list[str]:
        w = list(COMMANDS) + [f"pstate.{f}" for f in PSTATE_FIELDS] + [f"x{i}" for i in range(31)]
        w += ["sp", "pc", "registers", "sysregs", "exceptions", "breakpoints", "scenario", "eret", "exception"]
        w += [n for g in SYSREG_GROUPS.values() for n in g] + list(SYSREG_GROUPS)
        if dbg.board is not None and dbg.board.image is not None:
            w += [s for s in dbg.board.image.symbols if not s.startswith(".L")]
        return sorted(set(w))

    session: PromptSession = PromptSession(history=FileHistory(str(HISTORY)))
    old = signal.signal(signal.SIGINT, intr)
    try:
        while not dbg.done:
            try:
                signal.signal(signal.SIGINT, old)  # at the prompt Ctrl-C clears the line
                line = session.prompt("(pstate) ", completer=WordCompleter(words(), sentence=False))
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            signal.signal(signal.SIGINT, intr)  # while running, Ctrl-C interrupts a continue
            try:
                out = dbg.execute(line)
            except DebuggerError as e:
                prog.end_line()
                console.print(f"[red]error:[/] {escape(str(e))}", markup=True)
                continue
            prog.end_line()
            if out:
                console.print(out)
    finally:
        signal.signal(signal.SIGINT, old)
    return 0
