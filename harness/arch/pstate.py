"""PSTATE and its SPSR image (Arm ARM C5.2.18 SPSR_ELx, AArch64 state; facts §1.1, §8).

PState's fields are the rows of regs.PSTATE, in its order: a field added there is a PState
attribute, packed into and out of SPSR bits, shown by every view, compared by W2."""

from __future__ import annotations

from dataclasses import field, fields, make_dataclass, replace
from functools import lru_cache

from harness.arch.regs import PSTATE, Field

PSTATE_FIELDS: tuple[str, ...] = tuple(f.key for f in PSTATE)
# How a human view lists them (the debugger's PSTATE line, VCD signals): the mode (EL, SPSel),
# the condition flags, the masks, then every other field in table order.
_LEADING = ("el", "sp", "n", "z", "c", "v", "d", "a", "i", "f")
VIEW_ORDER: tuple[Field, ...] = tuple(PSTATE[k] for k in _LEADING) + tuple(f for f in PSTATE if f.key not in _LEADING)
_PACK = tuple((f.key, f.lsb, f.max) for f in PSTATE)


def field_max(name: str) -> int:
    """The largest value a PSTATE field holds (EL and BTYPE are two bits, the rest one)."""
    if name not in PSTATE_FIELDS:
        raise KeyError(name)
    return PSTATE[name].max


class _PStateMethods:
    """What every PState has besides its fields (made from regs.PSTATE below)."""

    @classmethod
    def from_bits(cls, value: int) -> PState:
        return _from_bits(cls, value)

    def to_bits(self) -> int:
        value = self.__dict__.get("_bits")  # packed once per instance (from_bits shares them)
        if value is None:
            value = 0
            for key, lsb, top in _PACK:
                value |= (getattr(self, key) & top) << lsb
            object.__setattr__(self, "_bits", value)
        return value

    def replace(self, **changes: int) -> PState:
        return replace(self, **changes)

    @property
    def mode_name(self) -> str:
        return f"EL{self.el}{'h' if self.sp else 't'}"

    @property
    def daif(self) -> int:
        return self.d << 3 | self.a << 2 | self.i << 1 | self.f

    @property
    def nzcv(self) -> int:
        return self.n << 3 | self.z << 2 | self.c << 1 | self.v

    def describe(self) -> str:
        rest = " ".join(f"{f.label}={getattr(self, f.key)}" for f in VIEW_ORDER[len(_LEADING):])
        return f"{self.mode_name} NZCV={self.nzcv:04b} DAIF={self.daif:04b} {rest}"

    def diff(self, other: PState) -> dict[str, tuple[int, int]]:
        """Fields that differ: name -> (self's value, other's value)."""
        return {
            f.name: (getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        }


# frozen: a program visits few distinct values, and from_bits memoizes them.
PState = make_dataclass(
    "PState", [(f.key, int, field(default=f.reset)) for f in PSTATE], bases=(_PStateMethods,),
    frozen=True,
)
PState.__module__ = __name__  # (make_dataclass's module= is Python 3.12's): pickling finds it here
PState.__doc__ = "PSTATE, one attribute per row of regs.PSTATE (reset values: EL2h, DAIF masked)."


@lru_cache(maxsize=4096)
def _from_bits(cls: type, value: int) -> PState:
    # PState is immutable and a program visits few distinct values: single-stepping decodes
    # the same few again and again
    return cls(**{key: (value >> lsb) & top for key, lsb, top in _PACK})


def psr_from_pstate(ps: PState, implemented: frozenset[str]) -> int:
    """GetPSRFromPSTATE: the SPSR image, fields of extensions the PE lacks as 0."""
    return ps.to_bits() & _psr_mask(implemented)


@lru_cache(maxsize=16)
def _psr_mask(implemented: frozenset[str]) -> int:
    return ~sum(f.mask for f in PSTATE if f.feature and f.key not in implemented)


# PSTATE fields as system registers (MRS/MSR register forms): the value holds each field at its
# SPSR position (Arm ARM C5.2 "Special-purpose registers": DAIF, NZCV, PAN, UAO, DIT, SSBS, ...).
PSTATE_SYSREG_FIELDS: dict[str, tuple[str, ...]] = {
    "NZCV": ("n", "z", "c", "v"), "DAIF": ("d", "a", "i", "f"), "CURRENTEL": ("el",), "SPSEL": ("sp",),
    "PAN": ("pan",), "UAO": ("uao",), "DIT": ("dit",), "SSBS": ("ssbs",),
}


def read_pstate_sysreg(ps: PState, name: str) -> int:
    """MRS of a PSTATE register: its fields at their SPSR bits, the rest RES0."""
    return ps.to_bits() & PSTATE.mask(*PSTATE_SYSREG_FIELDS[name])


def write_pstate_sysreg(ps: PState, name: str, value: int) -> PState:
    """MSR (register) to a PSTATE register: each of its fields from its bits of `value`."""
    return ps.replace(**{k: PSTATE[k].get(value) for k in PSTATE_SYSREG_FIELDS[name]})


def msr_immediate(ps: PState, name: str, imm: int) -> PState:
    """MSR <pstatefield>, #imm (execute_aarch64_instrs_system_register_cpsr): DAIFSet/DAIFClr
    set/clear D:A:I:F from imm[3:0]; a one-bit field takes imm[0]."""
    if name in ("daifset", "daifclr"):
        bits = dict(zip(("d", "a", "i", "f"), ((imm >> s) & 1 for s in (3, 2, 1, 0)), strict=True))
        if name == "daifset":
            return ps.replace(**{k: getattr(ps, k) | b for k, b in bits.items()})
        return ps.replace(**{k: getattr(ps, k) & ~b & 1 for k, b in bits.items()})
    return ps.replace(**{"sp" if name == "spsel" else name: imm & 1})
