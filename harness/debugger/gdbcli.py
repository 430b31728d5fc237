"""`python -m harness gdbserver --port N SCENARIO|PROGRAM`: serve the target to gdb-multiarch.

Listens on 127.0.0.1 only. Connect with:
    gdb-multiarch -ex 'set architecture aarch64' -ex 'target remote :N'
Exit status: 0 after gdb kills the target, 2 for bad usage or a target that does not load.
"""

from __future__ import annotations

import argparse
import socket
import sys

from harness.debugger.core import Debugger, DebuggerError
from harness.debugger.gdbstub import GdbStub


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness gdbserver", description="GDB remote stub on 127.0.0.1.")
    ap.add_argument("target", help="scenario id or a .S/ELF/binary program")
    ap.add_argument("--variant", help="code variant of the scenario (default v4.13)")
    ap.add_argument("--port", type=int, default=1234, help="TCP port on 127.0.0.1 (0: any free port)")
    args = ap.parse_args(argv)
    dbg = Debugger()
    try:
        dbg.load(args.target, args.variant)
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
    print(f"gdbserver: {dbg.target} on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    stub = GdbStub(dbg, log=lambda m: print(f"gdbserver: {m}", file=sys.stderr, flush=True))
    try:
        stub.serve(listener)
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    return 0
