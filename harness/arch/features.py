"""What a CPU model implements, read from its ID registers (Arm ARM D13.2.65/66)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Features:
    name: str
    has_pan: bool
    has_uao: bool
    has_vhe: bool
    has_el2: bool = True
    has_el3: bool = True

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
        return frozenset(caps)

    @classmethod
    def from_id_regs(cls, name: str, id_aa64mmfr1: int, id_aa64mmfr2: int) -> Features:
        # PAN = MMFR1[23:20], VH = MMFR1[11:8], UAO = MMFR2[7:4]
        return cls(
            name,
            has_pan=(id_aa64mmfr1 >> 20) & 0xF != 0,
            has_uao=(id_aa64mmfr2 >> 4) & 0xF != 0,
            has_vhe=(id_aa64mmfr1 >> 8) & 0xF != 0,
        )


FEATURES_MAX = Features("max", has_pan=True, has_uao=True, has_vhe=True)
FEATURES_A57 = Features("a57", has_pan=False, has_uao=False, has_vhe=False)
