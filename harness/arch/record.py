"""An exception as the architecture records it (Sail's ExceptionRecord: class, syndrome,
virtual address, target EL), built from what the emulator reports: QEMU's exception number,
as Unicorn's interrupt hook gives it with no entry done (facts §7), looked up in QEMU_EXCEPTIONS.
Each record carries its Cause (harness.arch.cause), which events, observations and the
debugger's catchpoints name."""

from __future__ import annotations

from dataclasses import dataclass

from harness.arch.cause import Cause
from harness.arch.exceptions import SysCtx, route_sync
from harness.arch.features import Features
from harness.arch.insn import imm16, is_wfx, sysreg_operands
from harness.arch.pstate import PState
from harness.arch.syndrome import EC, make_esr, syn_sysreg_trap, syn_wfx
from harness.arch.sysregs import access_trap, by_encoding


@dataclass(frozen=True)
class QemuException:
    """What one QEMU exception number means."""

    name: str  # QEMU's EXCP_* name
    cause: Cause | None  # None: not an exception the harness takes (EL3's PSCI firmware)
    ec: int | None  # None: decided from the instruction (UNDEFINED, or a trap QEMU raises as one)
    syndrome: str  # how the ISS is derived: imm16 | undefined | iabt | dabt | firmware
    next_pc: bool = False  # QEMU reports the PC after the instruction (SVC, HVC, SMC)
    target: int | None = None  # a fixed target EL (else route_sync decides)


QEMU_EXCEPTIONS: dict[int, QemuException] = {
    1: QemuException("EXCP_UDEF", Cause.UNDEFINED, None, "undefined"),
    2: QemuException("EXCP_SWI", Cause.SVC, EC.SVC64, "imm16", next_pc=True),
    3: QemuException("EXCP_PREFETCH_ABORT", Cause.INST_ABORT, EC.IABT_LOW, "iabt"),
    4: QemuException("EXCP_DATA_ABORT", Cause.DATA_ABORT, EC.DABT_LOW, "dabt"),
    7: QemuException("EXCP_BKPT", Cause.BRK, EC.BRK, "imm16"),
    11: QemuException("EXCP_HVC", Cause.HVC, EC.HVC64, "imm16", next_pc=True),
    # SMC trapped by HCR_EL2.TSC: to EL2, the preferred return is the SMC itself
    12: QemuException("EXCP_HYP_TRAP", Cause.SMC_TRAP, EC.SMC64, "imm16", target=2),
    13: QemuException("EXCP_SMC", None, EC.SMC64, "firmware", next_pc=True),  # EL3: PSCI firmware
}
_SAME_EL = {EC.DABT_LOW: EC.DABT_CUR, EC.IABT_LOW: EC.IABT_CUR}


@dataclass(frozen=True)
class ExceptionRecord:
    ec: int
    iss: int
    cause: Cause
    vaddress: int | None = None  # FAR_ELx (aborts)
    target: int | None = None  # a fixed target EL, else route_sync
    note: str = ""

    def target_el(self, from_el: int, ctx: SysCtx, features: Features) -> int:
        return route_sync(self.ec, from_el, ctx, features) if self.target is None else self.target

    def esr(self, from_el: int, target_el: int) -> int:
        """ESR_ELx (IL=1): an abort taken to its own EL has the same-EL class (facts §4)."""
        ec = _SAME_EL.get(self.ec, self.ec) if target_el == from_el else self.ec
        return make_esr(ec, self.iss, 1)


def record_from_insn(q: QemuException, word: int, ps: PState, ctx: SysCtx, features: Features) -> ExceptionRecord:
    """The record of an exception the instruction word decides (every syndrome but the aborts')."""
    if q.syndrome == "imm16":
        return ExceptionRecord(q.ec, imm16(word), q.cause, target=q.target)
    return undefined_record(word, ps, ctx, features)


def undefined_record(word: int, ps: PState, ctx: SysCtx, features: Features) -> ExceptionRecord:
    """QEMU raises traps to EL2 as UNDEFINED too: a WFI/WFE trap (AArch64.CheckForWFxTrap), an
    MRS/MSR trapped by its register's access rule (sysregs.access_trap), else UNDEFINED."""
    wfx, is_wfe = is_wfx(word)
    if wfx:
        target = route_sync(EC.WFX, ps.el, ctx, features, is_wfe=is_wfe)
        return ExceptionRecord(EC.WFX, syn_wfx(is_wfe) & 0x1FFFFFF, Cause.WFX_TRAP, target=target)
    ops = sysreg_operands(word)
    if ops is not None:
        enc, rt, is_read = ops
        reg = by_encoding(*enc)
        target = None if reg is None else access_trap(reg, ps.el, is_read, ctx)
        if target is not None:
            return ExceptionRecord(EC.SYS64, syn_sysreg_trap(enc, rt, is_read) & 0x1FFFFFF, Cause.SYSREG_TRAP,
                                   target=target)
    return ExceptionRecord(EC.UNKNOWN, 0, Cause.UNDEFINED)
