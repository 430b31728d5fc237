"""The board: exception entry Unicorn lacks, checked ERETs, VHE redirection, stops, events.

Each expectation is derived from a rule of ../shared/reference/arm-pstate-facts.md,
named in the test; the programs run on real Unicorn with real page tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.arch.pstate import PState
from harness.asm import assemble_text
from harness.machine import decode
from harness.machine.board import Board, BoardError
from harness.trace.events import ExceptionEntry, ExceptionReturn, PStateChange, SysregWrite

ROOT = Path(__file__).resolve().parents[1]

# A VHE host (E2H=TGE=1) at EL2 with the MMU on: 0x4000_0000 a kernel 2 MiB block (AP=00),
# 0x4020_0000 a user block (AP=01); the vector skips the faulting instruction.
VHE_MMU = r"""
    .text
    .global _start
_start:
    ldr     x0, =0x488000000        // HCR_EL2 = E2H | TGE | RW
    msr     hcr_el2, x0
    isb
    adr     x0, vectors
    msr     vbar_el1, x0            // E2H: reaches VBAR_EL2
    ldr     x0, =0xff00
    msr     mair_el1, x0
    ldr     x0, =(25 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23) | (2 << 30))
    msr     tcr_el1, x0
    adr     x0, l1
    msr     ttbr0_el1, x0
    isb
    ldr     x0, =SCTLR_VALUE
    msr     sctlr_el1, x0
    isb
    ldr     x1, =0x40200000         // user page
    ldr     x2, =0x40000000         // kernel page
    BODY
    ldr     x0, =0x84000008
    smc     #0

    .balign 2048
vectors:
    .skip   0x200
    mrs     x10, elr_el1            // E2H: ELR_EL2
    add     x10, x10, #4
    msr     elr_el1, x10
    eret

    .balign 4096
l1:
    .quad   0x00000000 | (1 << 10) | (1 << 2) | 1
    .quad   l2 + 3
    .fill   510, 8, 0
    .balign 4096
l2:
    .quad   0x40000000 | (1 << 10) | (3 << 8) | (0 << 6) | 1
    .quad   0x40200000 | (1 << 10) | (3 << 8) | (1 << 6) | 1
    .fill   510, 8, 0
"""
# From EL2 into EL1h at label el1, with VBAR_EL1 = vec1 and VBAR_EL2 = vec2 (HCR replaced per test).
TO_EL1 = """
    .text
    .global _start
_start:
    ldr x0, =HCR
    msr hcr_el2, x0
    adr x0, vec1
    msr vbar_el1, x0
    adr x0, vec2
    msr vbar_el2, x0
    mov x0, #0x3c5
    msr spsr_el2, x0
    adr x0, el1
    msr elr_el2, x0
    eret
el1:"""
SPAN0 = 0x30450839  # M=1, SPAN=0
SPAN1 = 0x30C50839  # M=1, SPAN=1


def run(src: str, cpu: str = "max", **kw):
    board = Board(cpu, **kw)
    board.load(assemble_text(src, "test.S", features=board.features))
    return board, board.run(2_000_000)


def vhe(body: str, sctlr: int = SPAN0):
    return run(VHE_MMU.replace("SCTLR_VALUE", hex(sctlr)).replace("BODY", body))


def entries(result) -> list[ExceptionEntry]:
    return [e for e in result.events if isinstance(e, ExceptionEntry)]


def test_svc_hvc_entry_and_eret_at_el1():
    # facts §1: SVC from EL1 goes to EL1 (vector +0x200), ELR = next insn, ESR 0x56000000|imm;
    # HVC from EL1 goes to EL2 (+0x400), ESR 0x5a000000|imm; ERET restores the SPSR.
    board, r = run(TO_EL1.replace("HCR", "0x80000000") + r"""
    svc #0x33
after_svc:
    hvc #0x44
after_hvc:
    ldr x0, =0x84000008
    smc #0
    .balign 2048
vec1:
    .skip 0x200
    eret
    .balign 2048
vec2:
    .skip 0x400
    eret
