"""The debugger, the GDB stub and gdbserver under bad input (issue 13): one clear line and the
session goes on, or the right behaviour. Each test pins one report of the issue."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fuzzkit import Worker
from rich.text import Text
from test_inject import PROGRAM as INJECT_PROGRAM

from harness.arch.exceptions import ExceptionType, async_masked, route_async
from harness.debugger import cli as debug_cli
from harness.debugger.core import Debugger, DebuggerError
from harness.debugger.gdbconn import checksum
from harness.debugger.gdbstub import GdbStub
from harness.memmap import UART_BASE
from harness.trace.events import ExceptionEntry

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "tests/data/debug/hello.S"  # prints "hello, world", calls leaf, powers off
needs_gdb = pytest.mark.skipif(shutil.which("gdb-multiarch") is None, reason="gdb-multiarch not installed")


def plain(markup: str) -> str:
    return Text.from_markup(markup).plain


@pytest.fixture
def hello() -> Path:
    return HELLO


@pytest.fixture
def dbg(hello: Path) -> Debugger:
    d = Debugger()
    d.load(str(hello))
    return d


# ---- item 1: a store to the UART from the debugger or gdb


def uart_store_session(path: str) -> tuple[bytes, str]:
    """In a worker (a SIGSEGV must not take pytest down): the debugger's UART stores."""
    d = Debugger()
    d.load(path)
    got = bytearray()
    d.output = got.extend
    d.execute("set *0x09000000=65")
    d.execute("set {char}0x9000000 = 66")
    d.execute("stepi")  # the session goes on, and the board still runs
    return bytes(got), bytes(d.board.uart).decode()


def test_a_store_to_the_uart_is_output_not_a_crash(hello: Path):
    with Worker(timeout=60) as w:
        r = w.call("test_debugger_robust:uart_store_session", str(hello)).check()
    assert r.value == (b"AB", "AB")


def test_a_store_to_the_uart_through_rsp(dbg: Debugger):
    stub = GdbStub(dbg)
    dbg.board.save_state()  # snapshots on: Unicorn's copy-on-write is what crashed
    assert stub.handle(b"M9000000,1:41") == b"OK"
    assert stub.handle(b"m9000018,4") == b"00000000"  # PL011 FR: transmit FIFO never full
    assert dbg.board.uart == b"A"
    assert stub.handle(b"M9000001,4:41414141") == b"E14"  # not an aligned register access
    assert stub.handle(b"Mdeadbeef00,1:00") == b"E14"


# ---- item 2: debugger commands with bad arguments


@pytest.mark.parametrize("cmd, msg", [
    ("break 0xffffffffffffffff", "breakpoint address 0xffffffffffffffff is not 4-byte aligned"),
    ("break 0x1ffffffffffffffff", "breakpoint address 0x1ffffffffffffffff is not a 64-bit address"),
    ("tbreak _start-0x50000000", "is not a 64-bit address"),
    ("set *0xdeadbeef00=1", "no memory at 0xdeadbeef00..0xdeadbeef08 (RAM is 0x40000000..0x50000000"),
    ("set pstate.el=7", "pstate.el holds 0..3, not 7"),
    ("set pstate.pan=5", "pstate.pan holds 0..1, not 5"),
    ("set pstate.pan=-1", "pstate.pan holds 0..1, not -1"),
    ("set pstate.el=0", "EL0 has only SP_EL0"),
    ("set cpsr=0x10", "AArch32 state"),
    ("set $x0=0x10000000000000000", "does not fit in the 64 bits of $x0"),
    ("set $w1=0x100000000", "does not fit in the 32 bits of $w1"),
    ("set $x31=1", "no register $x31"),
    ("set {float}0x40080000=1", "the types are char, short, int and long"),
    ("watch *0x40080000 0", "a memory watch needs a length of at least 1 byte"),
    ("watch *0x40080000 zz", "watch: not a length: zz"),
    ("watch *0xfffffffffffffff8 16", "is not a 64-bit address range"),
    ("disassemble 0x10", "nothing to disassemble: no memory at 0x10"),
    ("disassemble _start 100000", "at most 4096 instructions"),
    ("x/4gx 0x10", "cannot read 32 bytes at 0x10: no memory at 0x10"),
    ("x/100000000gx 0x40000000", "at most 0x10000 bytes at a time"),
    ("x/0x 0x40000000", "the count must be >= 1"),
    ("x/2gx $x40", "no register x40"),
    ("x/2gx $x1+zz", "not a number: zz"),
    ("stepi 99999999999999999999", "count must be 1..1,000,000"),
    ("info registers x0y", "no register, system register or group x0y"),
    ("load /", "/: is a directory, not a program"),
    ("run /", "/: is a directory, not a program"),
    ("source /", "source: cannot read /"),
    ("inject nmi", "inject irq|fiq|serror"),
])
def test_bad_arguments_are_one_line_and_the_session_goes_on(dbg: Debugger, cmd: str, msg: str):
    b = dbg.board
    before = (b.pc, b.icount, bytes(b.read_mem(0x40080000, 64)))
    with pytest.raises(DebuggerError) as e:
        dbg.execute(cmd)
    assert msg in str(e.value) and "\n" not in str(e.value)
    assert dbg.board is b and (b.pc, b.icount, bytes(b.read_mem(0x40080000, 64))) == before
    dbg.execute("stepi")
    assert b.icount == before[1] + 1


