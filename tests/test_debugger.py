"""Debugger (issue 4): the core through its commands, the front end through --batch and stdin,
and the GDB stub through raw packets and a real gdb-multiarch."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rich.text import Text

from harness.arch.cause import Cause
from harness.arch.pstate import PState
from harness.arch.regs import PSTATE
from harness.debugger.core import Debugger, DebuggerError
from harness.debugger.gdbconn import checksum
from harness.debugger.gdbstub import GdbStub, target_xml
from harness.debugger.points import CatchException, MemWatch
from harness.machine.board import Board
from harness.trace import events as ev
from harness.trace.events import StopReason

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "max-vhe-kvm_run-pan1-uao0-hvc"
VARIANT = "patch-2017"


def plain(markup: str) -> str:
    return Text.from_markup(markup).plain


@pytest.fixture
def dbg() -> Debugger:
    d = Debugger()
    d.load_scenario(SCENARIO, VARIANT)
    return d


def state(b: Board) -> tuple:
    return (b.pc, b.sp, b.pstate(), tuple(b.reg(i) for i in range(31)), b.read_sysreg("HCR_EL2"), b.icount)


def test_break_continue_and_the_stop_display(dbg: Debugger):
    out = plain(dbg.execute("break __guest_exit"))
    assert out.startswith("breakpoint 1 at ") and "__guest_exit (asm/kvm/entry.S:" in out
    out = plain(dbg.execute("continue"))
    b = dbg.board
    assert b.pc == b.resolve("__guest_exit")
    assert "breakpoint 1" in out and "__guest_exit (asm/kvm/entry.S:" in out
    # the exception that brought us here, decoded, and PSTATE with every field
    hvc = [e for e in b.events if isinstance(e, ev.ExceptionEntry)][-1]
    assert hvc.cause == "hvc" and f"ESR {hvc.esr:#010x} (EC=0x16 (HVC)" in out
    ps = b.pstate()
    assert f"EL={ps.el} SPSel={ps.sp}" in out
    assert all(f" {f.label}={getattr(ps, f.key)}" in out for f in PSTATE)  # every field of regs.PSTATE


def test_watch_pan_stops_where_it_changes_and_reverse_stepi_goes_back(dbg: Debugger):
    dbg.execute("break __guest_exit")
    dbg.execute("continue")
    b = dbg.board
    before = b.pstate().pan
    out = plain(dbg.execute("watch pstate.pan"))
    assert out == "watchpoint 2: watch pstate.pan"
    markup = dbg.execute("continue")
    after = b.pstate().pan
    assert after != before and f"pstate.pan {before} -> {after}" in plain(markup)
    assert f"[bold reverse yellow]PAN={after}[/]" in markup  # the changed field, highlighted
    at = state(b)
    dbg.execute("reverse-stepi")
    assert b.icount == at[-1] - 1 and b.pstate().pan == before
    dbg.execute("stepi")
    assert state(b) == at


def test_reverse_stepi_reproduces_every_earlier_state(dbg: Debugger):
    b = dbg.board
    trail = []
    for _ in range(400):
        trail.append(state(b))
        dbg.stepi(1)
    for back in (1, 2, 33, 399):
        dbg.reverse_stepi(back)
        assert state(b) == trail[400 - back]
        dbg.stepi(back)
    assert state(b)[-1] == 400


def test_reverse_across_checkpoints_and_reverse_continue(dbg: Debugger):
    dbg.execute("break guest_entry")
    out = plain(dbg.execute("continue"))
    assert "breakpoint 1" in out
    b = dbg.board
    at_guest = state(b)
    dbg.execute("delete 1")
    dbg.execute("catch exception hvc el2")
    dbg.execute("continue")
    assert b.pstate().el == 2 and b.icount > at_guest[-1]
    dbg.execute("break guest_entry")
    out = plain(dbg.execute("reverse-continue"))
    assert "breakpoint at guest_entry" in out and state(b) == at_guest
    out = plain(dbg.execute("reverse-continue"))
    assert "start of the history" in out and b.icount == 0
    assert plain(dbg.execute("reverse-stepi")).startswith("at the start of the history")


def test_catch_watch_sysreg_and_memory(dbg: Debugger):
    dbg.execute("catch exception hvc el2")
    out = plain(dbg.execute("continue"))
    assert "catchpoint 1: hvc EL1 -> EL2" in out
    dbg.execute("delete")
    out = plain(dbg.execute("watch HCR_EL2"))
    assert out == "watchpoint 2: watch HCR_EL2"
    out = plain(dbg.execute("continue"))
    b = dbg.board
    assert "watchpoint 2: HCR_EL2 written with" in out
    written = int(out.split("written with ")[1].split()[0], 16)
    assert b.read_sysreg("HCR_EL2") == written  # the MSR completed before the stop


def test_memory_watch_stops_after_the_store(dbg: Debugger):
    # __guest_exit stores the guest's x2/x3 at [x1, #16] first: watch that slot
    dbg.execute("break __guest_exit")
    dbg.execute("continue")
    b = dbg.board
    slot = b.reg(1) + 16
    assert plain(dbg.execute("watch *$x1+0x10 16")) == f"watchpoint 2: watch *{slot:#x} 16"
    out = plain(dbg.execute("continue"))
    assert f"watchpoint 2: *{slot:#x} = " in out
    value = int(out.split(f"*{slot:#x} = ")[1].split()[0], 16)
    assert int.from_bytes(b.read_mem(slot, 8), "little") == value == b.reg(2)
    assert b.pc == b.resolve("__guest_exit+0x8")  # stopped after the stp


def test_a_stop_carries_the_watch_that_fired_and_the_stub_reports_the_address_written(dbg: Debugger):
    dbg.execute("catch exception hvc el2")
    st = dbg.cont()
    assert st.reason == StopReason.WATCH and isinstance(st.hit.watch, CatchException) and st.hit.watch.num == 1
    assert isinstance(st.hit.event, ev.ExceptionEntry) and st.hit.event.cause is Cause.HVC
    dbg.execute("delete")
    dbg.execute("break __guest_exit")
    dbg.execute("continue")
    slot = dbg.board.reg(1) + 16  # __guest_exit's first store: the guest's x2/x3 at [x1, #16]
    dbg.execute(f"watch *{slot - 8:#x} 32")  # a range that starts below the word written
    st = dbg.cont()
    assert isinstance(st.hit.watch, MemWatch) and st.hit.watch.addr == slot - 8
    assert isinstance(st.hit.event, ev.MemoryWrite) and st.hit.event.addr == slot
    # the stub's stop reply names the address written (gdb's watch:ADDR), from the same record
    dbg.reverse_stepi(1)
    dbg.execute("delete")
    stub = GdbStub(dbg)
    assert stub.handle(f"Z2,{slot - 8:x},20".encode()) == b"OK"
    assert stub.handle(b"c") == f"T05watch:{slot:x};thread:1;".encode()


def test_state_commands_and_set(dbg: Debugger):
    dbg.execute("break __guest_exit")
    dbg.execute("continue")
    b = dbg.board
    assert f"x0  {b.reg(0):#018x}" in plain(dbg.execute("info registers"))
    assert f"HCR_EL2      {b.read_sysreg('HCR_EL2'):#018x}" in plain(dbg.execute("info sysregs el2"))
    assert "hvc EL1 -> EL2" in plain(dbg.execute("info exceptions"))
    mem = b.read_mem(b.sp, 16)
    out = plain(dbg.execute("x/2gx $sp"))
    assert f"{int.from_bytes(mem[:8], 'little'):#018x} {int.from_bytes(mem[8:], 'little'):#018x}" in out
    out = plain(dbg.execute("disassemble __guest_exit 2"))
    assert "asm/kvm/entry.S:" in out and "<__guest_exit>" in out and "=>" in out
    assert "=>" in plain(dbg.execute("list"))
    dbg.execute("set pstate.pan=0")
    assert b.pstate().pan == 0
    dbg.execute("set $x5=0x1234")
    assert b.reg(5) == 0x1234
    dbg.execute("set TPIDR_EL2=0x77")
    assert b.read_sysreg("TPIDR_EL2") == 0x77
    # a change cannot be replayed: the history starts again here
    assert plain(dbg.execute("reverse-stepi")).startswith("at the start of the history")
    assert "irq pending" in dbg.execute("inject irq")


@pytest.mark.parametrize("cmd, msg", [
    ("frobnicate", "unknown command frobnicate"),
    ("break no_such_label", "no location no_such_label"),
    ("watch pstate.xyz", "no PSTATE field xyz"),
    ("watch NOT_A_REG", "no system register NOT_A_REG"),
    ("x/4qq 0", "x/4qq: use x/NFU"),
    ("stepi zero", "not a count: zero"),
    ("catch exception teleport", "catch exception: unknown teleport"),
])
def test_bad_commands_are_one_line(dbg: Debugger, cmd: str, msg: str):
    with pytest.raises(DebuggerError) as e:
        dbg.execute(cmd)
    assert str(e.value).startswith(msg) and "\n" not in str(e.value)


def test_nothing_loaded_and_unknown_scenario():
    d = Debugger()
    with pytest.raises(DebuggerError, match="nothing loaded"):
        d.execute("stepi")
    with pytest.raises(DebuggerError, match="no scenario v4.13/nope"):
        d.execute("load scenario nope")


def test_step_next_finish_on_a_program(tmp_path: Path):
    src = tmp_path / "p.S"
    src.write_text("""    .text
    .global _start