""")
    assert r.status == "poweroff", r.message
    svc, hvc = entries(r)
    img = board.image
    assert (svc.cause, svc.from_el, svc.to_el, svc.esr, svc.elr) == ("svc", 1, 1, 0x56000033, img.addr_of("after_svc"))
    assert svc.vector == img.addr_of("vec1") + 0x200
    assert (hvc.cause, hvc.to_el, hvc.esr, hvc.elr) == ("hvc", 2, 0x5A000044, img.addr_of("after_hvc"))
    assert hvc.vector == img.addr_of("vec2") + 0x400
    rets = [e for e in r.events if isinstance(e, ExceptionReturn)]
    assert [(e.from_el, e.to_el, e.illegal, e.qemu_pstate) for e in rets] == [(2, 1, False, None), (1, 1, False, None), (2, 1, False, None)]


def test_pan_fault_in_vhe_host_and_pan_set_on_entry():
    # facts §3: PAN=1 at EL2 with E2H=1 faults a privileged load from an AP=01 page (DFSC perm L2 = 0x0e);
    # facts §1.6: entry to EL2 with E2H=TGE=1 and SPAN=0 sets PAN.
    board, r = vhe("msr pan, #0\n    msr pan, #1\np1: ldr x3, [x1]\n    msr pan, #0\np2: ldr x4, [x1]")
    assert r.status == "poweroff", r.message
    (e,) = entries(r)
    assert e.pc == board.image.addr_of("p1")
    assert (e.esr, e.far, e.from_el, e.to_el) == (0x9600000E, 0x40200000, 2, 2)
    assert PState.from_bits(e.pstate_after).pan == 1


def test_span_1_leaves_pan_alone_in_vhe_host():
    # facts §1.6: with SCTLR_EL2.SPAN=1 the entry leaves PAN as it was (0 here).
    board, r = vhe("msr pan, #0\n    msr uao, #0\np3: ldtr x5, [x2]", sctlr=SPAN1)
    (e,) = entries(r)
    assert PState.from_bits(e.pstate_before).pan == 0
    assert PState.from_bits(e.pstate_after).pan == 0


def test_ldtr_sttr_follow_uao_in_vhe_host():
    # facts §3: at EL2 with E2H:TGE=11, LDTR is an EL0 access unless UAO=1 (then privileged, so PAN applies);
    # facts §1.2: UAO is cleared on every entry.
    board, r = vhe(
        "msr pan, #0\n    msr uao, #0\np3: ldtr x5, [x2]\n    msr uao, #1\np4: ldtr x6, [x2]\n"
        "    msr pan, #1\np5: sttr x6, [x1]"
    )
    assert r.status == "poweroff", r.message
    faults = {board.image.symbol_at(e.pc): e for e in entries(r)}
    assert set(faults) == {"p3", "p5"}
    assert faults["p3"].esr == 0x9600000E and faults["p3"].far == 0x40000000
    assert faults["p5"].esr == 0x9600004E  # WnR=1
    assert PState.from_bits(faults["p5"].pstate_before).uao == 1
    assert PState.from_bits(faults["p5"].pstate_after).uao == 0


def test_e2h_redirects_el1_names_and_el12_aliases():
    # facts §7 / DESIGN: at EL2 with E2H=1, SCTLR_EL1 names SCTLR_EL2; SCTLR_EL12 reaches the real SCTLR_EL1.
    board, r = vhe("mrs x20, sctlr_el2\n    mrs x21, sctlr_el12\n    mrs x22, sctlr_el1")
    assert r.status == "poweroff", r.message
    assert board.reg(20) == SPAN0 and board.reg(22) == SPAN0
    assert board.reg(21) == board.read_sysreg("SCTLR_EL1") != SPAN0
    writes = {e.name: e.redirected_to for e in r.events if isinstance(e, SysregWrite)}
    assert writes["SCTLR_EL1"] == "SCTLR_EL2" and writes["VBAR_EL1"] == "VBAR_EL2"


def test_el12_is_undefined_without_e2h():
    # D5.6: *_EL12 names are UNDEFINED unless E2H=1 at EL2 -> EC 0x00.
    board, r = run(r"""
    .text
    .global _start
