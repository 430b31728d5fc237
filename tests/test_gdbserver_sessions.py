"""gdbserver with a real gdb-multiarch: a flat .bin at --load-addr, what the stub's console says
about breakpoints (gdb's own are gdb's to report, under gdb's numbers), and when the server
ends with `target remote` (as gdbserver: when gdb detaches or kills, and never left behind by a
`gdb -batch` run)."""

from __future__ import annotations

import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_debugger_targets import HELLO, LOAD, flat_hello

from harness.debugger.core import Debugger
from harness.debugger.gdbconn import checksum
from harness.debugger.gdbstub import GdbStub

ROOT = Path(__file__).resolve().parents[1]
needs_gdb = pytest.mark.skipif(shutil.which("gdb-multiarch") is None, reason="gdb-multiarch not installed")
# what the old console said at a stop at gdb's breakpoints and watchpoints: the debugger's
# numbers, not gdb's ("breakpoint 3", "watchpoint 4: *0x...")
BARE_NUMBER = re.compile(r"^((temporary )?breakpoint \d+(, .*)?|watchpoint \d+: .*)$", re.M)


class Server:
    """`python -m harness gdbserver --port 0 ...` in the background: its port, the ELF its
    connect line names (None for a .bin), and its exit status and log once it has ended."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "harness", "gdbserver", "--port", "0", *args],
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.port = int(self.proc.stderr.readline().rsplit(":", 1)[1])
        words = shlex.split(self.proc.stderr.readline().split("connect: ", 1)[1])
        self.elf = words[1] if words[1] != "-ex" else None
        self.log = ""

    def wait(self, timeout: float = 60) -> int | None:
        """The exit status, or None if the server is still running after timeout (then ended)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        self.end()
        return rc

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log = self.proc.stderr.read()


@pytest.fixture
def server():
    started: list[Server] = []

    def start(*args: str) -> Server:
        started.append(Server(*args))
        return started[-1]

    yield start
    for s in started:
        s.end()  # never left behind, whatever the test did


def gdb(srv: Server, cmds: list[str], tmp_path: Path, mode: str = "remote") -> str:
    script = tmp_path / "g.gdb"
    script.write_text("\n".join(["set pagination off", "set confirm off", "set architecture aarch64",
                                 f"target {mode} 127.0.0.1:{srv.port}", *cmds]) + "\n")
    res = subprocess.run(["gdb-multiarch", "-q", "-batch", *([srv.elf] if srv.elf else []), "-x", str(script)],
                         capture_output=True, text=True, timeout=180)
    return res.stdout + res.stderr


# ---- a flat binary


@needs_gdb
def test_real_gdb_debugs_a_flat_binary_at_its_load_address(server, tmp_path: Path):
    srv = server(str(flat_hello(tmp_path)), "--load-addr", f"{LOAD:#x}")
    assert srv.elf is None  # no symbols: the printed command sets the architecture only
    leaf = LOAD + 0x24  # hello.S's leaf: add x4, x4, #1
    out = gdb(srv, ['printf "PC=%lx\\n", $pc', "x/2i $pc", f"break *{leaf:#x}", "continue",
                    'printf "PC=%lx\\n", $pc', "stepi", 'printf "PC=%lx LR=%lx\\n", $pc, $lr', "continue"], tmp_path)
    assert srv.wait() == 0, out + srv.log
    assert f"PC={LOAD:x}" in out and f"{LOAD:#x}:\tldr\tx1, {LOAD + 0x40:#x}" in out, out
    assert f"Breakpoint 1, {leaf:#018x} in ?? ()" in out and f"PC={leaf:x}" in out
    assert f"PC={leaf + 4:x} LR={LOAD + 0x1c:x}" in out  # leaf's ret, called from done+4
    assert "hello, world" in out and "exited normally" in out
    assert "the program ended (PSCI SYSTEM_OFF); exiting" in srv.log


