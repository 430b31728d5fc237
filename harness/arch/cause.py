"""Why an exception was taken: the cause the board records in each ExceptionEntry event and the
debugger, the observations and the GDB stub match on. A StrEnum whose values are the strings the
traces have always carried, so events and JSON stay byte-identical."""

from __future__ import annotations

from enum import StrEnum


class Cause(StrEnum):
    SVC = "svc"  # AArch64.CallSupervisor
    HVC = "hvc"  # AArch64.CallHypervisor
    SMC_TRAP = "smc_trap"  # AArch64.CheckForSMCUndefOrTrap: HCR_EL2.TSC (an SMC to EL3 is PSCI firmware)
    BRK = "brk"  # AArch64.SoftwareBreakpoint
    UNDEFINED = "undefined"  # AArch64.UndefinedFault
    WFX_TRAP = "wfx_trap"  # AArch64.WFxTrap
    SYSREG_TRAP = "sysreg_trap"  # AArch64.SystemAccessTrap (HCR_EL2.TVM/TRVM)
    INST_ABORT = "inst_abort"  # AArch64.InstructionAbort
    DATA_ABORT = "data_abort"  # AArch64.DataAbort
    ILLEGAL_STATE = "illegal_state"  # AArch64.CheckIllegalState (PSTATE.IL)
    IRQ = "irq"  # AArch64.TakePhysicalIRQException
    FIQ = "fiq"  # AArch64.TakePhysicalFIQException
    SERROR = "serror"  # AArch64.TakePhysicalSErrorException

    @property
    def is_abort(self) -> bool:
        return self in (Cause.INST_ABORT, Cause.DATA_ABORT)

    @property
    def is_async(self) -> bool:
        """An interrupt (its exception type is its own name), not a synchronous exception."""
        return self in (Cause.IRQ, Cause.FIQ, Cause.SERROR)