_start:
    adr x0, vec
    msr vbar_el2, x0
bad: mrs x0, sctlr_el12
    b .
    .balign 2048
vec:
    .skip 0x200
    ldr x0, =0x84000008
    smc #0
""")
    (e,) = entries(r)
    assert (e.cause, e.esr >> 26, e.pc) == ("undefined", 0, board.image.addr_of("bad"))


def test_illegal_eret_follows_arm_not_qemu():
    # facts §2: an illegal return keeps EL, sets IL, and (Arm pseudocode) still restores PAN;
    # Unicorn's QEMU 5.0 helper does not restore PAN: the event says so and the Arm result wins.
    # With IL=1 the next instruction takes an Illegal Execution state exception (EC 0x0e).
    board, r = run(r"""
    .text
    .global _start
_start:
    adr x0, vec
    msr vbar_el2, x0
    ldr x0, =(0x3cd | (1 << 22))    // EL3h (above EL2: illegal) with PAN
    msr spsr_el2, x0
    adr x0, target
    msr elr_el2, x0
    eret
target:
    nop
    .balign 2048
vec:
    .skip 0x200
    mrs x9, spsr_el2
    ldr x0, =0x84000008
    smc #0
""")
    assert r.status == "poweroff", r.message
    (ret,) = [e for e in r.events if isinstance(e, ExceptionReturn)]
    assert ret.illegal and ret.qemu_pstate is not None and "pan" in ret.note
    after = PState.from_bits(ret.pstate_after)
    assert (after.el, after.il, after.pan) == (2, 1, 1)
    (ill,) = entries(r)
    assert ill.cause == "illegal_state" and ill.esr >> 26 == 0x0E and ill.pc == board.image.addr_of("target")
    assert PState.from_bits(board.reg(9)).il == 1


def test_irq_injection_routes_by_imo_and_waits_for_unmask():
    # facts §1 routing: IRQ goes to EL2 when HCR_EL2.IMO=1, vector +0x480 from EL1;
    # an IRQ targeting EL1 at EL1 waits while PSTATE.I=1.
    src = TO_EL1 + r"""
    nop
spot:
    nop
    nop
unmask:
    msr daifclr, #2
spin:
    b spin
    .balign 2048
vec1:
    .skip 0x280
    ldr x0, =0x84000008
    smc #0
    .balign 2048
vec2:
    .skip 0x480
    ldr x0, =0x84000008
    smc #0
"""
    board = Board()
    board.load(assemble_text(src.replace("HCR", hex(0x80000010)), "irq.S"))
    board.inject("irq", at="spot")
    r = board.run(100_000)
    (e,) = entries(r)
    assert (e.exc_type, e.to_el, e.vector_offset, e.elr) == ("irq", 2, 0x480, board.image.addr_of("spot"))
    board = Board()
    board.load(assemble_text(src.replace("HCR", hex(0x80000000)), "irq.S"))
    board.inject("irq", at="spot")
    r = board.run(100_000)
    (e,) = entries(r)
    assert (e.to_el, e.vector_offset) == (1, 0x280)
    assert e.elr == board.image.addr_of("spin")  # taken right after the unmask


def test_pstate_change_events_record_before_and_after():
    board, r = vhe("msr pan, #1\n    msr pan, #1\n    msr uao, #1")
    changes = [e for e in r.events if isinstance(e, PStateChange)]
    assert [c.changes for c in changes] == [{"pan": [0, 1]}, {}, {"uao": [0, 1]}]
    assert all(PState.from_bits(c.pstate_before).el == 2 for c in changes)


def test_icount_is_exact_at_events():
    board, r = run(r"""
    .text
    .global _start
_start:
    adr x0, vec
    msr vbar_el2, x0
    mov x1, #100
1:  subs x1, x1, #1
    b.ne 1b
    svc #1
    ldr x0, =0x84000008
    smc #0
    .balign 2048
vec:
    .skip 0x200
    eret