# ---- the console: gdb's breakpoints are gdb's to report


@needs_gdb
def test_real_gdb_console_does_not_number_gdbs_breakpoints(server, tmp_path: Path):
    srv = server(str(HELLO))
    out = gdb(srv, ["break done", "continue",
                    "advance leaf",  # momentary breakpoints of gdb's own (Z0, then z0)
                    "advance *0x4008001c",  # done+4, the return address
                    "monitor info breakpoints",  # none of the debugger's: gdb's take no number
                    "monitor tbreak done+8",  # the debugger's own: numbered from 1
                    "continue", "continue"], tmp_path)
    assert srv.wait() == 0, out + srv.log
    assert "Breakpoint 1, done () at" in out and "leaf () at" in out and "hello.S:15" in out, out
    assert not BARE_NUMBER.search(out), out
    assert "no breakpoints, watchpoints or catchpoints" in out
    assert "temporary breakpoint 1 at 0x40080020: done+0x8" in out
    # a stop at the debugger's breakpoint names it as the monitor's, by symbol and line
    assert re.search(r"^monitor temporary breakpoint 1 at done\+0x8 \(\S*hello.S:16\)$", out, re.M), out
    assert "hello, world" in out and "exited normally" in out


@needs_gdb
def test_real_gdb_next_over_a_bl_stops_on_the_next_line_quietly(server, tmp_path: Path):
    """`next` over `bl host_probes`: gdb's step-resume breakpoint at the return address is gdb's
    business; the console names no breakpoint of the debugger's."""
    lines = (ROOT / "asm/kvm/kvm-arm.S").read_text().splitlines()
    call = next(n for n, ln in enumerate(lines, 1) if "bl      host_probes" in ln and "before the world switch" in ln)
    srv = server("max-vhe-kvm_run-pan1-uao0-hvc")
    out = gdb(srv, [f"break kvm-arm.S:{call}", "continue", "next"], tmp_path)
    assert srv.wait() == 0, out + srv.log  # gdb -batch detached at the end
    assert re.search(rf"^{call}\s+bl\s+host_probes", out, re.M), out
    assert re.search(rf"^{call + 1}\s+{re.escape(lines[call].strip())}", out, re.M), out
    assert not BARE_NUMBER.search(out), out


def _console(stub: GdbStub) -> list[str]:
    said: list[str] = []
    stub._program_output = lambda data: said.append(data.decode())  # the O packets gdb would print
    return said


def test_stub_console_at_gdbs_watchpoint_and_breakpoint_stops():
    d = Debugger()
    d.load("max-vhe-kvm_run-pan1-uao0-hvc", "patch-2017")
    stub = GdbStub(d)
    said = _console(stub)
    exit_ = d.board.image.addr_of("__guest_exit")
    assert stub.handle(f"Z0,{exit_:x},4".encode()) == b"OK"
    assert stub.handle(b"c") == b"T05swbreak:;thread:1;" and d.board.pc == exit_
    assert stub.handle(f"z0,{exit_:x},4".encode()) == b"OK"
    slot = d.board.reg(1) + 16  # __guest_exit's first store: the guest's x2/x3 at [x1, #16]
    # a watch of the debugger's elsewhere, on memory nothing writes: not the one a write to slot hits
    assert stub.handle(b"qRcmd," + b"watch *0x4fff0000 8".hex().encode()) == b"OK"
    said.clear()
    assert stub.handle(f"Z2,{slot:x},8".encode()) == b"OK"
    assert stub.handle(b"c") == f"T05watch:{slot:x};thread:1;".encode()
    assert stub.handle(f"z2,{slot:x},8".encode()) == b"OK"
    assert not BARE_NUMBER.search("".join(said)) and "watchpoint" not in "".join(said), said
    assert stub.handle(b"qRcmd," + b"delete".hex().encode()) == b"OK"
    # none of them was the debugger's, and removing them took them off the board
    assert d.points.breakpoints == {} and d.points.watches == {} and d.points.next_num == 2
    assert d.points.gdb_breakpoints == [] and d.points.gdb_watches == [] and exit_ not in d.points.addrs()
    # the debugger's own (monitor) watch is named as the monitor's
    assert stub.handle(b"qRcmd," + b"watch pstate.pan".hex().encode()) == b"OK"
    said.clear()
    assert stub.handle(b"c").startswith(b"T05")
    assert re.search(r"^monitor watchpoint 2: pstate.pan \d -> \d$", "".join(said), re.M), said


