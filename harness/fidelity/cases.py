"""The case space of the differential test: a CPU state, one exception, one ERET.

A case starts a probe by an ERET from EL2 to a chosen mode (EL0t, EL1t, EL1h, EL2t, EL2h)
with chosen PSTATE.PAN/UAO/DAIF/NZCV/DIT/SSBS, under chosen HCR_EL2 (E2H, TGE, IMO, TWI),
SCTLR_EL1/SCTLR_EL2 (SPAN, nTWI, M, DSSBS), then the probe takes one exception (or not: a
load PAN allows does not fault; the MSR probes write DIT and SSBS first, the branch probes
reach their SVC/BRK by BR/BLR so that PSTATE.BTYPE is set there), the handler ERETs (with
the SPSR XORed with `xor`), and the probe returns through an exit call whose SPSR shows
PSTATE after that ERET.

Cases that cannot be run are not generated, each for the reason `invalid_reason` gives
(an ERET to EL1 with TGE=1 is itself an illegal return; an untrapped WFI halts QEMU until an
interrupt that never comes; with the MMU off an address outside RAM is not memory).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace

from harness.arch.exceptions import SysCtx, wfx_trap_target
from harness.arch.regs import HCR_EL2, PSTATE, SCTLR

MODES = {"el0t": 0x0, "el1t": 0x4, "el1h": 0x5, "el2t": 0x8, "el2h": 0x9}
EXC_KINDS = ("svc", "hvc", "brk", "udf", "wfi")
MEM_KINDS = ("ldr", "str", "ldtr", "sttr")
# msrreg: MSR DIT/SSBS (register forms) flip both, then SVC; msrimm: MSR DIT, #1 and SSBS, #0,
# then SVC; brsvc/blrbrk: an SVC at a BR target, a BRK at a BLR target (BTYPE 01 / 10 there)
PSTATE_KINDS = ("msrreg", "msrimm", "brsvc", "blrbrk")
KINDS = (*EXC_KINDS, *MEM_KINDS, "iabt", *PSTATE_KINDS)
_PROBES = {"iabt": "blr", "msrreg": "dit_ssbs"}
# data addresses (selfcheck.S layout) and branch targets of the instruction-abort probe
MEM_TARGETS = {
    "kpage": "BM_KPAGE + 0x10", "upage": "BM_UPAGE + 0x18", "ublock": "BM_UBLOCK + 0x100",
    "tpage": "BM_TPAGE + 0x8", "afpage": "BM_AFPAGE + 0x8", "unmapped": "BM_UNMAPPED_L1",
}
IABT_TARGETS = {"xn": "bm_xn_text", "ktext": "fid_k_ret", "utext": "u_ret", "tpage": "BM_TPAGE"}
# SPSR changes the handler makes before its ERET: PSTATE bits, and M[3] (EL + 2), which makes
# most returns illegal (to EL3, to EL0 with SP_ELx, to EL2 from EL1)
XORS = {"none": 0, "pan": PSTATE.mask("pan"), "uao": PSTATE.mask("uao"), "panuao": PSTATE.mask("pan", "uao"),
        "i": PSTATE.mask("i"), "nzcv": PSTATE.mask("n", "z", "c", "v"), "m8": 0x8,
        "dit": PSTATE.mask("dit"), "ssbs": PSTATE.mask("ssbs"), "btype": PSTATE.mask("btype"),
        "m8dit": 0x8 | PSTATE.mask("dit", "ssbs")}
DAIF_SHIFT = 6
STORE_VALUE = 0x5A5A0000C3C3

SCTLR_EL1_BASE = 0x30D50800  # arm64_defs.S (nTWI=1, SPAN=1)
SCTLR_EL2_BASE = 0x30C50830  # E2H=0 layout: SPAN and nTWI are RES1 there


@dataclass(frozen=True)
class Case:
    mode: str = "el1h"
    e2h: int = 0
    tge: int = 0
    imo: int = 0
    twi: int = 0
    ntwi: int = 1  # SCTLR_EL1.nTWI and, with E2H=1, SCTLR_EL2.nTWI
    span1: int = 1
    span2: int = 1  # SCTLR_EL2.SPAN (E2H=1 layout only)
    pan: int = 0
    uao: int = 0
    daif: int = 0xF
    nzcv: int = 0
    dit: int = 0
    ssbs: int = 0
    dssbs1: int = 0  # SCTLR_EL1.DSSBS: PSTATE.SSBS on entry to EL1
    dssbs2: int = 0  # SCTLR_EL2.DSSBS
    mmu: int = 1
    kind: str = "svc"
    target: str = ""
    xor: str = "none"

    @property
    def el(self) -> int:
        return MODES[self.mode] >> 2

    @property
    def in_host(self) -> bool:
        return bool(self.e2h and self.tge)

    def normalized(self) -> Case:
        """One spelling per distinct program: fields without effect take their default."""
        c = self
        if not c.e2h:
            c = replace(c, span2=1)  # RES1 in the E2H=0 layout of SCTLR_EL2
        if c.kind not in MEM_KINDS and c.kind != "iabt":
            c = replace(c, target="")
        return c

    def invalid_reason(self) -> str | None:
        if self.mode not in MODES:
            return f"unknown mode {self.mode}"
        if self.kind not in KINDS:
            return f"unknown kind {self.kind}"
        if self.xor not in XORS:
            return f"unknown xor {self.xor}"
        if self.kind in MEM_KINDS and self.target not in MEM_TARGETS:
            return f"{self.kind} needs a target among {', '.join(MEM_TARGETS)}"
        if self.kind == "iabt" and self.target not in IABT_TARGETS:
            return f"iabt needs a target among {', '.join(IABT_TARGETS)}"
        if self.el == 1 and self.tge:
            return "an ERET to EL1 with HCR_EL2.TGE=1 is an illegal return, not a probe start"
        if self.target == "unmapped" and (not self.mmu or (self.el == 0 and self.tge and not self.e2h)):
            # TGE=1 with E2H=0 turns EL0's stage 1 off too (the Arm rule the harness follows)
            return "with stage 1 off the unmapped VA is a PA outside RAM"
        if self.kind == "wfi" and not self._wfi_traps():
            return "an untrapped WFI halts QEMU until an interrupt (none is ever raised)"
        return None

    def _wfi_traps(self) -> bool:
        # the Arm rule the board follows (QEMU differs in host: exclusions.toml)
        ctx = SysCtx(hcr_el2=self.hcr(), sctlr_el1=self.sctlr_el1(), sctlr_el2=self.sctlr_el2())
        return wfx_trap_target(self.el, ctx) is not None

    @property
    def id(self) -> str:
        """A readable, unique name (the fields that differ from the defaults)."""
        base = Case()
        parts = [self.mode, self.kind + (f"@{self.target}" if self.target else "")]
        for f in fields(self):
            if f.name in ("mode", "kind", "target"):
                continue
            v = getattr(self, f.name)
            if v != getattr(base, f.name):
                parts.append(f"{f.name}={v:#x}" if f.name in ("daif", "nzcv") else f"{f.name}={v}")
        return "-".join(parts)

    def as_dict(self) -> dict:
        return asdict(self)

    # ---- what the generated program is given

    def spsr(self) -> int:
        return MODES[self.mode] | PSTATE.pack(pan=self.pan, uao=self.uao, dit=self.dit, ssbs=self.ssbs) \
            | self.daif << DAIF_SHIFT

    def hcr(self) -> int:
        return HCR_EL2.pack(RW=1, E2H=self.e2h, TGE=self.tge, IMO=self.imo, TWI=self.twi)

    def sctlr_el1(self) -> int:
        return SCTLR.replace(SCTLR_EL1_BASE, nTWI=self.ntwi, SPAN=self.span1, M=self.mmu, DSSBS=self.dssbs1)

    def sctlr_el2(self) -> int:
        if not self.e2h:
            return SCTLR.replace(SCTLR_EL2_BASE, M=self.mmu, DSSBS=self.dssbs2)
        # E2H=1: the EL1 layout
        return SCTLR.replace(SCTLR_EL1_BASE, nTWI=self.ntwi, SPAN=self.span2, M=self.mmu, DSSBS=self.dssbs2)

    def probe(self) -> str:
        prefix = "u_" if self.el == 0 else "k_"
        return prefix + _PROBES.get(self.kind, self.kind)

    def args(self) -> tuple[str, str]:
        """x0, x1 as assembler expressions."""
        if self.kind in MEM_KINDS:
            return MEM_TARGETS[self.target], f"{STORE_VALUE:#x}"
        if self.kind == "iabt":
            return IABT_TARGETS[self.target], "0"
        if self.kind == "msrreg":  # the DIT and SSBS bits to write: both flipped
            return f"{PSTATE.pack(dit=1 - self.dit, ssbs=1 - self.ssbs):#x}", "0"
        return "0x1111", "0x2222"


def valid(case: Case) -> bool:
    return case.invalid_reason() is None


def _cases(**axes) -> Iterator[Case]:
    names = list(axes)
    for values in itertools.product(*(axes[n] for n in names)):
        c = Case(**dict(zip(names, values, strict=True))).normalized()
        if valid(c):
            yield c


def exhaustive() -> list[Case]:
    """Every combination of the axes that matter to each question, the others at defaults."""
    modes, regimes = tuple(MODES), ((0, 0), (0, 1), (1, 0), (1, 1))
    out: list[Case] = []
    # exception entry: class x origin x regime x PAN x SPAN (PAN set on entry, SPSR, routing)
    for e2h, tge in regimes:
        out += _cases(mode=modes, e2h=(e2h,), tge=(tge,), kind=EXC_KINDS, pan=(0, 1), span1=(0, 1),
                      span2=(0, 1), twi=(1,), ntwi=(0,))
    # data accesses: instruction x origin x regime x page x PAN x UAO (PAN, LDTR/STTR, UAO)
    for e2h, tge in regimes:
        out += _cases(mode=modes, e2h=(e2h,), tge=(tge,), kind=MEM_KINDS, target=("kpage", "upage"),
                      pan=(0, 1), uao=(0, 1))
    # fault kinds: translation, access flag, level-2 block, level-1 invalid
    out += _cases(mode=modes, kind=("ldr", "str"), target=("ublock", "tpage", "afpage", "unmapped"),
                  pan=(0, 1), e2h=(0, 1))
    # instruction aborts: origin x regime x target x MMU
    for e2h, tge in regimes:
        out += _cases(mode=modes, e2h=(e2h,), tge=(tge,), kind=("iabt",), target=tuple(IABT_TARGETS),
                      mmu=(0, 1))
    # ERET with a modified SPSR: origin x regime x change
    for e2h, tge in regimes:
        out += _cases(mode=modes, e2h=(e2h,), tge=(tge,), kind=("svc", "brk"), xor=tuple(XORS))
    # DIT and SSBS on entry (facts §8): class x origin x regime x DIT x SSBS x DSSBS of EL1 and EL2
    for e2h, tge in regimes:
        out += _cases(mode=modes, e2h=(e2h,), tge=(tge,), kind=("svc", "hvc", "brk", "udf"), dit=(0, 1),
                      ssbs=(0, 1), dssbs1=(0, 1), dssbs2=(0, 1))
    # their MSR forms at every EL, and the ERET that loads them (or, illegal, keeps them)
    for e2h, tge in regimes:
        out += _cases(mode=modes, e2h=(e2h,), tge=(tge,), kind=("msrreg", "msrimm"), dit=(0, 1), ssbs=(0, 1))
        out += _cases(mode=modes, e2h=(e2h,), tge=(tge,), kind=("svc", "brk"), dit=(0, 1), ssbs=(0, 1),
                      xor=("dit", "ssbs", "btype", "m8dit"))
    # BTYPE at a branch target: SPSR.BTYPE of an SVC and of a BRK, and an ERET loading BTYPE
    for e2h, tge in regimes:
        out += _cases(mode=modes, e2h=(e2h,), tge=(tge,), kind=("brsvc", "blrbrk"), xor=("none", "btype"))
    return _unique(out)


def sampled(n: int, seed: int) -> list[Case]:
    """n valid cases drawn uniformly from every axis at once (seeded: the same list each run)."""
    rng = random.Random(seed)
    out: list[Case] = []
    seen: set[Case] = set()
    while len(out) < n:
        kind = rng.choice(KINDS)
        target = rng.choice(tuple(MEM_TARGETS) if kind in MEM_KINDS else tuple(IABT_TARGETS)) \
            if kind in MEM_KINDS or kind == "iabt" else ""
        c = Case(mode=rng.choice(tuple(MODES)), e2h=rng.randint(0, 1), tge=rng.randint(0, 1),
                 imo=rng.randint(0, 1), twi=rng.randint(0, 1), ntwi=rng.randint(0, 1),
                 span1=rng.randint(0, 1), span2=rng.randint(0, 1), pan=rng.randint(0, 1),
                 uao=rng.randint(0, 1), daif=rng.randrange(16), nzcv=rng.randrange(16),
                 dit=rng.randint(0, 1), ssbs=rng.randint(0, 1), dssbs1=rng.randint(0, 1), dssbs2=rng.randint(0, 1),
                 mmu=rng.randint(0, 1), kind=kind, target=target, xor=rng.choice(tuple(XORS))).normalized()
        if valid(c) and c not in seen:
            seen.add(c)
            out.append(c)
    return out


def _unique(cases: list[Case]) -> list[Case]:
    return list(dict.fromkeys(cases))