_start:
    mov     x0, #1
    bl      f
    mov     x2, #3
    ldr     x0, =0x84000008
    smc     #0
f:
    mov     x1, #2
    add     x1, x1, #1
    ret
""")
    d = Debugger()
    d.load_program(str(src))
    b = d.board
    d.execute("stepi")
    d.execute("next")  # over the bl
    assert b.pc == b.resolve("_start+8") and b.reg(1) == 3
    d.execute("reverse-stepi")  # the last instruction run was f's ret
    assert b.pc == b.resolve("f+8")
    d.execute("reverse-stepi 3")
    assert b.pc == b.resolve("_start+4") and b.icount == 1
    d.execute("step")  # into f
    assert b.pc == b.resolve("f")
    out = plain(d.execute("finish"))
    assert b.pc == b.resolve("_start+8")
    assert not out.startswith("breakpoint")  # an internal breakpoint is not announced
    out = plain(d.execute("continue"))
    assert "PSCI SYSTEM_OFF" in out


def test_dit_and_ssbs_in_the_debugger_and_the_gdb_description(tmp_path: Path):
    # facts §8: MSR DIT/SSBS change PSTATE bits 24 and 12; the debugger watches them like any
    # field of the PSTATE table, and gdb's cpsr flags name them at those bits.
    src = tmp_path / "d.S"
    src.write_text("    .text\n    .global _start\n_start:\n    nop\n    msr dit, #1\n    msr ssbs, #1\n"
                   "    ldr x0, =0x84000008\n    smc #0\n")
    d = Debugger()
    d.load_program(str(src))
    plain(d.execute("watch pstate.dit"))
    out = plain(d.execute("continue"))
    assert d.board.pstate().dit == 1 and d.board.pc == d.board.resolve("_start+8")
    assert "DIT=1" in out and "SSBS=0" in out
    d.execute("stepi")
    assert "SSBS=1" in plain(d.execute("info pstate"))
    d.execute("set pstate.dit=0")
    assert d.board.pstate().dit == 0 and d.board.pstate().ssbs == 1
    xml = target_xml()
    assert '<field name="DIT" start="24" end="24"/>' in xml and '<field name="SSBS" start="12" end="12"/>' in xml
    assert '<field name="BTYPE" start="10" end="11"/>' in xml


def test_batch_front_end(tmp_path: Path):
    script = tmp_path / "cmds"
    script.write_text("break __guest_exit\ncontinue\ninfo sysregs HCR_EL2\nbogus\nquit\n")
    res = subprocess.run([sys.executable, "-m", "harness", "debug", SCENARIO, "--variant", VARIANT,
                          "--batch", str(script), "--no-color"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 1  # one command failed
    assert "__guest_exit (asm/kvm/entry.S:" in res.stdout and "HCR_EL2      0x" in res.stdout
    assert res.stderr.strip() == f"{script}:4: unknown command bogus; try help"
    res = subprocess.run([sys.executable, "-m", "harness", "debug", "nope"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_step_after_a_run_that_ended_on_its_budget_executes():
    # regression: the native counter's limit from the run stopped the next step before it ran
    d = Debugger()
    d.load_scenario(SCENARIO, VARIANT)
    b = d.board
    b.run(500)
    pc, ic = b.pc, b.icount
    b.step(1)
    assert b.icount == ic + 1 and b.pc != pc


# ---- the GDB stub


def _packet(body: bytes) -> bytes:
    return b"$" + body + b"#" + checksum(body)


@pytest.fixture
def stub_conn():
    d = Debugger()
    d.load_scenario(SCENARIO, VARIANT)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stub = GdbStub(d)
    t = threading.Thread(target=stub.serve, args=(listener,), daemon=True)
    t.start()
    c = socket.create_connection(listener.getsockname())
    c.settimeout(10)
    yield c, d
    c.close()
    listener.close()


def _ask(c: socket.socket, body: bytes) -> bytes:
    """Send a packet; the first reply that is not console output (O packets)."""
    c.sendall(_packet(body))
    data = b""
    while True:
        while not (b"$" in data and b"#" in data[data.index(b"$"):]
                   and len(data) >= data.index(b"#", data.index(b"$")) + 3):
            data += c.recv(65536)
        start = data.index(b"$")
        end = data.index(b"#", start)
        reply, data = data[start + 1 : end], data[end + 3 :]
        if not (reply.startswith(b"O") and reply != b"OK"):
            return reply


def test_stub_registers_memory_and_bad_packets(stub_conn):
    c, d = stub_conn
    assert b"ReverseStep+" in _ask(c, b"qSupported:multiprocess+")
    xml = _ask(c, b"qXfer:features:read:target.xml:0,3fff")
    assert xml.startswith(b"l") and b'name="cpsr"' in xml and b"hcr_el2" in xml
    cpsr = int.from_bytes(bytes.fromhex(_ask(c, b"p21").decode()), "little")
    assert cpsr == d.board.pstate().to_bits()
    g = bytes.fromhex(_ask(c, b"g").decode())
    assert int.from_bytes(g[32 * 8 : 33 * 8], "little") == d.board.pc
    assert _ask(c, b"m40080000,4") == d.board.read_mem(0x40080000, 4).hex().encode()
    assert _ask(c, b"mZZ,4") == b"E02"  # malformed
    c.sendall(b"$m0,4#00")  # bad checksum: nak, no reply
    assert c.recv(1) == b"-"
    c.sendall(b"$" + b"M" * 0x5000)  # oversized
    got = b""
    while b"E01" not in got:
        got += c.recv(100)
    assert _ask(c, b"?").startswith(b"T05")  # still serving


def test_stub_step_reverse_and_monitor(stub_conn):
    c, d = stub_conn
    pc0 = d.board.pc
    assert _ask(c, b"s").startswith(b"T05")
    assert d.board.pc != pc0
    assert _ask(c, b"bs").startswith(b"T05")
    assert d.board.pc == pc0
    assert _ask(c, b"bs") == b"T05replaylog:begin;thread:1;"
    c.sendall(_packet(b"qRcmd," + b"pstate".hex().encode()))
    data = b""
    while b"$OK#" not in data:
        data += c.recv(65536)
    out = bytes.fromhex(data.split(b"$O")[1].split(b"#")[0].decode()).decode()
    assert out.startswith("PSTATE 0x")


@pytest.mark.skipif(shutil.which("gdb-multiarch") is None, reason="gdb-multiarch not installed")
def test_real_gdb_multiarch(tmp_path: Path):
    # what the harness says PSTATE is at __guest_exit
    ref = Debugger()
    ref.load_scenario(SCENARIO, VARIANT)
    ref.execute("break __guest_exit")
    ref.execute("continue")
    want_pan = ref.board.pstate().pan
    guest_exit = ref.board.pc
    next_pc = ref.board.pc + 4

    srv = subprocess.Popen([sys.executable, "-m", "harness", "gdbserver", "--port", "0", SCENARIO,
                            "--variant", VARIANT], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = srv.stderr.readline()
        port = int(line.rsplit(":", 1)[1])
        script = tmp_path / "g.gdb"
        script.write_text(f"""set pagination off
set confirm off
set architecture aarch64
target remote 127.0.0.1:{port}
break *{guest_exit:#x}
continue
printf "PC=%lx\\n", $pc
printf "CPSR=%x\\n", $cpsr
stepi
printf "PC=%lx\\n", $pc
reverse-stepi
printf "PC=%lx\\n", $pc
x/4gx $sp
monitor info sysregs HCR_EL2
detach
""")
        res = subprocess.run(["gdb-multiarch", "-q", "-batch", "-x", str(script)], capture_output=True, text=True,
                             timeout=120)
    finally:
        srv.terminate()  # SIGTERM: the server removes its temporary ELF
        srv.wait()
    out = res.stdout + res.stderr
    pcs = [int(ln.split("=")[1], 16) for ln in out.splitlines() if ln.startswith("PC=")]
    assert pcs == [guest_exit, next_pc, guest_exit], out + res.stderr
    cpsr = int(next(ln for ln in out.splitlines() if ln.startswith("CPSR=")).split("=")[1], 16)
    assert PState.from_bits(cpsr).pan == want_pan and PState.from_bits(cpsr).el == 2
    assert out.count("0x") >= 4 and "HCR_EL2      0x" in out
    assert res.returncode == 0, res.stderr
