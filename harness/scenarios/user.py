"""User scenarios and variants from TOML files (scenarios/*.toml): no Python needed.

    [variant.my-fix]                 # a code variant: a unified diff against asm/kvm (v4.13)
    diff = "my-fix.diff"             # relative to this file
    matrix = true                    # also run every configuration under it (a column)

    [[scenario]]
    name = "my-fix-vhe-guest-pan0"
    variant = "my-fix"               # or a built-in: v4.13, patch-2017, ...
    cpu = "max"                      # max | a57
    mode = "vhe"                     # vhe | nvhe
    caller = "kvm_run"               # kvm_run (USER_DS) | kernel_ds | kthread
    guest_el = 1                     # 1: the guest kernel exits; 0: its user space (no hvc)
    guest_pan = 0
    guest_uao = 0
    exit = "hvc"                     # hvc | irq | wfi | serror
    hyp_probes = true
    expect = { probe_window_ldr = "fault", probe_ldr_user = "fault" }
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.scenarios.scenario import CPUS, Scenario
from harness.scenarios.world import (
    CALLERS,
    EXITS_FROM,
    GUEST_ELS,
    PROBES,
    ROOT,
    variant_names,
)

USER_DIR = ROOT / "scenarios"
_SCENARIO_KEYS = {"name", "variant", "cpu", "mode", "caller", "guest_el", "guest_pan", "guest_uao", "exit",
                  "hyp_probes", "expect", "description"}
_VARIANT_KEYS = {"diff", "matrix", "description"}


class UserFileError(Exception):
    """A bad TOML scenario file: one line, file[:line]: what is wrong."""


@dataclass
class UserScenario:
    scenario: Scenario
    expect: dict[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass
class UserFile:
    path: Path
    scenarios: list[UserScenario]
    variants: dict[str, Path]          # name -> diff
    matrix_variants: list[str]


def load(path: Path) -> UserFile:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise UserFileError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        where = f"{path}:{m.group(1)}" if m else str(path)
        what = re.sub(r" \(at line.*", "", str(e))
        raise UserFileError(f"{where}: {what}") from None
    unknown = set(data) - {"variant", "scenario"}
    if unknown:
        raise UserFileError(f"{path}: unknown table {sorted(unknown)[0]!r} (use [variant.NAME] and [[scenario]])")
    variants: dict[str, Path] = {}
    matrix_variants = []
    for name, spec in (data.get("variant") or {}).items():
        where = f"{path}: [variant.{name}]"
        if not isinstance(spec, dict) or "diff" not in spec:
            raise UserFileError(f"{where}: needs diff = \"FILE.diff\"")
        bad = set(spec) - _VARIANT_KEYS
        if bad:
            raise UserFileError(f"{where}: unknown key {sorted(bad)[0]!r} (known: {', '.join(sorted(_VARIANT_KEYS))})")
        if name in variant_names():
            raise UserFileError(f"{where}: {name!r} is a built-in variant; choose another name")
        diff = (path.parent / spec["diff"]).resolve()
        if not diff.is_file():
            raise UserFileError(f"{where}: diff file {spec['diff']!r} not found next to {path.name}")
        variants[name] = diff
        if spec.get("matrix"):
            matrix_variants.append(name)
    scenarios = []
    for n, spec in enumerate(data.get("scenario") or [], 1):
        scenarios.append(_scenario(path, n, spec, variants))
    return UserFile(path, scenarios, variants, matrix_variants)


def _scenario(path: Path, n: int, spec: dict, variants: dict[str, Path]) -> UserScenario:
    where = f"{path}: scenario {spec.get('name', '#' + str(n))!r}"
    bad = set(spec) - _SCENARIO_KEYS
    if bad:
        raise UserFileError(f"{where}: unknown key {sorted(bad)[0]!r} (known: {', '.join(sorted(_SCENARIO_KEYS))})")

    def choice(key: str, options: tuple, default):
        v = spec.get(key, default)
        if v not in options:
            raise UserFileError(f"{where}: {key} = {v!r}: choose one of {', '.join(map(str, options))}")
        return v

    if "name" not in spec:
        raise UserFileError(f"{where}: needs a name")
    variant = spec.get("variant", "v4.13")
    if variant not in variants and variant not in variant_names():
        raise UserFileError(f"{where}: unknown variant {variant!r} (built-in: {', '.join(variant_names())}; "
                            "or define [variant.NAME])")
    cpu = choice("cpu", CPUS, "max")
    mode = choice("mode", ("vhe", "nvhe"), "vhe" if cpu == "max" else "nvhe")
    if cpu == "a57" and mode == "vhe":
        raise UserFileError(f"{where}: the a57 (v8.0) has no VHE: use mode = \"nvhe\"")
    guest_el = choice("guest_el", GUEST_ELS, 1)
    sc = Scenario(
        variant=variant, cpu=cpu, vhe=mode == "vhe", caller=choice("caller", CALLERS, "kvm_run"),
        guest_pan=choice("guest_pan", (0, 1), 0), guest_uao=choice("guest_uao", (0, 1), 0),
        exit=choice("exit", EXITS_FROM[guest_el], "hvc" if guest_el == 1 else "irq"),
        hyp_probes=bool(spec.get("hyp_probes", True)), guest_el=guest_el,
        name=f"user/{spec['name']}", diff=str(variants[variant]) if variant in variants else None)
    expect = spec.get("expect", {})
    if not isinstance(expect, dict):
        raise UserFileError(f"{where}: expect must be a table of probe = \"ok\" | \"fault\" | \"not_run\"")
    for probe, outcome in expect.items():
        if probe not in PROBES:
            raise UserFileError(f"{where}: expect: unknown probe {probe!r} (known: {', '.join(PROBES)})")
        if outcome not in ("ok", "fault", "not_run"):
            raise UserFileError(f"{where}: expect: {probe} = {outcome!r}: choose ok, fault or not_run")
    return UserScenario(sc, dict(expect), spec.get("description", ""))


def load_all(paths: list[Path] | None = None) -> list[UserFile]:
    files = paths if paths is not None else sorted(USER_DIR.glob("*.toml"))
    return [load(Path(p)) for p in files]
