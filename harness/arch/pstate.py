"""PSTATE and its SPSR image (Arm ARM C5.2.18 SPSR_ELx, AArch64 state; facts §1 step 1)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import lru_cache

# Bit positions in SPSR (and in Unicorn's UC_ARM64_REG_PSTATE, which uses the same layout).
_BITS = {
    "n": 31, "z": 30, "c": 29, "v": 28,
    "uao": 23, "pan": 22, "ss": 21, "il": 20,
    "d": 9, "a": 8, "i": 7, "f": 6,
    "nrw": 4,
}
PSTATE_FIELDS: tuple[str, ...] = ("el", "sp", "pan", "uao", "d", "a", "i", "f", "n", "z", "c", "v", "ss", "il", "nrw")


def field_max(name: str) -> int:
    """The largest value a PSTATE field holds: EL is two bits (M[3:2]), every other field one."""
    if name not in PSTATE_FIELDS:
        raise KeyError(name)
    return 3 if name == "el" else 1


@dataclass(frozen=True)
class PState:
    n: int = 0
    z: int = 0
    c: int = 0
    v: int = 0
    uao: int = 0
    pan: int = 0
    ss: int = 0
    il: int = 0
    d: int = 1
    a: int = 1
    i: int = 1
    f: int = 1
    el: int = 2
    sp: int = 1  # SPSel
    nrw: int = 0  # M[4]: 0 = AArch64

    @classmethod
    def from_bits(cls, value: int) -> PState:
        return _from_bits(cls, value)

    def to_bits(self) -> int:
        value = (self.el & 3) << 2 | (self.sp & 1)
        for name, bit in _BITS.items():
            value |= (getattr(self, name) & 1) << bit
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
        return (
            f"{self.mode_name} PAN={self.pan} UAO={self.uao} DAIF={self.daif:04b} "
            f"NZCV={self.nzcv:04b} SS={self.ss} IL={self.il}"
        )

    def diff(self, other: PState) -> dict[str, tuple[int, int]]:
        """Fields that differ: name -> (self's value, other's value)."""
        return {
            f.name: (getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        }


@lru_cache(maxsize=4096)
def _from_bits(cls: type[PState], value: int) -> PState:
    # PState is immutable and a program visits few distinct values: single-stepping decodes
    # the same few again and again
    kw = {name: (value >> bit) & 1 for name, bit in _BITS.items()}
    return cls(el=(value >> 2) & 3, sp=value & 1, **kw)