""")
    (e,) = entries(r)
    assert e.icount == 3 + 200 + 1  # the SVC itself retires before the exception
    assert r.icount == e.icount + 1 + 2  # eret, ldr, smc


def test_a57_has_no_pan_and_msr_pan_is_undefined():
    board, r = run(r"""
    .text
    .global _start
_start:
    adr x0, vec
    msr vbar_el2, x0
    msr pan, #1
    b .
    .balign 2048
vec:
    .skip 0x200
    ldr x0, =0x84000008
    smc #0
""", cpu="a57")
    assert not board.features.has_pan and not board.features.has_vhe
    (e,) = entries(r)
    assert e.cause == "undefined"


@pytest.mark.parametrize(
    "src, status, words",
    [
        ("_start: add x0, x0, #1\n b _start", "budget", "budget of 50,000"),
        ("_start: mov x0, #0x1000\n ldr x1, [x0]", "unmapped", "0x1000"),
        ("_start: wfi", "halted", "WFI"),
        ("_start: adr x0, v\n msr vbar_el2, x0\n brk #1\n .balign 2048\nv: .skip 0x200\n brk #2", "loop", "exception loop"),
    ],
)
def test_stops_are_reported(src, status, words):
    board = Board()
    board.load(assemble_text("    .text\n    .global _start\n" + src, "stop.S"))
    r = board.run(50_000)
    assert r.status == status and words in r.message


def test_same_input_same_events_byte_for_byte(tmp_path):
    prog = tmp_path / "p.S"
    prog.write_text(VHE_MMU.replace("SCTLR_VALUE", hex(SPAN0)).replace("BODY", "msr pan, #1\n ldr x3, [x1]"))
    outs = []
    for i in range(2):
        ev = tmp_path / f"e{i}.jsonl"
        subprocess.run([sys.executable, "-m", "harness", "run", str(prog), "--events", str(ev)], check=True, cwd=ROOT)
        outs.append(ev.read_bytes())
    assert outs[0] == outs[1] and len(outs[0].splitlines()) > 5
    kinds = {json.loads(line)["type"] for line in outs[0].splitlines()}
    assert {"exception_entry", "exception_return", "label", "sysreg_write", "stop"} <= kinds


def test_cli_exit_codes_and_one_line_errors(tmp_path):
    bad = tmp_path / "bad.S"
    bad.write_text("    .text\n_start:\n    frobnicate x0\n")
    p = subprocess.run([sys.executable, "-m", "harness", "run", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and "bad.S:3" in p.stderr and "Traceback" not in p.stderr
    loop = tmp_path / "loop.S"
    loop.write_text("    .text\n    .global _start\n_start:\n    b _start\n")
    p = subprocess.run([sys.executable, "-m", "harness", "run", str(loop), "--max-insns", "1000"],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 1 and "budget" in p.stderr and "_start" in p.stderr
    p = subprocess.run([sys.executable, "-m", "harness", "run", str(tmp_path / "missing.S")], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_bad_board_options_are_one_line_errors():
    with pytest.raises(BoardError, match="unknown CPU model"):
        Board("cortex-x1")
    with pytest.raises(BoardError, match="unknown architecture quirk"):
        Board(quirks=["no_such_thing"])


def test_quirk_keep_uao_on_entry_changes_what_the_cpu_does():
    # The debug switch makes entry break facts §1.2 on purpose: UAO survives the exception.
    src = VHE_MMU.replace("SCTLR_VALUE", hex(SPAN0)).replace("BODY", "msr uao, #1\n    msr pan, #1\np1: ldr x3, [x1]")
    for quirks, uao_after in (((), 0), (("keep_uao_on_entry",), 1)):
        board = Board(quirks=quirks)
        board.load(assemble_text(src, "q.S"))
        (e,) = entries(board.run(100_000))
        assert PState.from_bits(e.pstate_after).uao == uao_after


DIT_SSBS = r"""
    .text
    .global _start
_start:
    adr x0, vec
    msr vbar_el2, x0
    mrs x10, id_aa64pfr0_el1
    mrs x11, id_aa64pfr1_el1
    msr dit, #1
    mrs x12, dit
    mov x0, #0x1000
    msr ssbs, x0
    mrs x13, ssbs
    ldr x1, =0x100030c50830     // SCTLR_EL2 (E2H=0 layout) with DSSBS (bit 44)
    msr sctlr_el2, x1
    hvc #1
