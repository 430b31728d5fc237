"""A scenario: one configuration of the world switch under one code variant, and the matrix."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

from harness.scenarios.world import (
    CALLERS,
    EXIT_CAUSES,
    EXITS_FROM,
    GUEST_ELS,
    IRQ_POINTS,
    variant_names,
)

CPUS = ("max", "a57")


@dataclass(frozen=True)
class Scenario:
    variant: str
    cpu: str = "max"
    vhe: bool = True
    caller: str = "kvm_run"     # kvm_run (USER_DS) | kernel_ds (A1) | kthread (A2)
    guest_pan: int = 0
    guest_uao: int = 0
    exit: str = "hvc"           # hvc | irq | wfi | serror (EL0: irq | wfi | serror)
    hyp_probes: bool = True
    guest_el: int = 1           # the guest EL that exits: 1 (kernel) or 0 (user space)
    guest_dit: int = 0          # the PSTATE.DIT and SSBS the guest runs with when it exits
    guest_ssbs: int = 0
    name: str | None = None     # user scenarios (TOML) name themselves
    diff: str | None = None     # a user variant: its diff file, applied to the v4.13 models
    tags: tuple[str, ...] = field(default=())

    @property
    def config_id(self) -> str:
        """The configuration without the variant: a row of the variant comparison."""
        mode = "vhe" if self.vhe else "nvhe"
        el = "" if self.guest_el == 1 else f"-el{self.guest_el}"   # EL1 ids are as they always were
        ext = "".join(f"-{f}{v}" for f, v in (("dit", self.guest_dit), ("ssbs", self.guest_ssbs)) if v)
        return f"{self.cpu}-{mode}-{self.caller}-pan{self.guest_pan}-uao{self.guest_uao}-{self.exit}{el}{ext}"

    @property
    def id(self) -> str:
        return self.name or f"{self.variant}/{self.config_id}"

    def config_values(self) -> dict[str, int]:
        """scenario_config as world.S reads it."""
        return {
            "vhe": int(self.vhe),
            "caller": CALLERS.index(self.caller),
            "guest_pan": self.guest_pan,
            "guest_uao": self.guest_uao,
            "exit": EXIT_CAUSES.index(self.exit),
            "hyp_probes": int(self.hyp_probes),
            "guest_el": self.guest_el,
            "guest_dit": self.guest_dit,
            "guest_ssbs": self.guest_ssbs,
        }

    @property
    def irq_point(self) -> str:
        """The label where the harness raises an IRQ/SError exit."""
        return IRQ_POINTS[self.guest_el]

    def axes(self) -> dict[str, object]:
        """The axes a verdict's conditions are written in."""
        return {"variant": self.variant, "cpu": self.cpu, "mode": "vhe" if self.vhe else "nvhe",
                "caller": self.caller, "guest_el": self.guest_el, "guest_pan": self.guest_pan,
                "guest_uao": self.guest_uao, "guest_dit": self.guest_dit, "guest_ssbs": self.guest_ssbs,
                "exit": self.exit}

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["tags"] = list(self.tags)
        return d


def configurations(cpus: tuple[str, ...] = CPUS) -> list[Scenario]:
    """Every meaningful configuration (variant left as v4.13). The a57 (v8.0) has no VHE, PAN,
    UAO, DIT or SSBS: it boots non-VHE and its guest cannot set them. A guest at EL0 exits only
    by the causes real there (world.EXITS_FROM).

    The guest runs with DIT=SSBS=0 everywhere, and with DIT=SSBS=1 on one slice that answers
    "does the host run on with the guest's DIT (SSBS) after an exit?": VHE and not, every exit
    from each guest EL, the KVM_RUN caller, PAN as Linux runs each EL (1 in its kernel, 0 in
    user space), UAO=0. Neither the caller nor PAN/UAO changes what happens to DIT or SSBS
    (no code on any path writes them but v6.13's boot), so the whole matrix again would only
    double the run time; v6.13's host, which runs with DIT=1, meets the DIT=0 guest in every
    configuration."""
    out = []
    for cpu in cpus:
        modes = (True, False) if cpu == "max" else (False,)
        flags = (0, 1) if cpu == "max" else (0,)
        for vhe, caller, el, pan, uao in itertools.product(modes, CALLERS, GUEST_ELS, flags, flags):
            for exit_ in EXITS_FROM[el]:
                out.append(Scenario("v4.13", cpu, vhe, caller, pan, uao, exit_, guest_el=el))
        if cpu == "max":
            for vhe, el in itertools.product(modes, GUEST_ELS):
                out += [Scenario("v4.13", cpu, vhe, "kvm_run", el, 0, exit_, guest_el=el, guest_dit=1, guest_ssbs=1)
                        for exit_ in EXITS_FROM[el]]
    return out


def matrix(variants: list[str] | None = None, cpus: tuple[str, ...] = CPUS) -> list[Scenario]:
    """Every configuration under every variant, variant-major."""
    from dataclasses import replace

    names = variants or variant_names()
    return [replace(c, variant=v) for v in names for c in configurations(cpus)]

