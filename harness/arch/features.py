"""What a CPU model implements, read from its ID registers (Arm ARM D19.2 ID_AA64*_EL1)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property

from harness.arch.regs import (
    ID_AA64MMFR1_EL1,
    ID_AA64MMFR2_EL1,
    ID_AA64PFR0_EL1,
    ID_AA64PFR1_EL1,
    PSTATE,
)


@dataclass(frozen=True)
class Features:
    name: str
    has_pan: bool
    has_uao: bool
    has_vhe: bool
    has_el2: bool = True
    has_el3: bool = True
    has_dit: bool = False
    has_ssbs: bool = False
    has_bti: bool = False

    @property
    def caps(self) -> frozenset[str]:
        """The Linux cpucaps these features give (for ALTERNATIVE)."""
        caps = set()
        if self.has_pan:
            caps.add("ARM64_HAS_PAN")
        if self.has_uao:
            caps.add("ARM64_HAS_UAO")
        if self.has_vhe:
            caps.add("ARM64_HAS_VIRT_HOST_EXTN")
        if self.has_dit:
            caps.add("ARM64_HAS_DIT")
        if self.has_ssbs:
            caps.add("ARM64_SSBS")
        return frozenset(caps)

    @cached_property
    def pstate_fields(self) -> frozenset[str]:
        """The PSTATE fields this PE has (regs.PSTATE rows whose feature it implements)."""
        return frozenset(f.key for f in PSTATE if not f.feature or getattr(self, f.feature))

    @classmethod
    def from_id_regs(cls, name: str, id_aa64mmfr1: int, id_aa64mmfr2: int, id_aa64pfr0: int = 0,
                     id_aa64pfr1: int = 0) -> Features:
        return cls(
            name,
            has_pan=ID_AA64MMFR1_EL1.PAN.get(id_aa64mmfr1) != 0,
            has_uao=ID_AA64MMFR2_EL1.UAO.get(id_aa64mmfr2) != 0,
            has_vhe=ID_AA64MMFR1_EL1.VH.get(id_aa64mmfr1) != 0,
            has_dit=ID_AA64PFR0_EL1.DIT.get(id_aa64pfr0) != 0,
            has_ssbs=ID_AA64PFR1_EL1.SSBS.get(id_aa64pfr1) != 0,
            has_bti=ID_AA64PFR1_EL1.BT.get(id_aa64pfr1) != 0,
        )


FEATURES_MAX = Features("max", has_pan=True, has_uao=True, has_vhe=True, has_dit=True, has_ssbs=True, has_bti=True)
FEATURES_A57 = Features("a57", has_pan=False, has_uao=False, has_vhe=False)
FEATURE_FLAGS = tuple(f.name for f in fields(Features) if f.name.startswith("has_"))

# The ID register fields of qemu-system-aarch64 7.2 `-cpu max` (-M virt,virtualization=on) for
# the PSTATE fields the harness models, measured there (facts §8): where the CPU Unicorn runs
# reads otherwise, the board reports these and supplies what they promise.
QEMU_ID_FIELDS: dict[str, dict[str, dict[str, int]]] = {
    "max": {"ID_AA64PFR0_EL1": {"DIT": 1}, "ID_AA64PFR1_EL1": {"BT": 1, "SSBS": 2, "MTE": 0}},
    "a57": {},
}