def test_gdbs_breakpoints_go_with_a_reload():
    """vRun (extended-remote `run`) loads the program again: gdb inserts its breakpoints anew."""
    d = Debugger()
    d.load(str(HELLO))
    stub = GdbStub(d)
    _console(stub)
    assert stub.handle(b"!") == b"OK" and stub.handle(b"Z0,40080018,4") == b"OK"
    d.execute("break leaf")
    assert stub.handle(b"vRun;") == b"T05thread:1;"
    assert d.points.gdb_breakpoints == [] and d.points.addrs() == {d.board.image.addr_of("leaf")}


# ---- when the server ends (target remote)


@needs_gdb
def test_real_gdb_batch_with_target_remote_leaves_no_server_behind(server, tmp_path: Path):
    """The program still runs when gdb -batch ends: gdb detaches (qAttached says the program was
    there before it), and the server ends, as gdbserver does with target remote."""
    srv = server(str(HELLO))
    out = gdb(srv, ["stepi", 'printf "PC=%lx\\n", $pc'], tmp_path)
    assert "PC=40080004" in out, out
    assert srv.wait(30) == 0, "the server was left behind after gdb -batch:\n" + out
    assert "gdb detached; exiting" in srv.log


@needs_gdb
@pytest.mark.parametrize("cmd, why", [("detach", "gdb detached"), ("kill", "the program was killed")])
def test_real_gdb_detach_or_kill_ends_the_server(server, tmp_path: Path, cmd: str, why: str):
    srv = server(str(HELLO))
    out = gdb(srv, ["stepi", cmd], tmp_path)
    assert srv.wait(30) == 0, out + srv.log
    assert f"{why}; exiting" in srv.log


@needs_gdb
def test_real_gdb_extended_remote_batch_leaves_the_server_for_the_next_gdb(server, tmp_path: Path):
    srv = server(str(HELLO))
    gdb(srv, ["stepi"], tmp_path, mode="extended-remote")
    out = gdb(srv, ['printf "PC=%lx\\n", $pc', "monitor exit"], tmp_path, mode="extended-remote")
    assert "PC=40080004" in out  # the same program, where the first gdb left it
    assert srv.wait(30) == 0 and "monitor exit; exiting" in srv.log


def _frame(body: bytes) -> bytes:
    return b"$" + body + b"#" + checksum(body)


def _reply(c: socket.socket) -> bytes:
    data = b""
    while not re.search(rb"\$[^#]*#..", data):
        chunk = c.recv(4096)
        assert chunk, "connection closed"
        data += chunk
    return re.search(rb"\$([^#]*)#..", data).group(1)


def test_a_lost_connection_leaves_the_program_for_the_next_gdb(server):
    """gdb gone without detaching (killed): as gdbserver, the server waits for it to come back,
    with the program where it was; a detach then ends it."""
    srv = server(str(HELLO))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as c:
        c.sendall(_frame(b"s"))
        assert _reply(c).startswith(b"T05")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as c:
        c.sendall(_frame(b"p20"))  # pc
        assert int.from_bytes(bytes.fromhex(_reply(c).decode()), "little") == 0x40080004
        c.sendall(_frame(b"D"))
        assert _reply(c) == b"OK"
    assert srv.wait(30) == 0
    assert "gdb disconnected without detaching: waiting for it to connect again" in srv.log
    assert "gdb detached; exiting" in srv.log
