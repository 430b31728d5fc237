"""System-register table: encodings, VHE (E2H) redirection targets, *_EL12/*_EL02 aliases.

Encodings are (op0, op1, CRn, CRm, op2) as in the Arm ARM's register descriptions
(D13 / "AArch64 System Registers").  With HCR_EL2.E2H == 1, an access at EL2 to a
register that has `e2h_redirect` reaches that EL2 register instead, and the *_EL12
and *_EL02 names reach the EL1/EL0 registers (Arm ARM D5.6, "Virtualization Host
Extensions").  Unicorn's QEMU copy has both compiled out (facts §7): the board uses
this table to supply them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from harness.arch.exceptions import SysCtx
from harness.arch.regs import HCR_EL2


class UnknownSysReg(KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown system register"


@dataclass(frozen=True)
class SysReg:
    name: str
    op0: int
    op1: int
    crn: int
    crm: int
    op2: int
    e2h_redirect: str | None = None
    alias_of: str | None = None
    group: str = "misc"
    readonly: bool = False
    access: str | None = None  # the trap rule of an access (ACCESS_RULES), as QEMU's accessfn

    @property
    def encoding(self) -> tuple[int, int, int, int, int]:
        return (self.op0, self.op1, self.crn, self.crm, self.op2)

    @property
    def generic_name(self) -> str:
        return f"s{self.op0}_{self.op1}_c{self.crn}_c{self.crm}_{self.op2}"


# name, encoding, group, E2H redirect target (EL1 names only)
_TABLE: list[tuple[str, tuple[int, int, int, int, int], str, str | None]] = [
    # identification (read-only)
    ("MIDR_EL1", (3, 0, 0, 0, 0), "id", None),
    ("MPIDR_EL1", (3, 0, 0, 0, 5), "id", None),
    ("ID_AA64PFR0_EL1", (3, 0, 0, 4, 0), "id", None),
    ("ID_AA64PFR1_EL1", (3, 0, 0, 4, 1), "id", None),
    ("ID_AA64ISAR0_EL1", (3, 0, 0, 6, 0), "id", None),
    ("ID_AA64ISAR1_EL1", (3, 0, 0, 6, 1), "id", None),
    ("ID_AA64MMFR0_EL1", (3, 0, 0, 7, 0), "id", None),
    ("ID_AA64MMFR1_EL1", (3, 0, 0, 7, 1), "id", None),
    ("ID_AA64MMFR2_EL1", (3, 0, 0, 7, 2), "id", None),
    ("CURRENTEL", (3, 0, 4, 2, 2), "pstate", None),
    # PSTATE fields as registers
    ("SPSEL", (3, 0, 4, 2, 0), "pstate", None),
    ("PAN", (3, 0, 4, 2, 3), "pstate", None),
    ("UAO", (3, 0, 4, 2, 4), "pstate", None),
    ("DIT", (3, 3, 4, 2, 5), "pstate", None),
    ("SSBS", (3, 3, 4, 2, 6), "pstate", None),
    ("DAIF", (3, 3, 4, 2, 1), "pstate", None),
    ("NZCV", (3, 3, 4, 2, 0), "pstate", None),
    # EL1 system control and MMU (redirected to EL2 under VHE)
    ("SCTLR_EL1", (3, 0, 1, 0, 0), "mmu", "SCTLR_EL2"),
    ("ACTLR_EL1", (3, 0, 1, 0, 1), "misc", None),
    ("CPACR_EL1", (3, 0, 1, 0, 2), "misc", "CPTR_EL2"),
    ("TTBR0_EL1", (3, 0, 2, 0, 0), "mmu", "TTBR0_EL2"),
    ("TTBR1_EL1", (3, 0, 2, 0, 1), "mmu", "TTBR1_EL2"),
    ("TCR_EL1", (3, 0, 2, 0, 2), "mmu", "TCR_EL2"),
    ("SPSR_EL1", (3, 0, 4, 0, 0), "exception", "SPSR_EL2"),
    ("ELR_EL1", (3, 0, 4, 0, 1), "exception", "ELR_EL2"),
    ("SP_EL0", (3, 0, 4, 1, 0), "thread", None),
    ("AFSR0_EL1", (3, 0, 5, 1, 0), "exception", "AFSR0_EL2"),
    ("AFSR1_EL1", (3, 0, 5, 1, 1), "exception", "AFSR1_EL2"),
    ("ESR_EL1", (3, 0, 5, 2, 0), "exception", "ESR_EL2"),
    ("FAR_EL1", (3, 0, 6, 0, 0), "exception", "FAR_EL2"),
    ("PAR_EL1", (3, 0, 7, 4, 0), "mmu", None),
    ("MAIR_EL1", (3, 0, 10, 2, 0), "mmu", "MAIR_EL2"),
    ("AMAIR_EL1", (3, 0, 10, 3, 0), "mmu", "AMAIR_EL2"),
    ("VBAR_EL1", (3, 0, 12, 0, 0), "exception", "VBAR_EL2"),
    ("ISR_EL1", (3, 0, 12, 1, 0), "exception", None),
    ("CONTEXTIDR_EL1", (3, 0, 13, 0, 1), "thread", "CONTEXTIDR_EL2"),
    ("TPIDR_EL1", (3, 0, 13, 0, 4), "thread", None),
    ("CNTKCTL_EL1", (3, 0, 14, 1, 0), "timer", "CNTHCTL_EL2"),
    ("MDSCR_EL1", (2, 0, 0, 2, 2), "debug", None),
    # EL0
    ("TPIDR_EL0", (3, 3, 13, 0, 2), "thread", None),
    ("TPIDRRO_EL0", (3, 3, 13, 0, 3), "thread", None),
    ("CNTFRQ_EL0", (3, 3, 14, 0, 0), "timer", None),
    ("CNTVCT_EL0", (3, 3, 14, 0, 2), "timer", None),
    ("CNTP_CTL_EL0", (3, 3, 14, 2, 1), "timer", None),
    ("CNTP_CVAL_EL0", (3, 3, 14, 2, 2), "timer", None),
    ("CNTV_CTL_EL0", (3, 3, 14, 3, 1), "timer", None),
    ("CNTV_CVAL_EL0", (3, 3, 14, 3, 2), "timer", None),
    # EL2
    ("VPIDR_EL2", (3, 4, 0, 0, 0), "hyp", None),
    ("VMPIDR_EL2", (3, 4, 0, 0, 5), "hyp", None),
    ("SCTLR_EL2", (3, 4, 1, 0, 0), "mmu", None),
    ("ACTLR_EL2", (3, 4, 1, 0, 1), "misc", None),
    ("HCR_EL2", (3, 4, 1, 1, 0), "hyp", None),
    ("MDCR_EL2", (3, 4, 1, 1, 1), "hyp", None),
    ("CPTR_EL2", (3, 4, 1, 1, 2), "hyp", None),
    ("HSTR_EL2", (3, 4, 1, 1, 3), "hyp", None),
    ("TTBR0_EL2", (3, 4, 2, 0, 0), "mmu", None),
    ("TTBR1_EL2", (3, 4, 2, 0, 1), "mmu", None),
    ("TCR_EL2", (3, 4, 2, 0, 2), "mmu", None),
    ("VTTBR_EL2", (3, 4, 2, 1, 0), "hyp", None),
    ("VTCR_EL2", (3, 4, 2, 1, 2), "hyp", None),
    ("SPSR_EL2", (3, 4, 4, 0, 0), "exception", None),
    ("ELR_EL2", (3, 4, 4, 0, 1), "exception", None),
    ("SP_EL1", (3, 4, 4, 1, 0), "thread", None),
    ("AFSR0_EL2", (3, 4, 5, 1, 0), "exception", None),
    ("AFSR1_EL2", (3, 4, 5, 1, 1), "exception", None),
    ("ESR_EL2", (3, 4, 5, 2, 0), "exception", None),
    ("FAR_EL2", (3, 4, 6, 0, 0), "exception", None),
    ("HPFAR_EL2", (3, 4, 6, 0, 4), "exception", None),
    ("MAIR_EL2", (3, 4, 10, 2, 0), "mmu", None),
    ("AMAIR_EL2", (3, 4, 10, 3, 0), "mmu", None),
    ("VBAR_EL2", (3, 4, 12, 0, 0), "exception", None),
    ("ICC_SRE_EL2", (3, 4, 12, 9, 5), "hyp", None),
    ("CONTEXTIDR_EL2", (3, 4, 13, 0, 1), "thread", None),
    ("TPIDR_EL2", (3, 4, 13, 0, 2), "thread", None),
    ("CNTVOFF_EL2", (3, 4, 14, 0, 3), "timer", None),
    ("CNTHCTL_EL2", (3, 4, 14, 1, 0), "timer", None),
    # EL3
    ("SCTLR_EL3", (3, 6, 1, 0, 0), "mmu", None),
    ("SCR_EL3", (3, 6, 1, 1, 0), "hyp", None),
    ("TTBR0_EL3", (3, 6, 2, 0, 0), "mmu", None),
    ("TCR_EL3", (3, 6, 2, 0, 2), "mmu", None),
    ("SPSR_EL3", (3, 6, 4, 0, 0), "exception", None),
    ("ELR_EL3", (3, 6, 4, 0, 1), "exception", None),
    ("SP_EL2", (3, 6, 4, 1, 0), "thread", None),
    ("ESR_EL3", (3, 6, 5, 2, 0), "exception", None),
    ("FAR_EL3", (3, 6, 6, 0, 0), "exception", None),
    ("MAIR_EL3", (3, 6, 10, 2, 0), "mmu", None),
    ("VBAR_EL3", (3, 6, 12, 0, 0), "exception", None),
    ("TPIDR_EL3", (3, 6, 13, 0, 2), "thread", None),
]

# *_EL12 / *_EL02: op1 = 5 with the EL1/EL0 register's other fields (Arm ARM D5.6.1).
_ALIASES_EL12 = [
    "SCTLR_EL1", "CPACR_EL1", "TTBR0_EL1", "TTBR1_EL1", "TCR_EL1", "SPSR_EL1", "ELR_EL1",
    "AFSR0_EL1", "AFSR1_EL1", "ESR_EL1", "FAR_EL1", "MAIR_EL1", "AMAIR_EL1", "VBAR_EL1",
    "CONTEXTIDR_EL1", "CNTKCTL_EL1",
]
_ALIASES_EL02 = ["CNTP_CTL_EL0", "CNTP_CVAL_EL0", "CNTV_CTL_EL0", "CNTV_CVAL_EL0"]
_READONLY = {"CURRENTEL", "CNTVCT_EL0", "ISR_EL1"}
# HCR_EL2.TVM/TRVM trap EL1's writes/reads of these: the virtual memory controls (D19.2.48).
_TVM_TRVM = {
    "SCTLR_EL1", "TTBR0_EL1", "TTBR1_EL1", "TCR_EL1", "ESR_EL1", "FAR_EL1", "AFSR0_EL1", "AFSR1_EL1",
    "MAIR_EL1", "AMAIR_EL1", "CONTEXTIDR_EL1",
}

SYSREGS: dict[str, SysReg] = {}
for _name, (_op0, _op1, _crn, _crm, _op2), _group, _redir in _TABLE:
    SYSREGS[_name] = SysReg(
        _name, _op0, _op1, _crn, _crm, _op2, _redir, None, _group,
        _group == "id" or _name in _READONLY, "tvm_trvm" if _name in _TVM_TRVM else None,
    )
for _base in _ALIASES_EL12 + _ALIASES_EL02:
    _r = SYSREGS[_base]
    _alias = _base[:-1] + ("12" if _base.endswith("EL1") else "02")
    SYSREGS[_alias] = SysReg(_alias, _r.op0, 5, _r.crn, _r.crm, _r.op2, None, _base, _r.group)

_BY_ENCODING: dict[tuple[int, int, int, int, int], SysReg] = {r.encoding: r for r in SYSREGS.values()}
_GENERIC = re.compile(r"^s([0-3])_([0-7])_c([0-9]|1[0-5])_c([0-9]|1[0-5])_([0-7])$", re.IGNORECASE)
_ALT_NAMES = {"SPSEL": "SPSEL", "CURRENTEL": "CURRENTEL"}


def lookup(name: str) -> SysReg:
    """A register by name (any case) or by generic s<op0>_<op1>_c<n>_c<m>_<op2> name."""
    key = name.strip().upper()
    reg = SYSREGS.get(_ALT_NAMES.get(key, key))
    if reg is not None:
        return reg
    m = _GENERIC.match(name.strip())
    if m:
        enc = tuple(int(g) for g in m.groups())
        known = _BY_ENCODING.get(enc)  # type: ignore[arg-type]
        if known is not None:
            return known
        op0, op1, crn, crm, op2 = enc
        return SysReg(name.strip().lower(), op0, op1, crn, crm, op2)
    raise UnknownSysReg(f"unknown system register {name!r}")


def by_encoding(op0: int, op1: int, crn: int, crm: int, op2: int) -> SysReg | None:
    return _BY_ENCODING.get((op0, op1, crn, crm, op2))


# ------------------------------------------------------------------ access traps


def access_tvm_trvm(el: int, is_read: bool, ctx: SysCtx) -> int | None:
    """HCR_EL2.TVM traps EL1's writes, TRVM its reads, to EL2 (the registers' accessibility
    pseudocode; QEMU's access_tvm_trvm). TGE=1 turns both off (hcr_eff)."""
    if el == 1 and (HCR_EL2.TRVM if is_read else HCR_EL2.TVM).isset(ctx.hcr_eff):
        return 2
    return None