after_hvc:
    ldr x0, =0x84000008
    smc #0
    .balign 2048
vec:
    .skip 0x200
    mrs x14, dit
    mrs x15, ssbs
    mrs x16, spsr_el2
    msr dit, #0
    msr ssbs, #0
    eret
"""


@pytest.mark.parametrize("step", [False, True])
def test_dit_and_ssbs_are_supplied_where_unicorn_lacks_them(step):
    # facts §8: QEMU 7.2 max's ID fields (DIT=1; BT=1, SSBS=2); MSR/MRS put each bit in place;
    # entry keeps DIT (AArch64.TakeException does not assign it), SSBS = SCTLR_EL2.DSSBS, SPSR
    # holds both (bits 24, 12); ERET loads them back from SPSR.
    board = Board()
    board.load(assemble_text(DIT_SSBS, "dit.S", features=board.features))
    if step:
        while board.step() is None:
            pass
        r = board._result()
    else:
        r = board.run(100_000)
    assert r.status == "poweroff", r.message
    assert board.features.has_dit and board.features.has_ssbs and board.features.has_bti
    pfr0, pfr1 = board.reg(10), board.reg(11)
    assert (pfr0 >> 48) & 0xF == 1 and (pfr1 >> 4) & 0xF == 2 and pfr1 & 0xF == 1 and (pfr1 >> 8) & 0xF == 0
    assert (board.reg(12), board.reg(13)) == (1 << 24, 1 << 12)
    (e,) = entries(r)
    assert PState.from_bits(e.pstate_after).dit == 1 and PState.from_bits(e.pstate_after).ssbs == 1
    assert (board.reg(14), board.reg(15)) == (1 << 24, 1 << 12)
    assert board.reg(16) & (1 << 24 | 1 << 12) == 1 << 24 | 1 << 12
    (ret,) = [x for x in r.events if isinstance(x, ExceptionReturn)]
    assert ret.qemu_pstate is None and not ret.note  # supplied fields are not a QEMU difference
    assert (PState.from_bits(ret.pstate_after).dit, PState.from_bits(ret.pstate_after).ssbs) == (1, 1)
    changes = [c.changes for c in r.events if isinstance(c, PStateChange)]
    assert {"dit": [0, 1]} in changes and {"ssbs": [0, 1]} in changes and {"dit": [1, 0]} in changes


def test_a57_has_no_dit_and_the_board_supplies_nothing():
    board, r = run(DIT_SSBS, cpu="a57")
    assert not board.features.has_dit and not board.features.has_ssbs
    assert (board.read_sysreg("ID_AA64PFR0_EL1") >> 48) & 0xF == 0
    assert [e.cause for e in entries(r)][:1] == ["undefined"]  # mrs id regs are fine; msr dit is not


def test_memory_watch_and_stop_on_event():
    board = Board()
    board.load(assemble_text(r"""
    .text
    .global _start
_start:
    ldr x1, =buf
    mov x2, #5
    str x2, [x1]