def test_info_registers_shows_core_registers(dbg: Debugger):
    b = dbg.board
    dbg.execute("stepi")
    out = plain(dbg.execute("info registers x1 w1 pc cpsr HCR_EL2"))
    lines = out.splitlines()
    assert lines[0] == f"x1   {b.reg(1):#018x} {b.reg(1)}"
    assert lines[1] == f"w1   {b.reg(1) & 0xFFFFFFFF:#018x} {b.reg(1) & 0xFFFFFFFF}"
    assert lines[2].startswith(f"pc   {b.pc:#018x}") and "_start+0x4" in lines[2]
    assert lines[3].startswith("PSTATE 0x") and lines[4].startswith("HCR_EL2 ")


def test_values_are_stored_as_the_register_holds_them(dbg: Debugger):
    b = dbg.board
    assert plain(dbg.execute("set $x3=-1")) == "$x3 = 0xffffffffffffffff"
    assert b.reg(3) == (1 << 64) - 1
    dbg.execute("set $w3=-2")
    assert b.reg(3) == 0xFFFFFFFE  # a W write clears the upper half
    dbg.execute("set pstate.el=1")
    assert b.pstate().el == 1


def test_a_directory_as_program_on_the_command_line(tmp_path: Path):
    res = subprocess.run([sys.executable, "-m", "harness", "debug", str(tmp_path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert res.returncode == 2 and res.stderr == f"debug: {tmp_path}: is a directory, not a program\n"


def test_interactive_mode_survives_every_bad_command(hello: Path, tmp_path: Path, monkeypatch, capsys):
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput
    from rich.console import Console

    monkeypatch.setattr(debug_cli, "HISTORY", tmp_path / "history")
    d = Debugger()
    d.load(str(hello))
    out = debug_cli._ProgramOutput()
    d.output = out.write
    cmds = ["break 0xffffffffffffffff", "set *0xdeadbeef00=1", "set pstate.el=7", "set *0x09000000=65",
            "x/2gx [bad", "info registers x0", "continue", "continue", "quit"]
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("".join(c + "\r" for c in cmds))
        status = debug_cli._interactive(d, Console(no_color=True), debug_cli._Interrupt(), out)
    assert status == 0 and d.done
    text = capsys.readouterr().out
    assert text.count("error:") == 5  # the four bad commands and the second continue
    assert "A\n" in text and "hello, world" in text and "x0   0x0000000000000000 0" in text
    assert "the program has ended (PSCI SYSTEM_OFF)" in text


# ---- item 4: inject delivers (the two reports; the board's exactness: test_inject.py)


def test_debugger_inject_serror_at_el2_with_a_clear_and_amo(tmp_path):
    src = tmp_path / "serror.S"
    src.write_text(INJECT_PROGRAM)
    for resume in ("stepi", "continue"):
        d = Debugger()
        d.load_program(str(src))
        b = d.board
        d.execute("break label_unmasked")
        d.execute("continue")
        d.execute("set pstate.a=0")
        d.execute("set HCR_EL2=0x80000020")  # RW | AMO
        ps, ctx = b.pstate(), b.sysctx()
        target = route_async(ExceptionType.SERROR, ps.el, ctx)
        assert (ps.el, ps.a, target) == (2, 0, 2) and not async_masked(ExceptionType.SERROR, target, ps, ctx)
        pc, icount = b.pc, b.icount
        assert "taken before the next instruction" in d.execute("inject serror")
        out = d.execute(resume)
        (e,) = [e for e in b.events if isinstance(e, ExceptionEntry)]
        assert (e.exc_type, e.icount, e.elr, e.to_el) == ("serror", icount, pc, 2)
        assert "exception serror" in Text.from_markup(out).plain
        if resume == "stepi":
            assert b.pc == e.vector and b.icount == icount  # the step was the exception entry


def test_debugger_inject_masked_then_daifclr(tmp_path):
    src = tmp_path / "serror.S"
    src.write_text(INJECT_PROGRAM)
    d = Debugger()
    d.load_program(str(src))
    b = d.board
    assert "masked (PSTATE.A=1)" in d.execute("inject serror")
    d.execute("continue")
    (e,) = [e for e in b.events if isinstance(e, ExceptionEntry)]
    assert e.elr == b.image.addr_of("label_masked") + 8  # right after msr daifclr, #4


def test_debugger_inject_inside_a_scenario_at_guest_exit_end():
    d = Debugger()
    d.load_scenario("max-vhe-kvm_run-pan1-uao0-hvc", "patch-2017")
    b = d.board
    d.execute("break __guest_exit_end")
    d.execute("continue")
    ps, ctx = b.pstate(), b.sysctx()
    target = route_async(ExceptionType.SERROR, ps.el, ctx)
    assert not async_masked(ExceptionType.SERROR, target, ps, ctx)  # __guest_exit unmasked A
    pc, n = b.pc, len(b.events)
    d.execute("inject serror")
    d.execute("stepi")
    (e,) = [e for e in b.events[n:] if isinstance(e, ExceptionEntry)]
    assert (e.exc_type, e.elr, e.to_el, e.vector_offset) == ("serror", pc, target, 0x380)


# ---- item 5: program output, and a board that is off


def test_batch_shows_the_program_output_as_it_happens(hello: Path, tmp_path: Path):
    script = tmp_path / "cmds"
    script.write_text(f"run {hello}\ncontinue\nstepi\nnext\nfinish\nuntil leaf\nrun\nquit\n")
    res = subprocess.run([sys.executable, "-m", "harness", "debug", "--batch", str(script), "--no-color"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    out = res.stdout
    assert out.count("hello, world\n") == 2  # run, and run again from the start
    assert out.index(f"starting program {hello}") < out.index("hello, world") < out.index("PSCI SYSTEM_OFF")
    # continue, stepi, next, finish, until after SYSTEM_OFF: each refused in one line
    errs = res.stderr.splitlines()
    assert [e.split(": ", 1)[0] for e in errs] == [f"{script}:{n}" for n in range(2, 7)]
    assert all(e.endswith("the program has ended (PSCI SYSTEM_OFF): `run` or `load` to start again") for e in errs)
    assert res.returncode == 1


def test_a_board_that_is_off_refuses_and_reverse_execution_still_works(dbg: Debugger):
    b = dbg.board
    st = dbg.cont()
    assert st.reason == "poweroff" and b.off == "PSCI SYSTEM_OFF"
    end = b.icount
    for cmd in ("continue", "stepi", "step", "next", "finish", "until leaf", "inject irq"):
        with pytest.raises(DebuggerError, match="the program has ended"):
            dbg.execute(cmd)
    assert b.icount == end  # nothing ran
    dbg.execute("reverse-stepi")
    assert b.off is None and b.icount == end - 1
    dbg.execute("continue")
    assert b.off == "PSCI SYSTEM_OFF"
    assert dbg.board.uart == b"hello, world\n"  # replay produced the same output, shown once


# ---- item 3: the GDB stub and gdbserver


def _packet(body: bytes) -> bytes:
    return b"$" + body + b"#" + checksum(body)


def _serve(d: Debugger) -> tuple[socket.socket, GdbStub, threading.Thread]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stub = GdbStub(d)
    t = threading.Thread(target=stub.serve, args=(listener,), daemon=True)
    t.start()
    return listener, stub, t


def _ask(c: socket.socket, body: bytes) -> tuple[bytes, list[bytes]]:
    """Send a packet: (the reply, the O packets before it)."""
    c.sendall(_packet(body))
    data, console = b"", []
    while True:
        while not (b"$" in data and b"#" in data[data.index(b"$"):]
                   and len(data) >= data.index(b"#", data.index(b"$")) + 3):
            chunk = c.recv(65536)
            assert chunk, "connection closed"
            data += chunk
        start = data.index(b"$")
        end = data.index(b"#", start)
        reply, data = data[start + 1 : end], data[end + 3 :]
        if reply.startswith(b"O") and reply != b"OK":
            console.append(bytes.fromhex(reply[1:].decode()))
        else:
            return reply, console


def test_stub_refuses_bad_breakpoint_addresses_and_keeps_serving(dbg: Debugger):
    listener, _stub, _t = _serve(dbg)
    with socket.create_connection(listener.getsockname(), timeout=30) as c:
        for bad in (b"Z0,ffffffffffffffff,4", b"Z0,1ffffffffffffffff,4", b"Z0,-4,4", b"Z0,40080000",
                    b"Z2,40080000,0", b"p-1", b"P21=10000000"):
            assert _ask(c, bad)[0].startswith(b"E"), bad
        assert _ask(c, b"Z0,40080010,4")[0] == b"OK"
        assert _ask(c, b"?")[0].startswith(b"T05")
    listener.close()


def test_stub_sends_program_output_and_ends_with_the_program_in_remote_mode(dbg: Debugger):
    listener, stub, t = _serve(dbg)
    with socket.create_connection(listener.getsockname(), timeout=30) as c:
        reply, console = _ask(c, b"c")
        assert reply == b"W00" and b"".join(console).startswith(b"hello, world\n")
        assert _ask(c, b"?")[0] == b"W00" and _ask(c, b"qfThreadInfo")[0] == b"l"
        assert _ask(c, b"g")[0] == b"E01"  # no process
    t.join(10)
    assert not t.is_alive() and stub.ended_by == "the program ended (PSCI SYSTEM_OFF)"
    listener.close()


def test_stub_extended_mode_runs_the_program_again(dbg: Debugger):
    listener, stub, t = _serve(dbg)
    with socket.create_connection(listener.getsockname(), timeout=30) as c:
        assert _ask(c, b"!")[0] == b"OK"
        assert _ask(c, b"c")[0] == b"W00"
        assert _ask(c, b"qXfer:exec-file:read:1:0,fff")[0] == b""  # not offered: the empty reply
        assert _ask(c, b"vRun;")[0] == b"T05thread:1;"
        assert dbg.board.icount == 0 and dbg.board.off is None
        reply, console = _ask(c, b"vCont;c")
        assert reply == b"W00" and b"hello, world\n" in b"".join(console)
        assert _ask(c, b"vRun;" + b"/no/such.S".hex().encode())[0] == b"E01"
        assert _ask(c, b"vKill;1")[0] == b"OK" and _ask(c, b"?")[0] == b"W00"
    t.join(1)
    assert t.is_alive()  # extended mode: the server stays for the next gdb
    with socket.create_connection(listener.getsockname(), timeout=30) as c:
        assert _ask(c, b"!")[0] == b"OK" and _ask(c, b"vRun;")[0].startswith(b"T05")
        assert _ask(c, b"qRcmd," + b"exit".hex().encode())[0] == b"OK"
    t.join(10)
    assert not t.is_alive() and stub.ended_by == "monitor exit"
    listener.close()


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_gdbserver_port_out_of_range_is_one_line(port: str):
    res = subprocess.run([sys.executable, "-m", "harness", "gdbserver", "--port", port, "x.S"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "--port" in res.stderr and "Traceback" not in res.stderr


def _gdbserver(target: str) -> tuple[subprocess.Popen, int]:
    srv = subprocess.Popen([sys.executable, "-m", "harness", "gdbserver", "--port", "0", target],
                           stderr=subprocess.PIPE, text=True, cwd=ROOT)
    line = srv.stderr.readline()
    return srv, int(line.rsplit(":", 1)[1])


def _gdb(port: int, mode: str, cmds: list[str], tmp_path: Path) -> str:
    script = tmp_path / "g.gdb"
    script.write_text("\n".join(["set pagination off", "set confirm off", "set architecture aarch64",
                                 f"target {mode} 127.0.0.1:{port}", *cmds]) + "\n")
    res = subprocess.run(["gdb-multiarch", "-q", "-batch", "-x", str(script)], capture_output=True, text=True,
                         timeout=120)
    return res.stdout + res.stderr


@needs_gdb
def test_real_gdb_uart_store_then_the_program_ends_the_server(hello: Path, tmp_path: Path):
    srv, port = _gdbserver(str(hello))
    try:
        out = _gdb(port, "remote", [f"set {{char}}{UART_BASE:#x} = 65", 'printf "PC=%lx\\n", $pc', "continue"],
                   tmp_path)
        srv.wait(30)
    finally:
        srv.kill()
        err = srv.stderr.read()
    assert "PC=40080000" in out and "Remote connection closed" not in out
    assert "Ahello, world" in out and "exited normally" in out
    assert srv.returncode == 0 and "the program ended (PSCI SYSTEM_OFF); exiting" in err


@needs_gdb
def test_real_gdb_extended_remote_run_starts_the_program_again(hello: Path, tmp_path: Path):
    srv, port = _gdbserver(str(hello))
    try:
        out = _gdb(port, "extended-remote", ["continue", "run", "monitor exit"], tmp_path)
        srv.wait(30)
    finally:
        srv.kill()
    assert out.count("hello, world") == 2 and out.count("exited normally") == 2, out
    assert "Unknown remote qXfer reply" not in out and "not running" not in out
    assert srv.returncode == 0
