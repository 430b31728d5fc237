"""The world-switch program (asm/kvm/world.S): its memory layout, `scenario_config` block and the
labels Python observes. Single source of truth for the asm models and the scenario runner."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from harness.arch.features import Features
from harness.data import ASM_DIR
from harness.textfile import TextFileError, read_text

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
    "guest_el": 48,   # the guest EL that exits: 1 (its kernel) or 0 (its user space)
    "guest_dit": 56,  # PSTATE.DIT the guest runs with when it exits
    "guest_ssbs": 64,  # PSTATE.SSBS the guest runs with when it exits
}
EXIT_CAUSES = ("hvc", "irq", "wfi", "serror")
# The exits that are real from each guest EL (guest.S): HVC is UNDEFINED at EL0.
EXITS_FROM = {1: EXIT_CAUSES, 0: ("irq", "wfi", "serror")}
GUEST_ELS = (1, 0)
# kvm_run: KVM_RUN with USER_DS; kernel_ds: A1's caller, set_fs(KERNEL_DS) around the world
# switch; kthread: A2's path, a kernel thread (KERNEL_DS by inheritance) on its own stack.
CALLERS = ("kvm_run", "kernel_ds", "kthread")
# Where the harness raises an IRQ/SError exit, per guest EL (guest.S).
IRQ_POINTS = {1: "guest_irq_point", 0: "guest_user_irq_point"}

# Host probes: one labelled instruction each, with an exception-table fix-up.
HOST_PROBES = ("probe_ldr_user", "probe_uaccess_user", "probe_uaccess_kernel")
HYP_PROBES = ("probe_hyp_pan1", "probe_hyp_pan0", "probe_hyp_call_kernel", "probe_hyp_current")
WINDOW_PROBE = "probe_window_ldr"
PROBES = HOST_PROBES + HYP_PROBES + (WINDOW_PROBE,)
PROBES_FILE = "probes.S"  # the harness's probes, not kernel code (they set PAN=0 on purpose)

# Named points where PSTATE is observed, in program order.
POINTS = (
    "host_before_call",
    "__kvm_vcpu_run",
    "__guest_enter",
    "guest_entry",
    "guest_irq_point",
    "guest_user_entry",
    "guest_user_irq_point",
    "__guest_exit",
    "__guest_exit_end",
    "vcpu_run_after_guest",
    "vcpu_run_fixup",
    "host_after_call",
)
# The kernel phases of a run, each from its label (or the guest's exit, an exception rather
# than a label) to the next phase's; reports shade them on the timelines.
PHASES = (
    ("host", "host_before_call"),
    ("switch to guest", "__kvm_vcpu_run"),
    ("guest", "guest_entry"),
    ("exit vector", "guest exit"),
    ("__guest_exit", "__guest_exit"),
    ("switch fix-up", "__guest_exit_end"),
    ("host", "host_after_call"),
)
# Where a run must never go: a panic or a guest exception nobody expects.
FAILURE_LABELS = ("panic", "hyp_panic", "guest_bad_exception")
# Non-VHE hyp code is linked with this prefix from v5.9 on (a separate object per mode), so a
# label `__kvm_nvhe_X` stands for the point or probe X on the non-VHE path.
NVHE_PREFIX = "__kvm_nvhe_"
LABELS = (POINTS + PROBES + FAILURE_LABELS
          + ("uao_thread_switch", "kvm_call_hyp", "el1_sync", "el1_trap", "el1_irq", "el1_error")
          + tuple(NVHE_PREFIX + name for name in POINTS + (WINDOW_PROBE,)))


def canonical_label(label: str) -> str:
    """The point or probe a label stands for (`__kvm_nvhe_X` -> X)."""
    return label[len(NVHE_PREFIX):] if label.startswith(NVHE_PREFIX) else label


BASE_VARIANT = "v4.13"
BASE_PROVENANCE = "Linux v4.13: the models in asm/kvm as they are"


def variant_names() -> list[str]:
    """`v4.13` (the unpatched models) plus every asm/variants/<name>.diff."""
    return [BASE_VARIANT] + sorted(p.stem for p in VARIANTS_DIR.glob("*.diff"))


def _diff_path(variant: str, diff_path: str | None) -> Path:
    return Path(diff_path) if diff_path else VARIANTS_DIR / f"{variant}.diff"


def variant_preamble(variant: str, diff_path: str | None = None) -> tuple[str, str]:
    """(provenance, base) from a variant diff's preamble, the text before its first `--- `:
    its first paragraph says what the variant models (upstream commits or release, or a
    what-if); a line `Applies to: NAME` makes it a diff against another variant (default
    v4.13)."""
    if variant == BASE_VARIANT and diff_path is None:
        return BASE_PROVENANCE, ""
    path = _diff_path(variant, diff_path)
    try:
        text = read_text(path)
    except TextFileError:
        return "", BASE_VARIANT  # apply_diff reports the file that cannot be read
    lines = [line.strip() for line in text.split("\n--- ", 1)[0].splitlines()]
    if lines and lines[0].startswith("--- "):
        lines = []
    base = next((line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("applies to:")),
                BASE_VARIANT)
    first: list[str] = []
    for line in lines:
        if not line or line.lower().startswith("applies to:"):
            if first:
                break
            continue
        first.append(line)
    return " ".join(first), base


_RELEASE = re.compile(r"\bLinux (v\d+\.\d+)\b")
_COMMIT = re.compile(r"\b[0-9a-f]{12}\b")
# How a preamble's first words say what the variant is (asm/variants/README in each diff's head).
_KINDS = (("Linux v", "faithful"), ("What-if", "what-if"), ("The 2017 patch", "patch (unmerged)"))


def variant_origin(provenance: str, base: str) -> tuple[str, str]:
    """(upstream, kind) of a variant for the one-line list: the release its provenance names (or
    `on BASE`) and the commit ids it cites; `faithful` (a kernel as released), `what-if`, the
    reviewed patch, or `not stated` when the preamble's first words say none of these."""
    release = _RELEASE.search(provenance)
    commits = list(dict.fromkeys(_COMMIT.findall(provenance)))
    upstream = " ".join([release.group(1) if release else f"on {base or BASE_VARIANT}", *commits])
    kind = next((k for start, k in _KINDS if provenance.startswith(start)), "not stated")
    return upstream, kind