wrote:
    mov x2, #6
    str x2, [x1, #8]
    ldr x0, =0x84000008
    smc #0
    .data
buf: .quad 0, 0
""", "w.S"))
    buf = board.image.addr_of("buf")
    board.add_mem_watch(buf, 8)
    board.stop_on_event = lambda e: f"write {e.value}" if e.kind == "memory_write" else None
    r = board.run(1000)
    assert r.status == "watch" and r.message == "write 5"
    assert board.location(board.pc).startswith("wrote")  # stopped after the store
    r = board.run(1000)
    assert r.status == "poweroff"  # the second store is outside the watched range


def test_close_frees_the_board_without_the_cyclic_collector():
    """Board.close() breaks every reference cycle (hooks, collaborators): with the collector
    off, dropping the last reference frees the Board and its Uc at once."""
    import gc
    import weakref

    img = assemble_text("    .text\n    .global _start\n_start:\n    mov x0, #1\n    hvc #0\n", "t.S")
    gc.collect()
    gc.disable()
    try:
        b = Board(label_events=True, trace_insns=True)
        b.load(img)
        b.step(2)
        board_ref, uc_ref = weakref.ref(b), weakref.ref(b.uc)
        b.close()
        del b
        assert board_ref() is None and uc_ref() is None
    finally:
        gc.enable()


ISR_PROGRAM = r"""
    .text
    .global _start
_start:
    ldr     x0, =HCR
    msr     hcr_el2, x0
    msr     daifset, #0xf
    mrs     x1, s3_0_c12_c1_0       // ISR_EL1
    ldr     x0, =0x84000008
    smc     #0
"""


@pytest.mark.parametrize("kinds", [(), ("irq",), ("fiq",), ("serror",), ("irq", "fiq", "serror")])
@pytest.mark.parametrize("hcr", [0x80000000, 0x80000000 | 0x38])  # RW; RW|IMO|FMO|AMO
def test_isr_el1_shows_pending_interrupts_by_the_rule(kinds, hcr):
    """ISR_EL1 read at EL2 (Arm ARM, ISR_EL1): I/F/A show the pending physical IRQ/FIQ/SError;
    the virtual ones only replace them at EL1 under HCR_EL2.xMO. Here the interrupts are
    injected before the MRS and held pending by PSTATE's masks (at EL2 they target EL2)."""
    from harness.arch.exceptions import ExceptionType, SysCtx, isr_el1

    img = assemble_text(ISR_PROGRAM.replace("HCR", hex(hcr)), "isr.S")
    b = Board()
    try:
        b.load(img)
        for k in kinds:
            b.inject(k, at="_start")
        r = b.run(100)
        assert r.status == "poweroff"
        # ISR_EL1's bit positions from the Arm ARM (A bit 8, I bit 7, F bit 6), not from regs.py
        expected = ("serror" in kinds) << 8 | ("irq" in kinds) << 7 | ("fiq" in kinds) << 6
        assert b.reg(1) == expected
        types = {ExceptionType[k.upper()] for k in kinds}
        assert isr_el1(types, 2, SysCtx(hcr_el2=hcr)) == expected
        # at EL1 with IMO/FMO/AMO set the virtual pending bits show instead (none set here)
        assert isr_el1(types, 1, SysCtx(hcr_el2=hcr)) == (0 if hcr & 0x38 else expected)
    finally:
        b.close()


# Straight-line code (no branch before the final SMC), so the instruction at address A is the
# ((A - _start) / 4)-th to run: every event's count follows from its PC. The MRS/MSR of EL1
# registers under E2H are completed by the board's hook (VHE redirection), which moves the PC;
# labelled instructions and stores follow them in the same translated block.
STRAIGHT = r"""
    .text
    .global _start
_start:
    ldr     x1, =buf
    ldr     x0, =0x488000000        // HCR_EL2 = E2H | TGE | RW
    msr     hcr_el2, x0
    isb
    str     x0, [x1]
    mov     x2, #1
    mrs     x3, sctlr_el1           // E2H: SCTLR_EL2, completed in the hook
    str     x2, [x1, #8]
    mov     x2, #2
    .global after_mrs
after_mrs:
    str     x2, [x1, #16]
    msr     tpidr_el1, x2           // not redirected: Unicorn performs it
    msr     elr_el1, x2             // E2H: ELR_EL2
    stp     x2, x3, [x1, #24]
    mrs     x5, spsr_el12           // an alias Unicorn lacks: the hook moves the PC
    str     x5, [x1, #48]
    msr     elr_el12, x5
    .global after_msr
after_msr:
    mov     x4, #4
    str     w4, [x1, #40]
    ldr     x0, =0x84000008
    smc     #0
    .data
buf: .skip 64
"""


@pytest.mark.parametrize("trace", [False, True], ids=["plain", "trace_insns"])
@pytest.mark.parametrize("mode", ["run", "step"])
def test_every_event_carries_the_pc_and_count_of_its_instruction(mode, trace):
    """Each MemoryWrite, SysregWrite and LabelReached names the instruction that caused it and
    the count of instructions retired before it, in a free run and when stepping."""
    board = Board(label_events=True, trace_insns=trace)
    board.load(assemble_text(STRAIGHT, "straight.S"))
    start, buf = board.image.addr_of("_start"), board.image.addr_of("buf")
    board.add_mem_watch(buf, 64)
    if mode == "run":
        r = board.run(1000)
    else:
        while (r := board.step()) is None:
            pass
    assert r.status == "poweroff"
    smc = r.pc - 4 if board.word_at(r.pc - 4) == 0xD4000003 else r.pc
    n_insns = (smc - start) // 4 + 1
    assert r.icount == n_insns
    # the stores, by capstone's reading of each instruction of the program
    stores = [a for a in range(start, smc, 4) if decode.disasm_text(board.word_at(a)).startswith("st")]
    writes = [e for e in r.events if e.kind == "memory_write"]
    assert sorted({e.pc for e in writes}) == stores and len(stores) == 6
    kinds = {"memory_write", "sysreg_write", "label"}
    checked = [e for e in r.events if e.kind in kinds]
    assert {e.kind for e in checked} == kinds
    for e in checked:
        assert e.icount == (e.pc - start) // 4, (e, board.location(e.pc))
    labels = [e.label for e in r.events if e.kind == "label"]
    assert labels.count("after_mrs") == 1 and labels.count("after_msr") == 1
    if trace:
        assert list(board.trace_lines())[-1].split("\t")[:2] == [str(n_insns - 1), hex(smc)]
        assert len(list(board.trace_lines())) == n_insns


def _events_by_mode(scenario_id: str, mode: str) -> tuple[Board, list]:
    from harness.memmap import RAM_BASE
    from harness.scenarios.catalog import find_scenario
    from harness.scenarios.runner import load_scenario_board

    board = load_scenario_board(find_scenario(scenario_id), label_events=True, trace_insns=True)
    board.add_mem_watch(RAM_BASE, board.ram_size)
    if mode == "run":
        board.run(100_000)
    else:
        while board.step() is None:
            pass
    return board, [(e.kind, getattr(e, "pc", None), e.icount) for e in board.events]


def test_run_and_step_agree_on_every_event_and_the_trace():
    """A whole nVHE world switch (an instruction abort in it, its EL2 vectors, ERETs, watched
    stores): a free run and single steps record the same events at the same counts, and each
    event's count indexes its own instruction in the native instruction trace."""
    board, by_run = _events_by_mode("v4.13/max-nvhe-kernel_ds-pan0-uao0-hvc", "run")
    assert any(k == "exception_entry" and board.location(pc).startswith("uao_thread_switch")
               for k, pc, _ in by_run)  # the instruction abort the step count got wrong
    _, by_step = _events_by_mode("v4.13/max-nvhe-kernel_ds-pan0-uao0-hvc", "step")
    assert by_run == by_step
    trace = [int(line.split("\t")[1], 16) for line in board.trace_lines()]
    assert len(trace) == board.icount
    entries_at = {(pc, ic) for k, pc, ic in by_run if k == "exception_entry"}
    for kind, pc, ic in by_run:
        if kind in ("memory_write", "sysreg_write", "pstate_change", "exception_return", "label") \
                and (pc, ic) not in entries_at:  # (a label on a faulting instruction: it never retires)
            assert trace[ic] == pc, (kind, board.location(pc), ic)


def test_pc_pstate_hcr_reads_what_the_single_reads_do():
    b = Board()
    try:
        b.write_sysreg("HCR_EL2", (1 << 34) | (1 << 27) | (1 << 31))   # E2H, TGE, RW
        b.set_pstate(PState(el=1, sp=1, pan=1))
        b.pc = 0x40080010
        assert b.pc_pstate_hcr() == (b.pc, b.pstate(), b.read_sysreg("HCR_EL2")) == (
            0x40080010, PState(el=1, sp=1, pan=1), (1 << 34) | (1 << 27) | (1 << 31))
    finally:
        b.close()
