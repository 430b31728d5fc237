"""The AArch64 architecture as pure Python (never imports unicorn): PSTATE, exception
entry/return and routing, syndromes, the system-register table, stage-1 translation."""

from harness.arch.exceptions import (
    ExceptionEntry,
    ExceptionReturn,
    ExceptionType,
    SysCtx,
    async_masked,
    el_is_in_host,
    exception_return,
    route_async,
    route_sync,
    take_exception,
    vector_offset,
)
from harness.arch.features import FEATURES_A57, FEATURES_MAX, Features
from harness.arch.pstate import PSTATE_FIELDS, PState
from harness.arch.syndrome import EC, FaultType, decode_esr, fault_status_code, make_esr
from harness.arch.sysregs import SYSREGS, SysReg, UnknownSysReg, by_encoding, lookup

__all__ = [
    "EC", "FEATURES_A57", "FEATURES_MAX", "PSTATE_FIELDS", "SYSREGS", "ExceptionEntry",
    "ExceptionReturn", "ExceptionType", "FaultType", "Features", "PState", "SysCtx", "SysReg",
    "UnknownSysReg", "async_masked", "by_encoding", "decode_esr", "el_is_in_host",
    "exception_return", "fault_status_code", "lookup", "make_esr", "route_async", "route_sync",
    "take_exception", "vector_offset",
]
