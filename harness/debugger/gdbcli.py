"""`python -m harness gdbserver --port N SCENARIO|PROGRAM`: serve the target to gdb-multiarch.

Listens on 127.0.0.1 only. Writes the ELF of what it serves (symbols, DWARF lines: see
harness/asm/elf.py) and prints the gdb command line that loads it and connects. The ELF goes to a
temporary directory of its own, removed when the server ends (it works for an installed package,
two servers never share one, and no stale copy outlives the assembly it describes); `--elf FILE`
writes it there instead and keeps it. A program that is already an ELF is given to gdb as it is.
With `target remote` the server ends when gdb detaches (as at the end of `gdb -batch`), kills the
program, or the program has ended, as gdbserver does; with `target extended-remote` it stays, and
gdb's `run` starts the program again (gdbstub.py says when exactly).
Exit status: 0 when the server ends, 2 for bad usage or a target that does not load.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from harness.asm import AsmError
from harness.cli import ArgumentParser, add_load_addr  # one-line usage errors, exit 2
from harness.debugger.core import Debugger, DebuggerError
from harness.debugger.gdbstub import GdbStub


def _port(text: str) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is not in 0..65535")
    return port


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="python -m harness gdbserver", description="GDB remote stub on 127.0.0.1.")
    ap.add_argument("target", help="scenario id or a .S/ELF/binary program")
    ap.add_argument("--variant", help="code variant of the scenario (default v4.13)")
    add_load_addr(ap)
    ap.add_argument("--port", type=_port, default=1234, help="TCP port on 127.0.0.1 (0: any free port)")
    ap.add_argument("--elf", metavar="FILE", help="write the ELF for gdb here and keep it (default: a temporary directory)")
    args = ap.parse_args(argv)
    dbg = Debugger()
    try:
        dbg.load(args.target, args.variant, args.load_addr)
    except DebuggerError as e:
        print(f"gdbserver: {e}", file=sys.stderr)
        return 2
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", args.port))
    except OSError as e:
        print(f"gdbserver: cannot listen on 127.0.0.1:{args.port}: {e.strerror}", file=sys.stderr)
        return 2
    listener.listen(1)
    port = listener.getsockname()[1]
    tmp = None if args.elf else tempfile.mkdtemp(prefix="pstate-harness-gdb-")
    try:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so the temporary directory is removed
    except ValueError:
        pass  # not the main thread
    try:
        try:
            elf = _elf_for_gdb(dbg, args, tmp)
        except OSError as e:
            print(f"gdbserver: cannot write the ELF: {e.filename}: {e.strerror}", file=sys.stderr)
            return 2
        except AsmError as e:
            print(f"gdbserver: cannot write the ELF: {e}", file=sys.stderr)
            return 2
        print(f"gdbserver: {dbg.target} on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        print(f"gdbserver: connect: {gdb_command(elf, port)}", file=sys.stderr, flush=True)
        stub = GdbStub(dbg, log=lambda m: print(f"gdbserver: {m}", file=sys.stderr, flush=True))
        try:
            stub.serve(listener)
        except KeyboardInterrupt:
            pass
        if stub.ended_by:
            print(f"gdbserver: {stub.ended_by}; exiting", file=sys.stderr)
    finally:
        listener.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def gdb_command(elf: Path | None, port: int) -> str:
    """The gdb-multiarch command line that loads the symbols and connects."""
    if elf is None:
        return f"gdb-multiarch -ex 'set architecture aarch64' -ex 'target remote 127.0.0.1:{port}'"
    return f"gdb-multiarch {shlex.quote(str(elf.resolve()))} -ex 'target remote 127.0.0.1:{port}'"


def _elf_for_gdb(dbg: Debugger, args: argparse.Namespace, tmp: str | None) -> Path | None:
    """The ELF of the target as `build` writes it (a scenario, a .S), or the target itself when it
    is an ELF; None for a flat binary (gdb then has no symbols)."""
    from harness.asm.elf import write_elf
    from harness.build import scenario_image

    target = Path(args.target)
    if target.exists():
        if target.suffix.lower() not in (".s", ".asm") or dbg.board is None or dbg.board.image is None:
            with target.open("rb") as f:
                return target if f.read(4) == b"\x7fELF" else None
        image, name = dbg.board.image, f"{target.stem}.elf"
    else:
        image, scenario_id = scenario_image(args.target, args.variant)
        name = scenario_id.replace("/", "-") + ".elf"
    return write_elf(image, Path(args.elf) if args.elf else Path(tmp or ".") / name)
