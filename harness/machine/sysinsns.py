"""The system instructions the board completes or checks around Unicorn: MRS/MSR hooks (VHE
redirection, ID registers as QEMU 7.2 shows them, PSTATE fields the board supplies), MSR
(immediate) to a supplied PSTATE field, and each ERET and PSTATE write checked against
AArch64.ExceptionReturn (the Arm result wins)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from unicorn import Uc
from unicorn import arm64_const as U

from harness.arch.exceptions import ExceptionReturn, exception_return
from harness.arch.pstate import PState, msr_immediate, read_pstate_sysreg, write_pstate_sysreg
from harness.arch.regs import PSTATE
from harness.arch.sysregs import decode_msr_imm
from harness.machine.sysport import flushes_tlb, named
from harness.trace import events as ev

if TYPE_CHECKING:
    from harness.machine.board import Board


class SysInsns:
    """MRS/MSR, MSR (immediate) and ERET as the board completes them."""

    def __init__(self, board: Board) -> None:
        self.board = board
        # registers whose MRS the board completes besides the VHE-redirected ones
        self._supplied_names = frozenset(board.supplied_regs) | board.port.id_values.keys() | {"ISR_EL1"}

    # -- MRS / MSR hooks (before the access; returning 1 skips the instruction)

    def on_mrs(self, uc: Uc, reg: int, cp, _ud: object) -> int:
        named_reg = named(cp)
        if named_reg is None or not (named_reg.alias_of or named_reg.e2h_redirect
                                     or named_reg.name in self._supplied_names):
            return 0  # Unicorn reads it (most MRS: one dict look-up here)
        value = self._supplied_read(cp)
        if value is None:
            hit = self.board.port.redirect(cp)
            if hit is None:
                return 0
            value = self.board.port.cpr(hit[1])
        if reg not in (U.UC_ARM64_REG_XZR, U.UC_ARM64_REG_INVALID):
            uc.reg_write(reg, value)
        return self._skip(uc, cp)

    def _skip(self, uc: Uc, cp) -> int:
        """Return 1: Unicorn skips the instruction. For a register Unicorn's CPU does not
        implement (the *_EL12/*_EL02 aliases, a PSTATE field it lacks) it does not advance the
        PC (facts §7): move it here; QEMU ended its block at that UNDEFINED instruction. Not for
        the others: a PC written in a hook makes Unicorn leave its block at the next hooked or
        memory instruction and translate the rest again, which the native counter would count
        twice."""
        reg = named(cp)
        if reg is None or reg.alias_of or reg.name in self.board.supplied_regs:
            uc.reg_write(U.UC_ARM64_REG_PC, uc.reg_read(U.UC_ARM64_REG_PC) + 4)
        return 1

    def _supplied_read(self, cp) -> int | None:
        """MRS of an ID register (QEMU 7.2's fields) or of a PSTATE field the board supplies;
        None for the rest. ID registers are UNDEFINED at EL0: Unicorn decides there."""
        reg = named(cp)
        if reg is None:
            return None
        b = self.board
        if reg.name in b.supplied_regs:
            return read_pstate_sysreg(b.port.pstate(), reg.name)
        if reg.name in b.port.id_values and b.port.pstate().el > 0:
            return b.port.id_values[reg.name]
        if reg.name == "ISR_EL1" and (el := b.port.pstate().el) > 0:
            return b.irq.isr(el, b.port.sysctx())  # Unicorn never sees the injected interrupts
        return None

    def on_msr(self, uc: Uc, reg: int, cp, _ud: object) -> int:
        b = self.board
        port = b.port
        pc = uc.reg_read(U.UC_ARM64_REG_PC)
        reg_named = named(cp)
        name = reg_named.name if reg_named is not None else f"S{cp.op0}_{cp.op1}_C{cp.crn}_C{cp.crm}_{cp.op2}"
        hit = port.redirect(cp)
        b.emit(ev.SysregWrite(b.ic.at(pc), pc, name, cp.val, hit[1].name if hit else None))
        if name in b.supplied_regs:
            port.set_pstate(write_pstate_sysreg(port.pstate(), name, cp.val))  # a PSTATE field we supply
            return self._skip(uc, cp)
        if hit is None:
            return 0
        target = hit[1]
        port.cpr_write(target, cp.val)
        if flushes_tlb(target):
            port.flush_tlb()
        return self._skip(uc, cp)

    # -- instructions the board performs

    def supply(self, addr: int) -> None:
        """MSR (immediate) to a PSTATE field Unicorn's CPU lacks but the model has (DIT, SSBS:
        facts §8), not yet executed: the board performs it (msr_immediate) and moves on."""
        b = self.board
        before = b.port.pstate()
        name, imm = decode_msr_imm(b.exc.code_word(addr))
        b.port.set_pstate(msr_immediate(before, name, imm))
        b.pc = addr + 4
        b.ic.set(b.icount + 1)
        b.trace_executed(addr)
        PendingCheck(addr, before, b.plan.supply_at[addr], 0, 0, None).finish(b)

    def eret_to_aarch32(self) -> bool:
        """SPSR_ELx.M[4] of an ERET about to run: a return to AArch32. This PE has no AArch32,
        so it is an illegal return (AArch64.ExceptionReturn); Unicorn's QEMU would switch to
        AArch32 instead (HCR_EL2.RW=0 makes EL1 AArch32 there) and run A32 code the board cannot
        follow, so the board performs it."""
        el = self.board.port.pstate().el
        return el > 0 and PSTATE.nRW.isset(self.board.port.read(f"SPSR_EL{el}"))

    def eret_by_board(self, addr: int) -> None:
        b = self.board
        check = self.pending_check(addr)
        b.ic.set(b.icount + 1)
        b.trace_executed(addr)
        check.finish(b, native=False)

    def pending_check(self, addr: int) -> PendingCheck:
        """The state an ERET (addr among the board's ERETs) or a PSTATE write needs checked after it."""
        b = self.board
        ps = b.port.pstate()
        if addr in b.plan.eret_at and ps.el > 0:
            spsr = b.port.read(f"SPSR_EL{ps.el}")
            elr = b.port.read(f"ELR_EL{ps.el}")
            expected = exception_return(ps, spsr, elr, b.port.sysctx(), b.features)
            return PendingCheck(addr, ps, "eret", spsr, elr, expected)
        return PendingCheck(addr, ps, b.plan.observe_at.get(addr, "eret"), 0, 0, None)


@dataclass
class PendingCheck:
    """State captured just before an ERET or a PSTATE write, checked just after it."""

    addr: int
    before: PState
    insn: str
    spsr: int
    elr: int
    expected: ExceptionReturn | None

    def finish(self, board: Board, *, native: bool = True) -> None:
        """`native`: Unicorn ran the instruction; otherwise the board performs the return itself."""
        port = board.port
        after = port.pstate()
        pc = board.pc
        if self.expected is None:
            changes = {k: [a, b] for k, (a, b) in self.before.diff(after).items()}
            board.emit(ev.PStateChange(board.icount - 1, self.addr, self.insn, self.before.to_bits(), after.to_bits(), changes))
            return
        exp = self.expected
        supplied = {k: getattr(exp.pstate, k) for k in board.supplied}
        if any(getattr(after, k) != v for k, v in supplied.items()):
            # Unicorn's CPU lacks these fields (its ERET drops them): the board supplies them
            after = after.replace(**supplied)
            port.set_pstate(after)
        qemu_pstate = qemu_pc = None
        note = exp.reason or ""
        if not native:
            note = (note + "; " if note else "") + (
                "performed by the board: Unicorn's QEMU would enter AArch32, which this PE does not implement")
            port.set_pstate(exp.pstate)
            board.pc = exp.pc
        elif exp.pstate != after or exp.pc != pc:
            # QEMU 5.0's helper disagrees with AArch64.ExceptionReturn: the Arm result wins.
            qemu_pstate, qemu_pc = after.to_bits(), pc
            fields = ", ".join(f"{k} {a}->{b}" for k, (a, b) in after.diff(exp.pstate).items())
            note = (note + "; " if note else "") + f"Unicorn's ERET differed ({fields or 'pc'}); Arm result applied"
            port.set_pstate(exp.pstate)
            board.pc = exp.pc
        board.emit(
            ev.ExceptionReturn(
                board.icount - 1, self.addr, self.before.el, exp.pstate.el, self.before.to_bits(),
                exp.pstate.to_bits(), self.spsr, self.elr, exp.illegal, qemu_pstate, qemu_pc, note,
            )
        )
        if exp.pstate.il:
            # With PSTATE.IL=1 the next instruction takes an Illegal Execution state exception
            # (D1.4.4); Unicorn's translator never raises it, so the board does.
            board.exc.illegal_state(exp.pc)
