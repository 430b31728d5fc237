"""The world-switch program (asm/kvm/world.S): its memory layout, `scenario_config` block and the
labels Python observes. Single source of truth for the asm models and the scenario runner."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from harness.arch.features import Features

ROOT = Path(__file__).resolve().parents[2]
ASM_DIR = ROOT / "asm"
WORLD_S = ASM_DIR / "kvm" / "world.S"
VARIANTS_DIR = ASM_DIR / "variants"

# Identity-mapped (VA == PA) sections of world.S.
LAYOUT: dict[str, int] = {
    ".text": 0x4008_0000,       # head + host kernel text (_start)
    ".hyp.text": 0x4010_0000,   # hyp code and __kvm_hyp_vector
    ".hyp.data": 0x4011_0000,   # hyp stack, vcpu (host and guest contexts), hyp exception table
    ".data": 0x4012_0000,       # task struct, scenario_config, kernel_buf (AP=00)
    ".user": 0x4013_0000,       # user_page (AP=01)
    ".guest": 0x4014_0000,      # guest text and data
    ".pgtables": 0x4020_0000,   # every translation table
    "__ex_table": 0x4012_f000,      # the kernel's exception table (last page of .data's range)
    "__hyp_ex_table": 0x4011_f000,  # hyp's (last page of .hyp.data's range: mapped for hyp)
}

# scenario_config: 8-byte fields, written by Python before the run.
CONFIG_FIELDS: dict[str, int] = {
    "vhe": 0,         # 1: boot VHE when ID_AA64MMFR1_EL1.VH allows it
    "caller": 8,      # 0: KVM_RUN (USER_DS); 1: kernel_ds_caller (set_fs(KERNEL_DS))
    "guest_pan": 16,  # PSTATE.PAN the guest sets before exiting
    "guest_uao": 24,  # PSTATE.UAO the guest sets before exiting
    "exit": 32,       # 0 hvc, 1 irq, 2 wfi, 3 serror
    "hyp_probes": 40,  # 1: run the EL2 probe host-calls after the world switch
}
EXIT_CAUSES = ("hvc", "irq", "wfi", "serror")
CALLERS = ("kvm_run", "kernel_ds")

# Host probes: one labelled instruction each, with an exception-table fix-up.
HOST_PROBES = ("probe_ldr_user", "probe_uaccess_user", "probe_uaccess_kernel")
HYP_PROBES = ("probe_hyp_pan1", "probe_hyp_pan0", "probe_hyp_call_kernel", "probe_hyp_current")
WINDOW_PROBE = "probe_window_ldr"
PROBES = HOST_PROBES + HYP_PROBES + (WINDOW_PROBE,)

# Named points where PSTATE is observed, in program order.
POINTS = (
    "host_before_call",
    "__kvm_vcpu_run",
    "__guest_enter",
    "guest_entry",
    "guest_irq_point",
    "__guest_exit",
    "__guest_exit_end",
    "vcpu_run_after_guest",
    "vcpu_run_fixup",
    "host_after_call",
)
# Where a run must never go: a panic or a guest exception nobody expects.
FAILURE_LABELS = ("panic", "hyp_panic", "guest_bad_exception")
LABELS = (POINTS + PROBES + FAILURE_LABELS
          + ("uao_thread_switch", "kvm_call_hyp", "el1_sync", "el1_trap", "el1_irq", "el1_error"))


def variant_names() -> list[str]:
    """`v4.13` (the unpatched models) plus every asm/variants/<name>.diff."""
    return ["v4.13"] + sorted(p.stem for p in VARIANTS_DIR.glob("*.diff"))


@cache
def variant_overrides(variant: str, diff_path: str | None = None) -> tuple[tuple[str, str], ...]:
    """Patched file texts {abs path: text} of a variant (empty for v4.13)."""
    from harness.scenarios.patch import apply_diff

    if variant == "v4.13" and diff_path is None:
        return ()
    path = Path(diff_path) if diff_path else VARIANTS_DIR / f"{variant}.diff"
    return tuple(sorted(apply_diff(path, ASM_DIR).items()))


@cache
def assemble_world(variant: str, features: Features, diff_path: str | None = None):
    """world.S assembled for a variant and a CPU's features (cached: once per (variant, cpu))."""
    from harness.asm import assemble_file

    return assemble_file(WORLD_S, features=features, section_addresses=LAYOUT,
                         overrides=dict(variant_overrides(variant, diff_path)))


def config_bytes(values: dict[str, int]) -> dict[int, bytes]:
    """Offsets within scenario_config -> little-endian 8-byte values."""
    out = {}
    for name, value in values.items():
        if name not in CONFIG_FIELDS:
            raise KeyError(f"unknown scenario_config field {name!r} (known: {', '.join(CONFIG_FIELDS)})")
        out[CONFIG_FIELDS[name]] = int(value).to_bytes(8, "little")
    return out
