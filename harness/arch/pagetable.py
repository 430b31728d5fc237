"""Stage-1 translation, 4 KiB granule: descriptors, a table walker, and the permission
rules of AArch64.CheckPermission including PAN and unprivileged (LDTR/STTR) accesses
(Arm ARM D5.2-D5.4; facts §3).  Used to derive FAR/DFSC for aborts Unicorn reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from harness.arch.exceptions import SysCtx
from harness.arch.pstate import PState
from harness.arch.regs import HCR_EL2, SCTLR
from harness.arch.syndrome import FaultType

__all__ = [
    "AP_RW_EL1", "AP_RW_ANY", "AP_RO_EL1", "AP_RO_ANY", "Access", "FaultType", "Regime",
    "Translation", "block_desc", "page_desc", "regime_for", "table_desc", "translate",
]

AP_RW_EL1 = 0b00  # privileged read/write, no EL0 access
AP_RW_ANY = 0b01  # read/write at every EL
AP_RO_EL1 = 0b10
AP_RO_ANY = 0b11

_OA_MASK = 0x0000_FFFF_FFFF_F000


def table_desc(next_pa: int) -> int:
    return (next_pa & _OA_MASK) | 0b11


def _leaf_attrs(ap: int, uxn: int, pxn: int, af: int, attr_idx: int, sh: int, ng: int) -> int:
    return (
        (attr_idx & 7) << 2 | (ap & 3) << 6 | (sh & 3) << 8 | (af & 1) << 10 | (ng & 1) << 11
        | (pxn & 1) << 53 | (uxn & 1) << 54
    )


def block_desc(pa: int, level: int, *, ap: int = AP_RW_EL1, uxn: int = 0, pxn: int = 0, af: int = 1,
               attr_idx: int = 0, sh: int = 3, ng: int = 0) -> int:
    """A level-1 (1 GiB) or level-2 (2 MiB) block."""
    if level not in (1, 2):
        raise ValueError("4 KiB granule blocks exist at level 1 and 2 only")
    size = 1 << (39 - 9 * level)
    return (pa & _OA_MASK & ~(size - 1)) | _leaf_attrs(ap, uxn, pxn, af, attr_idx, sh, ng) | 0b01


def page_desc(pa: int, *, ap: int = AP_RW_EL1, uxn: int = 0, pxn: int = 0, af: int = 1,
              attr_idx: int = 0, sh: int = 3, ng: int = 0) -> int:
    return (pa & _OA_MASK) | _leaf_attrs(ap, uxn, pxn, af, attr_idx, sh, ng) | 0b11


class Regime(Enum):
    EL10 = "EL1&0"
    EL20 = "EL2&0"  # HCR_EL2.E2H == 1
    EL2 = "EL2"
    EL3 = "EL3"


def regime_for(el: int, ctx: SysCtx) -> Regime:
    if el == 3:
        return Regime.EL3
    if el == 2:
        return Regime.EL20 if ctx.e2h else Regime.EL2
    if el == 0 and ctx.e2h and ctx.tge:
        return Regime.EL20
    return Regime.EL10


@dataclass(frozen=True)
class Access:
    el: int
    write: bool = False
    fetch: bool = False
    unprivileged: bool = False  # LDTR/STTR family


@dataclass(frozen=True)
class Translation:
    va: int
    pa: int | None
    level: int
    fault: FaultType | None
    descriptor: int
    ap: int
    pxn: int
    uxn: int
    reason: str


def _regs(regime: Regime) -> tuple[str, str | None, str, str]:
    """TTBR0, TTBR1 (None for single-range regimes), TCR, SCTLR register names."""
    return {
        Regime.EL10: ("TTBR0_EL1", "TTBR1_EL1", "TCR_EL1", "SCTLR_EL1"),
        Regime.EL20: ("TTBR0_EL2", "TTBR1_EL2", "TCR_EL2", "SCTLR_EL2"),
        Regime.EL2: ("TTBR0_EL2", None, "TCR_EL2", "SCTLR_EL2"),
        Regime.EL3: ("TTBR0_EL3", None, "TCR_EL3", "SCTLR_EL3"),
    }[regime]


def translate(
    read_u64: Callable[[int], int],
    regime: Regime,
    regs: Mapping[str, int],
    va: int,
    access: Access,
    pstate: PState,
) -> Translation:
    """Walk the stage-1 tables for `va` and check `access` (AArch64.FirstStageTranslate)."""
    va &= (1 << 64) - 1
    _ttbr0, _ttbr1, tcr_name, sctlr_name = _regs(regime)
    if not SCTLR.M.isset(regs.get(sctlr_name, 0)):
        return Translation(va, va, 0, None, 0, 0, 0, 0, f"{sctlr_name}.M=0: MMU off, flat mapping")
    base = _walk_base(regime, regs, va)
    if isinstance(base, Translation):
        return base
    walk = _walk(read_u64, va, *base)
    if isinstance(walk, Translation):
        return walk
    level, desc, size, ap_table, xn_table, pxn_table = walk
    pa = (desc & _OA_MASK & ~(size - 1)) | (va & (size - 1))
    ap = (desc >> 6) & 3
    uxn = (desc >> 54) & 1 | xn_table
    pxn = (desc >> 53) & 1 | pxn_table
    # Hierarchical APTable: bit 0 removes EL0 access, bit 1 removes write access.
    if ap_table & 1:
        ap &= ~0b01
    if ap_table & 2:
        ap |= 0b10
    if not (desc >> 10) & 1:
        return Translation(va, None, level, FaultType.ACCESS_FLAG, desc, ap, pxn, uxn, f"AF=0 in the level {level} descriptor")
    why = _check_permission(regime, regs, access, pstate, ap, pxn, uxn)
    if why is not None:
        return Translation(va, None, level, FaultType.PERMISSION, desc, ap, pxn, uxn, why)
    return Translation(va, pa, level, None, desc, ap, pxn, uxn, f"mapped at level {level}, AP={ap:02b}")


def _walk_base(regime: Regime, regs: Mapping[str, int], va: int) -> tuple[int, int] | Translation:
    """(input size in bits, the table base) of the walk for `va`: TTBR0 or TTBR1 by VA[63] with
    that half's TCR.TnSZ, or the translation fault when the VA is outside its range or the walk
    is disabled (TCR.EPDn)."""
    ttbr0_name, ttbr1_name, tcr_name, _sctlr = _regs(regime)
    tcr = regs.get(tcr_name, 0)
    upper = bool(va >> 63)
    if upper:
        if ttbr1_name is None:
            return _fault(va, 0, FaultType.TRANSLATION, "address above the single VA range of " + regime.value)
        tsz, epd, ttbr = (tcr >> 16) & 0x3F, (tcr >> 23) & 1, regs.get(ttbr1_name, 0)
    else:
        tsz, epd, ttbr = tcr & 0x3F, (tcr >> 7) & 1 if ttbr1_name else 0, regs.get(ttbr0_name, 0)
    inputsize = 64 - max(tsz, 16)
    top = va >> inputsize
    if top != (((1 << (64 - inputsize)) - 1) if upper else 0):
        return _fault(va, 0, FaultType.TRANSLATION, f"VA outside the {inputsize}-bit range of {'TTBR1' if upper else 'TTBR0'}")
    if epd:
        return _fault(va, 0, FaultType.TRANSLATION, f"walks disabled by {tcr_name}.EPD{int(upper)}")
    return inputsize, ttbr


def _walk(read_u64: Callable[[int], int], va: int, inputsize: int,
          ttbr: int) -> tuple[int, int, int, int, int, int] | Translation:
    """The leaf (level, descriptor, block size, APTable, XNTable, PXNTable gathered on the way)
    or the translation fault at the first invalid descriptor."""
    start = 4 - -(-(inputsize - 12) // 9)  # 4 - ceil((inputsize - 12) / 9): the level resolving the top bits
    level = start
    table = ttbr & 0x0000_FFFF_FFFF_FFFE
    ap_table = xn_table = pxn_table = 0
    while True:
        shift = 12 + 9 * (3 - level)
        bits = inputsize - shift if level == start else 9
        index = (va >> shift) & ((1 << bits) - 1)
        desc = read_u64((table & ~7) + index * 8)
        if not desc & 1 or (level == 3 and desc & 3 == 0b01) or (level == 0 and desc & 3 == 0b01):
            return _fault(va, level, FaultType.TRANSLATION, f"invalid descriptor {desc:#x} at level {level}", desc)
        if level < 3 and desc & 3 == 0b11:
            ap_table |= (desc >> 61) & 3
            xn_table |= (desc >> 60) & 1
            pxn_table |= (desc >> 59) & 1
            table = desc & _OA_MASK
            level += 1
            continue
        return level, desc, 1 << shift, ap_table, xn_table, pxn_table


def _fault(va: int, level: int, fault: FaultType, reason: str, desc: int = 0) -> Translation:
    return Translation(va, None, level, fault, desc, 0, 0, 0, reason)


def _check_permission(regime: Regime, regs: Mapping[str, int], access: Access, pstate: PState,
                      ap: int, pxn: int, uxn: int) -> str | None:
    """AArch64.CheckPermission for the leaf's AP/XN bits; the reason when it faults."""
    ro = bool(ap & 0b10)
    if regime in (Regime.EL2, Regime.EL3):
        # One privilege level: AP[1] is ignored and PAN has no effect (facts §3).
        if access.fetch:
            return "XN set for an instruction fetch" if uxn else None
        return "write to a read-only page (AP[2]=1)" if access.write and ro else None
    hcr = regs.get("HCR_EL2", 0)
    # LDTR/STTR act as EL0 accesses at EL1, or at EL2 in host (E2H:TGE=11), unless PSTATE.UAO=1.
    in_host = HCR_EL2.E2H.isset(hcr) and HCR_EL2.TGE.isset(hcr)
    unpriv_el = access.el == 1 or (access.el == 2 and in_host)
    as_el0 = access.el == 0 or (access.unprivileged and unpriv_el and not pstate.uao)
    user_ok = bool(ap & 0b01)
    if as_el0:
        who = "EL0" if access.el == 0 else f"unprivileged access at EL{access.el} with UAO=0"
        if access.fetch:
            if uxn or not user_ok:
                return f"{who}: instruction fetch not permitted (UXN={uxn}, AP={ap:02b})"
            return None
        if not user_ok:
            return f"{who}: page has no EL0 access (AP={ap:02b})"
        if access.write and ro:
            return f"{who}: page is read-only (AP={ap:02b})"
        return None
    if access.fetch:
        # A privileged fetch from EL0-writable memory is never permitted.
        if pxn or (user_ok and not ro):
            return f"privileged instruction fetch not permitted (PXN={pxn}, AP={ap:02b})"
        return None
    if pstate.pan and user_ok:
        via = " (LDTR/STTR with UAO=1 is privileged)" if access.unprivileged else ""
        return f"PAN=1: privileged data access to an EL0-accessible page (AP={ap:02b}){via}"
    if access.write and ro:
        return f"write to a read-only page (AP={ap:02b})"
    return None
