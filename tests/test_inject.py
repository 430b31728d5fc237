"""Injected IRQ/FIQ/SError are taken at exact instruction boundaries (issue 13).

The expected outcome of every injection comes from the rules in harness.arch, applied to the
states the CPU went through: a reference run without injections records (icount, PC, PSTATE,
HCR/SCR...) at every instruction boundary; an interrupt made pending at boundary N is taken at
the first boundary k >= N where AArch64 routing (route_async: AArch64.TakePhysical*Exception,
HCR_EL2.IMO/FMO/AMO/TGE, SCR_EL3) sends it to an EL where masking (async_masked: D1.13.4, a
target above the current EL is never masked, the same EL by PSTATE.I/F/A, a lower EL always)
lets it in: before instruction k+1, with ELR = the PC at k. The board must agree in its run
path (native execution, hooks) and its step path (one instruction at a time).
"""

from __future__ import annotations

import pytest

from harness.arch.exceptions import ExceptionType, async_masked, route_async
from harness.asm import assemble_text
from harness.machine.board import Board, BoardError
from harness.trace.events import ExceptionEntry

# EL2 with DAIF masked (reset) -> unmask A, then I, mask again, then ERET to EL1h with DAIF
# masked and HCR_EL2.IMO=1 (IRQ to EL2: never masked at EL1), FMO=AMO=0 (FIQ/SError to EL1:
# masked by F/A) -> EL1 unmasks F. Every vector records ELR and powers off.
PROGRAM = r"""
    .text
    .global _start
_start:
    adr     x0, vec2
    msr     vbar_el2, x0
    adr     x0, vec1
    msr     vbar_el1, x0
    nop
label_masked:
    nop
    msr     daifclr, #4             // PSTATE.A = 0: SError at EL2 unmasked
    nop
    msr     daifclr, #2             // PSTATE.I = 0: IRQ at EL2 unmasked
label_unmasked:
    nop
    msr     daifset, #15            // all masked again
    nop
    ldr     x0, =0x80000010         // HCR_EL2 = RW | IMO
    msr     hcr_el2, x0
    mov     x0, #0x3c5              // SPSR: EL1h, DAIF masked
    msr     spsr_el2, x0
    adr     x0, el1
    msr     elr_el2, x0
    eret
el1:
    nop
    msr     daifclr, #1             // PSTATE.F = 0: FIQ routed to EL1 unmasked
    nop
    nop
    ldr     x0, =0x84000008
    smc     #0

    .balign 2048
vec1:
    .rept 16
    .balign 128
    mrs     x20, elr_el1
    ldr     x0, =0x84000008
    smc     #0
    .endr

    .balign 2048
vec2:
    .rept 16
    .balign 128
    mrs     x20, elr_el2
    ldr     x0, =0x84000008
    smc     #0
    .endr
"""
KINDS = {"irq": ExceptionType.IRQ, "fiq": ExceptionType.FIQ, "serror": ExceptionType.SERROR}


@pytest.fixture(scope="module")
def image():
    return assemble_text(PROGRAM, "inject.S")


@pytest.fixture(scope="module")
def boundaries(image) -> list[tuple]:
    """(icount, pc, pstate, sysctx) at every boundary of a run without injections."""
    b = Board()
    b.load(image)
    out = []
    while b.off is None:
        out.append((b.icount, b.pc, b.pstate(), b.sysctx()))
        b.step(1)
    return out


def expected(boundaries, kind: str, first: int) -> tuple[int, int, int] | None:
    """(icount, ELR, target EL) where the rules take an interrupt pending from boundary `first`."""
    t = KINDS[kind]
    for icount, pc, ps, ctx in boundaries[first:]:
        target = route_async(t, ps.el, ctx)
        if not async_masked(t, target, ps, ctx):
            return icount, pc, target
    return None  # held back until the program powered off


def taken(board: Board) -> tuple[int, int, int] | None:
    async_entries = [e for e in board.events if isinstance(e, ExceptionEntry) and e.exc_type != "sync"]
    if not async_entries:
        return None
    e = async_entries[0]
    assert board.reg(20) == e.elr  # the handler read the ELR the entry wrote
    return e.icount, e.elr, e.to_el


def fresh(image) -> Board:
    b = Board()
    b.load(image)
    return b


def finish(board: Board, path: str) -> None:
    if path == "run":
        assert board.run(10_000).status == "poweroff"
    else:
        for _ in range(10_000):
            if board.step(1) is not None:
                break
        assert board.off == "PSCI SYSTEM_OFF"


@pytest.mark.parametrize("path", ["run", "step"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_at_every_count_from_the_start(image, boundaries, kind, path):
    # a later count: scheduled at icount N from reset, for every boundary N of the program
    for n in range(len(boundaries)):
        b = fresh(image)
        b.inject(kind, at_icount=n)
        finish(b, path)
        assert taken(b) == expected(boundaries, kind, n), f"{kind} at icount {n} ({path})"


@pytest.mark.parametrize("path", ["run", "step"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_now_at_every_boundary(image, boundaries, kind, path):
    # the board is at boundary N (reached by running or stepping), the interrupt is made
    # pending now: taken before instruction N+1 if unmasked, else where the rules let it in
    for n in range(len(boundaries)):
        b = fresh(image)
        if n:
            if path == "run":
                assert b.run(n).status == "budget"
            else:
                b.step(n)
        assert b.icount == n and b.pc == boundaries[n][1]
        b.inject(kind, at_icount=b.icount)
        finish(b, path)
        assert taken(b) == expected(boundaries, kind, n), f"{kind} now at icount {n} ({path})"


@pytest.mark.parametrize("path", ["run", "step"])
@pytest.mark.parametrize("label", ["label_masked", "label_unmasked", "el1"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_at_a_label(image, boundaries, kind, label, path):
    addr = image.addr_of(label)
    first = next(i for i, bd in enumerate(boundaries) if bd[1] == addr)
    b = fresh(image)
    b.inject(kind, at=label)
    finish(b, path)
    assert taken(b) == expected(boundaries, kind, first)


def test_the_cases_the_rules_distinguish(image, boundaries):
    # the program does exercise each rule: now-unmasked, masked-then-daifclr, routed above
    # the current EL (IRQ with IMO=1 at EL1), and held back to the end (SError at EL1, AMO=0)
    unmask_a = image.addr_of("label_masked") + 8  # after msr daifclr, #4
    assert expected(boundaries, "serror", 0)[1] == unmask_a
    at_el1 = image.addr_of("el1")
    assert expected(boundaries, "irq", [bd[1] for bd in boundaries].index(at_el1)) == (
        [bd[0] for bd in boundaries if bd[1] == at_el1][0], at_el1, 2)
    assert expected(boundaries, "serror", [bd[1] for bd in boundaries].index(at_el1)) is None
    fiq = expected(boundaries, "fiq", 0)
    assert fiq[1] == at_el1 + 8 and fiq[2] == 1


def test_an_injection_is_refused_in_the_past_at_a_bad_address_or_when_off(image):
    b = fresh(image)
    b.step(3)
    with pytest.raises(BoardError, match="the board is at 3"):
        b.inject("irq", at_icount=2)
    with pytest.raises(BoardError, match="not 4-byte aligned"):
        b.inject("irq", at=0x40080002)
    b.run(10_000)
    with pytest.raises(BoardError, match="the program has ended"):
        b.inject("irq", at_icount=b.icount)
