"""The exception unit: what Unicorn reports (a QEMU exception number at UC_HOOK_INTR, facts §7)
made into an architectural ExceptionRecord (harness.arch.record), taken by
AArch64.TakeException (harness.arch.exceptions.take_exception) with the registers written;
the other exceptions the board raises itself (trapped WFI/WFE, illegal execution state, injected
interrupts through the interrupt controller); EL3's PSCI firmware; exception-loop detection."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from unicorn import UC_MEM_FETCH_UNMAPPED, UC_MEM_WRITE_UNMAPPED, Uc

from harness.arch import pagetable, syndrome
from harness.arch.cause import Cause
from harness.arch.exceptions import (
    ExceptionType,
    SysCtx,
    route_sync,
    take_exception,
    wfx_trap_target,
)
from harness.arch.pstate import PState
from harness.arch.record import QEMU_EXCEPTIONS, ExceptionRecord, QemuException, record_from_insn
from harness.arch.syndrome import EC
from harness.machine import decode
from harness.machine.runstate import Mode
from harness.trace import events as ev
from harness.trace.events import StopReason

if TYPE_CHECKING:
    from harness.machine.board import Board

PSCI_SYSTEM_OFF = 0x8400_0008
PSCI_SYSTEM_RESET = 0x8400_0009
PSCI_NOT_SUPPORTED = (1 << 64) - 1

_LOOP_REPEATS = 16  # identical exception entries in a row, each within _LOOP_GAP instructions
_LOOP_GAP = 8

EXCEPTION_NAMES = {  # ExceptionEntry.cause, as a stop message names it
    Cause.UNDEFINED: "UNDEFINED instruction", Cause.ILLEGAL_STATE: "Illegal Execution state exception",
    Cause.SVC: "SVC", Cause.HVC: "HVC", Cause.BRK: "BRK", Cause.SMC_TRAP: "SMC trapped by HCR_EL2.TSC",
    Cause.WFX_TRAP: "trapped WFI/WFE", Cause.SYSREG_TRAP: "trapped system register access",
    Cause.DATA_ABORT: "data abort", Cause.INST_ABORT: "instruction abort", Cause.IRQ: "IRQ", Cause.FIQ: "FIQ",
    Cause.SERROR: "SError",
}


class HarnessFault(Exception):
    """The board cannot model what Unicorn did; the run stops with this message."""


class ExceptionUnit:
    """Exception entry for one board."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self._loop_key: tuple | None = None
        self._loop_count = 0
        self._loop_icount = 0

    # -- from Unicorn

    def on_intr(self, uc: Uc, intno: int, _ud: object) -> None:
        if self.board.emu.mode is Mode.STEPPING:
            # An exception ends the step. A fetch abort used none of Unicorn's count=1 (the
            # count hook never ran), so it would run the vector's first instruction too.
            uc.emu_stop()
        try:
            self.from_unicorn(intno)
        except HarnessFault as e:
            self.board.halt(StopReason.ERROR, str(e))
        except Exception as e:  # a bug here must stop the run with a reason, not vanish in Unicorn
            self.board.halt(StopReason.ERROR, f"internal error while handling QEMU exception {intno}: {type(e).__name__}: {e}")

    def from_unicorn(self, intno: int) -> None:
        """Derive what QEMU decided (facts §7): an ExceptionRecord from QEMU's exception number
        (record.QEMU_EXCEPTIONS), and perform AArch64.TakeException for it."""
        b = self.board
        q = QEMU_EXCEPTIONS.get(intno)
        pc = b.pc
        ps = b.port.pstate()
        emu = b.emu
        b.check = None
        if q is not None and q.next_pc:
            insn_addr = pc - 4
        else:
            insn_addr = pc
            b.trace_not_executed(pc)  # it faulted: not retired
            if emu.mode is Mode.STEPPING and pc == emu.step_from:
                # (a fetch abort at the next instruction comes after the stepped one retired)
                emu.retired = False
        # the block hook counted the whole block this instruction starts or sits in (when
        # stepping too): retired = instructions before it, plus it for SVC/HVC/SMC
        b.ic.settle(pc)
        # The sysreg write the hook recorded did not happen if the MSR itself faulted.
        if b.events and isinstance(b.events[-1], ev.SysregWrite) and b.events[-1].pc == insn_addr:
            b.events.pop()
        if q is None:
            b.halt(StopReason.UNHANDLED, f"Unicorn reported QEMU exception {intno}, which the board does not model")
            return
        if q.syndrome == "firmware":
            self.firmware_smc()
            return
        ctx = b.port.sysctx()
        if q.syndrome in ("iabt", "dabt"):
            rec = self._abort_record(q, pc, ps, ctx)
        else:
            rec = record_from_insn(q, self.code_word(insn_addr), ps, ctx, b.features)
        target = rec.target_el(ps.el, ctx, b.features)
        if target == 3:
            b.halt(StopReason.UNHANDLED, f"{rec.cause} at {b.location(insn_addr)} is routed to EL3, where only PSCI firmware runs")
            return
        self.take(ExceptionType.SYNC, target, rec.esr(ps.el, target), rec.vaddress, pc, rec.cause, rec.note, at=insn_addr)

    def _abort_record(self, q: QemuException, pc: int, ps: PState, ctx: SysCtx) -> ExceptionRecord:
        """An instruction or data abort at `pc`: FAR and the fault status from a page-table walk."""
        if q.syndrome == "iabt":
            tr = self._translate(pc, ps, ctx, pagetable.Access(el=ps.el, fetch=True))
            fsc, note = self._fault_code(tr, "instruction abort", pc)
            return ExceptionRecord(q.ec, fsc, q.cause, vaddress=pc, note=note)
        word = self.code_word(pc)
        acc = decode.mem_access(word, pc, self.board.uc.reg_read)
        if acc is None:
            raise HarnessFault(f"data abort at {self.board.location(pc)} from an instruction the board cannot decode ({word:#010x})")
        tr = self._translate(acc.va, ps, ctx, pagetable.Access(el=ps.el, write=acc.write, unprivileged=acc.unprivileged))
        fsc, note = self._fault_code(tr, "data abort", pc)
        return ExceptionRecord(q.ec, fsc | (1 << 6 if acc.write else 0), q.cause, vaddress=acc.va, note=note)

    def _translate(self, va: int, ps: PState, ctx: SysCtx, access: pagetable.Access) -> pagetable.Translation:
        regime = pagetable.regime_for(ps.el, ctx)
        return pagetable.translate(self.board.read_u64, regime, self._mmu_regs(ctx), va, access, ps)

    def _mmu_regs(self, ctx: SysCtx) -> dict[str, int]:
        regs = {"HCR_EL2": ctx.hcr_el2, "SCTLR_EL1": ctx.sctlr_el1, "SCTLR_EL2": ctx.sctlr_el2}
        names = ["TTBR0_EL1", "TTBR1_EL1", "TCR_EL1", "TTBR0_EL2", "TCR_EL2"]
        if self.board.features.has_vhe:
            names.append("TTBR1_EL2")  # only a VHE CPU has it; reading it elsewhere makes Unicorn warn
        for name in names:
            regs[name] = self.board.port.read(name)
        return regs

    def _fault_code(self, tr: pagetable.Translation, what: str, pc: int) -> tuple[int, str]:
        if tr.fault is None:
            # Unicorn faulted where our walker sees none: say so rather than invent a cause.
            b = self.board
            msg = f"Unicorn raised a {what} at {b.location(pc)} that the page-table model does not explain ({tr.reason})"
            b.emit(ev.ModelMismatch(b.icount, pc, msg))
            return 0x21, msg  # reported as an alignment fault, the one cause the walker cannot see
        return syndrome.fault_status_code(tr.fault, tr.level), tr.reason

    def code_word(self, va: int) -> int:
        """The instruction word at a virtual address (page tables walked when the MMU is on)."""
        b = self.board
        ps = b.port.pstate()
        tr = self._translate(va, ps, b.port.sysctx(), pagetable.Access(el=ps.el, fetch=True))
        return b.word_at(tr.pa if tr.pa is not None else va)

    # -- entry

    def take(
        self, kind: ExceptionType, target: int, esr: int | None, far: int | None, elr: int, cause: Cause,
        note: str = "", at: int | None = None,
    ) -> None:
        """AArch64.TakeException; `at` is the instruction that caused it (event pc), default ELR."""
        b = self.board
        port = b.port
        ps = port.pstate()
        entry = take_exception(ps, target, kind, port.sysctx(), b.features, preferred_return=elr, esr=esr, far=far)
        if b.quirks:
            entry = self._apply_quirks(ps, entry)
        t = entry.target_el
        port.write(f"SPSR_EL{t}", entry.spsr)
        port.write(f"ELR_EL{t}", entry.elr)
        if entry.esr is not None:
            port.write(f"ESR_EL{t}", entry.esr)
        if entry.far is not None:
            port.write(f"FAR_EL{t}", entry.far)
        port.set_pstate(entry.pstate)
        b.pc = entry.vector
        icount = b.icount
        b.emit(
            ev.ExceptionEntry(
                icount, elr if at is None else at, kind.name.lower(), cause, ps.el, t, ps.to_bits(), entry.pstate.to_bits(),
                entry.spsr, entry.elr, entry.esr, entry.far, entry.vector, entry.vector_offset, note,
            )
        )
        self._detect_loop((t, entry.vector, entry.elr, entry.esr), icount, cause, entry)

    def _detect_loop(self, key: tuple, icount: int, cause: Cause, entry) -> None:
        if key == self._loop_key and icount - self._loop_icount <= _LOOP_GAP:
            self._loop_count += 1
        else:
            self._loop_key, self._loop_count = key, 1
        self._loop_icount = icount
        if self._loop_count >= _LOOP_REPEATS:
            b = self.board
            b.halt(
                StopReason.LOOP,
                f"exception loop: {cause} at {b.location(entry.elr)} entered the EL{entry.target_el} vector "
                f"{b.location(entry.vector)} {self._loop_count} times without progress",
                pc=entry.elr,
            )

    def _apply_quirks(self, before: PState, entry):
        quirks = self.board.quirks
        pstate = entry.pstate
        if "keep_uao_on_entry" in quirks:
            pstate = pstate.replace(uao=before.uao)
        if "no_pan_on_entry" in quirks:
            pstate = pstate.replace(pan=before.pan)
        if "dit_cleared_on_entry" in quirks:
            pstate = pstate.replace(dit=0)
        if "ssbs_kept_on_entry" in quirks:
            pstate = pstate.replace(ssbs=before.ssbs)
        return dataclasses.replace(entry, pstate=pstate)

    def wfx_in_host(self, addr: int) -> None:
        """WFI/WFE at EL0 in host, not yet executed: the Arm rule decides (wfx_trap_target)."""
        b = self.board
        is_wfe = decode.is_wfx(self.code_word(addr))[1]
        target = wfx_trap_target(0, b.port.sysctx(), is_wfe=is_wfe)
        if target is not None:
            esr = syndrome.make_esr(EC.WFX, syndrome.syn_wfx(is_wfe) & 0x1FFFFFF, 1)
            self.take(ExceptionType.SYNC, target, esr, None, addr, Cause.WFX_TRAP)
            return
        b.pc = addr + 4
        b.ic.set(b.icount + 1)
        b.trace_executed(addr)
        b.wfi_sleep()

    def illegal_state(self, pc: int) -> None:
        ps = self.board.port.pstate()
        target = route_sync(EC.ILLEGAL_STATE, ps.el, self.board.port.sysctx(), self.board.features)
        self.take(ExceptionType.SYNC, target, syndrome.make_esr(EC.ILLEGAL_STATE, 0), None, pc, Cause.ILLEGAL_STATE)

    def firmware_smc(self) -> None:
        """EL3 firmware: PSCI through SMC, as QEMU's virt board provides it."""
        b = self.board
        fn = b.reg(0) & 0xFFFF_FFFF
        if fn == PSCI_SYSTEM_OFF:
            b.off = "PSCI SYSTEM_OFF"
            b.halt(StopReason.POWEROFF, "PSCI SYSTEM_OFF")
        elif fn == PSCI_SYSTEM_RESET:
            b.off = "PSCI SYSTEM_RESET"
            b.halt(StopReason.RESET, "PSCI SYSTEM_RESET")
        else:
            b.set_reg(0, PSCI_NOT_SUPPORTED)

    # -- what a stop message says about exceptions

    def unmapped_message(self, access: int, addr: int) -> str:
        """What was accessed; a fetch from an exception vector names the exception that led there."""
        b = self.board
        # the last event that is not a stop (a debugger steps again at the vector), if no
        # instruction has run since
        last = next((e for e in reversed(b.events) if not isinstance(e, ev.Stop)), None)
        if (access == UC_MEM_FETCH_UNMAPPED and isinstance(last, ev.ExceptionEntry) and last.vector == addr
                and last.icount == b.icount):
            what = EXCEPTION_NAMES.get(last.cause, last.cause)
            esr = f" (ESR {last.esr:#010x}: {syndrome.decode_esr(last.esr)})" if last.esr is not None else ""
            return (f"{what} at {b.location(last.pc)} taken to EL{last.to_el}, whose vector "
                    f"VBAR_EL{last.to_el}+{last.vector_offset:#x} = {addr:#x} is unmapped{esr}")
        kind = {UC_MEM_WRITE_UNMAPPED: "write to", UC_MEM_FETCH_UNMAPPED: "fetch from"}.get(access, "read from")
        return f"{kind} unmapped address {addr:#x}"

    def last_exceptions(self) -> str:
        b = self.board
        last = [e for e in b.events[-200:] if isinstance(e, ev.ExceptionEntry)][-3:]
        if not last:
            return ""
        return "; last exceptions: " + ", ".join(
            f"{e.cause} EL{e.from_el}->EL{e.to_el} at {b.location(e.elr)}" for e in last
        )

