"""Exception entry, routing, masking and return: AArch64.TakeException and
AArch64.ExceptionReturn of the Arm ARM (J1.1), as facts §1-§2 summarise them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from harness.arch.features import Features
from harness.arch.pstate import PState, psr_from_pstate
from harness.arch.regs import HCR_EL2, ISR_EL1, PSTATE, SCR_EL3, SCTLR, SPSR_M1, hcr_el2_eff
from harness.arch.syndrome import EC


class ExceptionType(Enum):
    """Vector type offsets within a vector group."""

    SYNC = 0x000
    IRQ = 0x080
    FIQ = 0x100
    SERROR = 0x180


@dataclass(frozen=True)
class SysCtx:
    """The system registers these rules read."""

    hcr_el2: int = 0
    scr_el3: int = 0x501
    sctlr_el1: int = 0
    sctlr_el2: int = 0
    sctlr_el3: int = 0
    vbar_el1: int = 0
    vbar_el2: int = 0
    vbar_el3: int = 0

    def vbar(self, el: int) -> int:
        return (0, self.vbar_el1, self.vbar_el2, self.vbar_el3)[el]

    def sctlr(self, el: int) -> int:
        return (0, self.sctlr_el1, self.sctlr_el2, self.sctlr_el3)[el]

    @property
    def hcr_eff(self) -> int:
        """HCR_EL2 as the rules see it (regs.hcr_el2_eff: TGE's overrides, EL2 disabled)."""
        return hcr_el2_eff(self.hcr_el2, self.scr_el3)

    @property
    def e2h(self) -> bool:
        return HCR_EL2.E2H.isset(self.hcr_eff)

    @property
    def tge(self) -> bool:
        return HCR_EL2.TGE.isset(self.hcr_eff)


def el_is_in_host(el: int, ctx: SysCtx) -> bool:
    """ELIsInHost(): EL2 with E2H==1, or EL0 with E2H==1 and TGE==1."""
    if el == 2:
        return ctx.e2h
    if el == 0:
        return ctx.e2h and ctx.tge
    return False


def route_sync(ec: int, from_el: int, ctx: SysCtx, features: Features, *, is_wfe: bool = False) -> int:
    """Target EL of a synchronous exception of class `ec` raised at `from_el`."""
    if from_el == 3:
        return 3
    if ec == EC.SVC64:
        # AArch64.CallSupervisor: EL0 -> EL1, or EL2 when HCR_EL2.TGE routes EL0 exceptions there.
        return (2 if ctx.tge else 1) if from_el == 0 else from_el
    if ec == EC.HVC64:
        return 2  # AArch64.CallHypervisor
    if ec == EC.SMC64:
        # AArch64.CheckForSMCUndefOrTrap: HCR_EL2.TSC traps EL1's SMC to EL2.
        return 2 if from_el == 1 and HCR_EL2.TSC.isset(ctx.hcr_eff) else 3
    if ec == EC.WFX:
        target = wfx_trap_target(from_el, ctx, is_wfe=is_wfe)
        return 2 if target is None else target
    if ec == EC.SYS64:
        return 2
    # UNDEFINED, BRK, aborts: the current EL, EL0 going to EL1 (EL2 with TGE).
    if from_el == 0:
        return 2 if ctx.tge else 1
    return from_el


def wfx_trap_target(from_el: int, ctx: SysCtx, *, is_wfe: bool = False) -> int | None:
    """The EL a WFI/WFE at `from_el` traps to, or None (AArch64.CheckForWFxTrap, no EL3 traps).

    EL0 first checks SCTLR_ELx.nTWx of its own regime (SCTLR_EL2 in host, E2H=TGE=1), a trap
    that TGE sends to EL2; then EL0/EL1 check HCR_EL2.TWx (which E2H=TGE=1 turns off)."""
    in_host = ctx.e2h and ctx.tge
    if from_el == 0 and not (SCTLR.nTWE if is_wfe else SCTLR.nTWI).isset(ctx.sctlr(2 if in_host else 1)):
        return 2 if ctx.tge else 1
    if from_el in (0, 1) and (HCR_EL2.TWE if is_wfe else HCR_EL2.TWI).isset(ctx.hcr_eff):
        return 2
    return None


def route_async(kind: ExceptionType, from_el: int, ctx: SysCtx) -> int:
    """Target EL of an IRQ/FIQ/SError (AArch64.TakePhysical*Exception routing)."""
    scr_bit, hcr_bit = {
        ExceptionType.IRQ: (SCR_EL3.IRQ, HCR_EL2.IMO),
        ExceptionType.FIQ: (SCR_EL3.FIQ, HCR_EL2.FMO),
        ExceptionType.SERROR: (SCR_EL3.EA, HCR_EL2.AMO),
    }[kind]
    if scr_bit.isset(ctx.scr_el3) or from_el == 3:
        return 3
    if from_el == 2 or hcr_bit.isset(ctx.hcr_eff) or ctx.tge:
        return 2
    return 1


def async_masked(kind: ExceptionType, target_el: int, pstate: PState, ctx: SysCtx) -> bool:
    """An interrupt is taken when its target EL is above the current one, or equal with
    its PSTATE mask clear; never to a lower EL (AArch64 interrupt masking, D1.13.4)."""
    if target_el < pstate.el:
        return True
    if target_el > pstate.el:
        return False
    mask = {ExceptionType.IRQ: pstate.i, ExceptionType.FIQ: pstate.f, ExceptionType.SERROR: pstate.a}[kind]
    return bool(mask)


# (kind, ISR_EL1 field, HCR_EL2 routing bit, HCR_EL2 virtual-pending bit)
_ISR_FIELDS = (
    (ExceptionType.IRQ, ISR_EL1.I, HCR_EL2.IMO, HCR_EL2.VI),
    (ExceptionType.FIQ, ISR_EL1.F, HCR_EL2.FMO, HCR_EL2.VF),
    (ExceptionType.SERROR, ISR_EL1.A, HCR_EL2.AMO, HCR_EL2.VSE),
)


def isr_el1(pending: set[ExceptionType] | frozenset[ExceptionType], el: int, ctx: SysCtx) -> int:
    """ISR_EL1 read at `el` with the physical interrupts `pending` (Arm ARM, ISR_EL1: each of
    I, F, A shows the virtual interrupt, HCR_EL2.VI/VF/VSE, when the PE is at EL1 and
    HCR_EL2.{xMO,TGE} == {1,0} with EL2 enabled; otherwise the physical one)."""
    hcr = ctx.hcr_eff  # 0 while EL2 is disabled
    value = 0
    for kind, isr_field, route, virtual in _ISR_FIELDS:
        if el == 1 and route.isset(hcr) and not HCR_EL2.TGE.isset(hcr):
            shown = virtual.isset(ctx.hcr_el2)
        else:
            shown = kind in pending
        value |= isr_field.mask if shown else 0
    return value


def vector_offset(kind: ExceptionType, from_el: int, target_el: int, pstate: PState) -> int:
    """0x000 same EL with SP_EL0, 0x200 same EL with SP_ELx, 0x400 lower EL AArch64, 0x600 lower AArch32."""
    if target_el == from_el:
        base = 0x200 if pstate.sp else 0x000
    else:
        base = 0x600 if pstate.nrw else 0x400
    return base + kind.value


@dataclass(frozen=True)
class ExceptionEntry:
    kind: ExceptionType
    from_el: int
    target_el: int
    pstate_before: PState
    pstate: PState
    spsr: int
    elr: int
    esr: int | None
    far: int | None
    vector: int
    vector_offset: int


def take_exception(
    pstate: PState,
    target_el: int,
    kind: ExceptionType,
    ctx: SysCtx,
    features: Features,
    *,
    preferred_return: int,
    esr: int | None = None,
    far: int | None = None,
) -> ExceptionEntry:
    """AArch64.TakeException, in the order of facts §1 (and §8 for DIT, SSBS, BTYPE)."""
    # 1. GetPSRFromPSTATE. SPSR.BTYPE is kept for every exception: the pseudocode keeps it for
    # interrupts, aborts on fetch, BRK, ... and lets an implementation zero it for the others
    # (ConstrainUnpredictableBool(Unpredictable_ZEROBTYPE)); QEMU keeps it there too.
    spsr = psr_from_pstate(pstate, features.pstate_fields)
    new = {"el": target_el, "sp": 1, "ss": 0, "il": 0, "d": 1, "a": 1, "i": 1, "f": 1, "nrw": 0}
    if features.has_uao:
        new["uao"] = 0  # 2. PSTATE.UAO = 0 on every entry
    # 6. PSTATE.PAN = 1 for EL1, or EL2 in host (E2H && TGE), when SCTLR_ELx.SPAN == 0.
    pan_regime = target_el == 1 or (target_el == 2 and el_is_in_host(0, ctx))
    if features.has_pan and pan_regime and not SCTLR.SPAN.isset(ctx.sctlr(target_el)):
        new["pan"] = 1
    if features.has_bti:
        new["btype"] = 0  # PSTATE.BTYPE = '00'
    if features.has_ssbs:
        new["ssbs"] = SCTLR.DSSBS.get(ctx.sctlr(target_el))  # SCTLR[] of the target EL
    # PSTATE.DIT: not assigned, it stays as it was (QEMU 7.2 clears it: exclusions.toml).
    offset = vector_offset(kind, pstate.el, target_el, pstate)
    vector = (ctx.vbar(target_el) & ~0x7FF) + offset
    return ExceptionEntry(
        kind, pstate.el, target_el, pstate, pstate.replace(**new), spsr, preferred_return,
        None if kind in (ExceptionType.IRQ, ExceptionType.FIQ) else esr, far, vector, offset,
    )


@dataclass(frozen=True)
class ExceptionReturn:
    pstate: PState
    pc: int
    illegal: bool
    reason: str | None


def illegal_return_reason(pstate: PState, spsr: int, ctx: SysCtx, features: Features) -> str | None:
    """IllegalExceptionReturn(): why returning with this SPSR is illegal, or None."""
    target = PSTATE.EL.get(spsr)
    if PSTATE.nRW.isset(spsr):
        return "SPSR.M[4]=1 (AArch32) is not supported by this PE"
    if SPSR_M1.isset(spsr):
        return "SPSR.M[1]=1 is a reserved mode"
    if target > pstate.el:
        return f"SPSR targets EL{target}, above the current EL{pstate.el}"
    if (target == 2 and not features.has_el2) or (target == 3 and not features.has_el3):
        return f"EL{target} is not implemented"
    if target == 0 and PSTATE.SP.isset(spsr):
        return "SPSR targets EL0 with SP_EL0 selection bit set (EL0h does not exist)"
    el2_enabled = features.has_el2 and SCR_EL3.NS.isset(ctx.scr_el3)
    if target == 2 and features.has_el3 and not SCR_EL3.NS.isset(ctx.scr_el3):
        return "EL2 target with SCR_EL3.NS==0 (Secure EL2 not implemented)"
    if target == 1 and el2_enabled and ctx.tge:
        return "EL1 target while HCR_EL2.TGE==1"
    if target == 1 and el2_enabled and not HCR_EL2.RW.isset(ctx.hcr_el2):
        return "EL1 target is AArch32 (HCR_EL2.RW==0) but SPSR says AArch64"
    if target == 2 and features.has_el3 and not SCR_EL3.RW.isset(ctx.scr_el3):
        return "EL2 target is AArch32 (SCR_EL3.RW==0) but SPSR says AArch64"
    return None


# PSTATE fields that SetPSTATEFromPSR restores on every return, legal or illegal ...
_ALWAYS_RESTORED = ("n", "z", "c", "v", "d", "a", "i", "f", "pan")
# ... and the extensions' fields it restores on a legal one: on an illegal return the current
# pseudocode makes UAO, DIT, SSBS and BTYPE UNKNOWN. The harness then keeps DIT, SSBS and BTYPE
# as they were (the value QEMU gives) and restores UAO (the rule of the older pseudocode, as it
# always has: exclusions.toml illegal_eret_pan_uao).
_RESTORED_IF_LEGAL = ("uao", "dit", "ssbs", "btype")


def exception_return(pstate: PState, spsr: int, elr: int, ctx: SysCtx, features: Features) -> ExceptionReturn:
    """AArch64.ExceptionReturn + SetPSTATEFromPSR: PAN (and UAO) are restored even when illegal."""
    reason = illegal_return_reason(pstate, spsr, ctx, features)
    s = PState.from_bits(spsr)
    has = features.pstate_fields
    # ss: DebugExceptionReturnSS, software step is not modelled (MDSCR_EL1.SS=0)
    new = {"ss": 0, **{k: getattr(s, k) for k in _ALWAYS_RESTORED if k in has}}
    if reason is None:
        new.update(el=s.el, sp=s.sp, il=s.il, nrw=0, **{k: getattr(s, k) for k in _RESTORED_IF_LEGAL if k in has})
    else:
        new.update(il=1, uao=s.uao if features.has_uao else pstate.uao)  # illegal: EL, SP and nRW stay
    return ExceptionReturn(pstate.replace(**new), elr, reason is not None, reason)


def qemu_exception_return(pstate: PState, spsr: int, elr: int, ctx: SysCtx, features: Features) -> ExceptionReturn:
    """Where QEMU 5.0's helper_exception_return (which Unicorn runs) differs from the Arm rules:
    SPSR.IL=1 is treated as an illegal return, and an illegal return restores only NZCV and DAIF."""
    arm = exception_return(pstate, spsr, elr, ctx, features)
    if not arm.illegal and not PSTATE.IL.isset(spsr):
        return arm
    s = PState.from_bits(spsr)
    new = pstate.replace(n=s.n, z=s.z, c=s.c, v=s.v, d=s.d, a=s.a, i=s.i, f=s.f, il=1, ss=0)
    return ExceptionReturn(new, elr, True, arm.reason or "SPSR.IL=1")