def _stamp(diff_path: str | None) -> tuple[int, int] | None:
    """A user's diff edited since it was applied is applied again (a debugger session reloads)."""
    try:
        st = os.stat(diff_path) if diff_path else None
    except (OSError, ValueError):
        return None
    return st and (st.st_mtime_ns, st.st_size)


def variant_overrides(variant: str, diff_path: str | None = None) -> tuple[tuple[str, str], ...]:
    """Patched file texts {abs path: text} of a variant (empty for v4.13): its diff applied to
    the models, or to the variant its preamble names (`Applies to:`), recursively."""
    return _variant_overrides(variant, diff_path, _stamp(diff_path))


@lru_cache(maxsize=32)
def _variant_overrides(variant: str, diff_path: str | None, _stamp) -> tuple[tuple[str, str], ...]:
    from harness.scenarios.patch import PatchError, apply_diff

    if variant == BASE_VARIANT and diff_path is None:
        return ()
    path = _diff_path(variant, diff_path)
    _, base = variant_preamble(variant, diff_path)
    if base != BASE_VARIANT and base not in variant_names():
        raise PatchError(f"{path}:1: applies to unknown variant {base!r} (known: {', '.join(variant_names())})")
    if base == variant:
        raise PatchError(f"{path}:1: a variant cannot apply to itself")
    sources = dict(variant_overrides(base))
    return tuple(sorted({**sources, **apply_diff(path, ASM_DIR, sources)}.items()))


def assemble_world(variant: str, features: Features, diff_path: str | None = None):
    """world.S assembled for a variant and a CPU's features (cached: once per (variant, cpu))."""
    return _assemble_world(variant, features, diff_path, _stamp(diff_path))


@lru_cache(maxsize=32)   # the built-in matrix needs 14; bounded for long sessions with user diffs
def _assemble_world(variant: str, features: Features, diff_path: str | None, _stamp):
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
