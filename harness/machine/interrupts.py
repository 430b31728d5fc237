"""The interrupt controller: injected IRQ/FIQ/SError, pending until their trigger (an
instruction count or an address) and then until routing and masking let them be taken
(route_async, async_masked), delivered in order at instruction boundaries; WFI wake-up; and the
pending state ISR_EL1 shows."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.arch import syndrome
from harness.arch.cause import Cause
from harness.arch.exceptions import ExceptionType, SysCtx, async_masked, isr_el1, route_async
from harness.trace.events import StopReason

if TYPE_CHECKING:
    from harness.machine.board import Board

KINDS = {"irq": ExceptionType.IRQ, "fiq": ExceptionType.FIQ, "serror": ExceptionType.SERROR}


@dataclass
class Injection:
    kind: ExceptionType
    at_icount: int | None = None
    at_addr: int | None = None
    armed: bool = False  # reached its trigger, waiting until unmasked
    note: str = ""  # copied into the ExceptionEntry event, to tell this injection from others

    def reached(self, pc: int, icount: int) -> bool:
        """Its trigger is here: the PC at its address, or its count reached."""
        return self.at_addr == pc or (self.at_icount is not None and self.at_icount <= icount)


class InterruptController:
    """The board's pending asynchronous exceptions."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.pending: list[Injection] = []

    @staticmethod
    def kind(name: str | ExceptionType) -> ExceptionType | None:
        return name if isinstance(name, ExceptionType) else KINDS.get(name.lower())

    def add(self, inj: Injection) -> None:
        self.pending.append(inj)

    def snapshot(self) -> list[Injection]:
        return [dataclasses.replace(i) for i in self.pending]

    def restore(self, saved: list[Injection]) -> None:
        self.pending = [dataclasses.replace(i) for i in saved]

    def next_due(self, icount: int, limit: int) -> int:
        """The lowest injection count in (icount, limit), else `limit`: where a run must stop."""
        for inj in self.pending:
            if inj.at_icount is not None and not inj.armed and icount < inj.at_icount < limit:
                limit = inj.at_icount
        return limit

    def due(self, pc: int, icount: int) -> bool:
        """at_boundary at this boundary could take one: one is armed or reaches its trigger here."""
        return any(inj.armed or inj.reached(pc, icount) for inj in self.pending)

    def at_addr(self, addr: int) -> bool:
        """An injection waits for `addr` (the code hook reached it): arm it. True if one did."""
        for inj in self.pending:
            if inj.at_addr == addr and not inj.armed:
                inj.armed = True
                return True
        return False

    def isr(self, el: int, ctx: SysCtx) -> int:
        """ISR_EL1 read at `el`: the armed (pending) interrupts, by the Arm rule (isr_el1)."""
        return isr_el1({i.kind for i in self.pending if i.armed}, el, ctx)

    def at_boundary(self) -> bool:
        """At an instruction boundary: arm the injections that are due (their count reached, or
        the PC at their address) and take every armed one that routing (route_async) and masking
        (async_masked) no longer hold back, in order; taking one can leave another takeable (one
        routed to a higher EL). True when one was taken.

        What can make a held-back interrupt takeable: a PSTATE write (MSR DAIF*, ERET), hooked
        as observe points, or a change the user made, hence this runs before each run or step.
        Not exception entry (it sets D, A, I and F and never lowers the EL), and not an HCR_EL2
        write: that happens at EL2, where route_async sends every interrupt to EL2 anyway."""
        b = self.board
        taken = False
        while self.pending and b.stopped is None:
            pc, ic = b.pc, b.icount
            for inj in self.pending:
                if inj.reached(pc, ic):
                    inj.armed = True
            if not self._take_unmasked():
                break
            taken = True
        return taken

    def _take_unmasked(self) -> bool:
        b = self.board
        ps = b.port.pstate()
        ctx = b.port.sysctx()
        for inj in self.pending:
            if not inj.armed:
                continue
            target = route_async(inj.kind, ps.el, ctx)
            if async_masked(inj.kind, target, ps, ctx):
                continue
            self.pending.remove(inj)
            name = inj.kind.name.lower()
            if target == 3:
                b.halt(StopReason.UNHANDLED, f"{name} at {b.location(b.pc)} is routed to EL3, where only PSCI firmware runs")
                return False
            esr = syndrome.syn_serror() if inj.kind is ExceptionType.SERROR else None
            b.exc.take(inj.kind, target, esr, None, b.pc, Cause(name), inj.note)
            return True
        return False

    def wakeup(self) -> bool:
        """WFI waits for the next scheduled interrupt: time passes, so it arrives now."""
        waiting = [i for i in self.pending if i.at_icount is not None and not i.armed]
        armed = [i for i in self.pending if i.armed]
        if not waiting and not armed:
            return False
        for inj in waiting:
            inj.armed = True
        self.at_boundary()
        return True  # a masked interrupt still wakes WFI; execution goes on after it