ACCESS_RULES: dict[str, Callable[[int, bool, SysCtx], int | None]] = {"tvm_trvm": access_tvm_trvm}


def access_trap(reg: SysReg, el: int, is_read: bool, ctx: SysCtx) -> int | None:
    """The EL an MRS/MSR of `reg` at `el` traps to (EC 0x18), or None. Only the traps to a
    higher EL that registers' rules add; UNDEFINED by op1's minimum EL is the emulator's."""
    rule = ACCESS_RULES.get(reg.access or "")
    return rule(el, is_read, ctx) if rule else None


def _sys_fields(reg: SysReg) -> int:
    return ((reg.op0 - 2) & 1) << 19 | reg.op1 << 16 | reg.crn << 12 | reg.crm << 8 | reg.op2 << 5


def encode_mrs(rt: int, reg: SysReg) -> int:
    """MRS Xt, <reg> (C6.2.194)."""
    return 0xD5300000 | _sys_fields(reg) | (rt & 31)


def encode_msr(reg: SysReg, rt: int) -> int:
    """MSR <reg>, Xt (C6.2.196)."""
    return 0xD5100000 | _sys_fields(reg) | (rt & 31)


# MSR <pstatefield>, #imm (C6.2.195): field -> (op1, op2).
PSTATE_MSR_IMM: dict[str, tuple[int, int]] = {
    "uao": (0, 3),
    "pan": (0, 4),
    "spsel": (0, 5),
    "ssbs": (3, 1),
    "dit": (3, 2),
    "tco": (3, 4),
    "daifset": (3, 6),
    "daifclr": (3, 7),
}
_IMM_BY_OPS = {ops: field for field, ops in PSTATE_MSR_IMM.items()}


def encode_msr_imm(field: str, imm: int) -> int:
    try:
        op1, op2 = PSTATE_MSR_IMM[field.lower()]
    except KeyError:
        raise UnknownSysReg(f"unknown PSTATE field {field!r} for MSR (immediate)") from None
    # One-bit fields take #0 or #1 (GNU as rejects more); DAIFSet/DAIFClr take a 4-bit mask.
    top = 15 if field.lower() in ("daifset", "daifclr") else 1
    if not 0 <= imm <= top:
        raise ValueError(f"MSR {field}, #{imm}: immediate out of range 0 to {top}")
    return 0xD500401F | op1 << 16 | imm << 8 | op2 << 5


def decode_msr_imm(word: int) -> tuple[str, int] | None:
    """(field, imm) when `word` is MSR <pstatefield>, #imm."""
    if word & 0xFFF8F01F != 0xD500401F:
        return None
    field = _IMM_BY_OPS.get(((word >> 16) & 7, (word >> 5) & 7))
    return (field, (word >> 8) & 0xF) if field else None
