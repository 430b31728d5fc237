"""User scenarios and variants from TOML files (scenarios/*.toml): no Python needed.

    [variant.my-fix]                 # a code variant: a unified diff against asm/kvm (v4.13)
    diff = "my-fix.diff"             # in this file's directory
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
    guest_dit = 0                    # the PSTATE.DIT and SSBS the guest runs with (max only)
    guest_ssbs = 0
    exit = "hvc"                     # hvc | irq | wfi | serror
    hyp_probes = true
    expect = { probe_window_ldr = "fault", probe_ldr_user = "fault" }

Everything is checked when the file is loaded, the variant's diff applied included, so a
mistake is one line (`file:line: ...`) before anything runs.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.data import SCENARIOS_DIR
from harness.scenarios.patch import PatchError
from harness.scenarios.scenario import CPUS, Scenario
from harness.scenarios.world import (
    CALLERS,
    EXITS_FROM,
    GUEST_ELS,
    PROBES,
    variant_names,
    variant_overrides,
)
from harness.textfile import TextFileError, read_text

USER_DIR = SCENARIOS_DIR  # the worked example; in a checkout, the top-level scenarios/
_SCENARIO_KEYS = {"name", "variant", "cpu", "mode", "caller", "guest_el", "guest_pan", "guest_uao", "guest_dit",
                  "guest_ssbs", "exit", "hyp_probes", "expect", "description"}
_VARIANT_KEYS = {"diff", "matrix", "description"}
OUTCOMES = ("ok", "fault", "not_run")
# Names become scenario ids, report file names and table cells: keep them plain.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,79}")
RESERVED_VARIANTS = ("user",)   # user scenario ids are user/NAME


class UserFileError(Exception):
    """A bad TOML scenario file: one line, file[:line]: what is wrong."""


@dataclass
class UserScenario:
    scenario: Scenario
    expect: dict[str, str] = field(default_factory=dict)
    description: str = ""
    where: str = ""                    # file:line of its [[scenario]] header


@dataclass
class UserFile:
    path: Path
    scenarios: list[UserScenario]
    variants: dict[str, Path]          # name -> diff
    matrix_variants: list[str]
    variant_where: dict[str, str] = field(default_factory=dict)   # name -> file:line of [variant.NAME]


def _show(value: object) -> str:
    """A user's value in a message: repr (one line), cut short."""
    if isinstance(value, bool):
        return str(value).lower()   # as TOML spells it
    try:
        r = repr(value)
    except (ValueError, RecursionError):   # an int beyond str()'s digit limit, deep nesting
        return "(a value too large to show)"
    return r if len(r) <= 60 else r[:57] + "..."


class _Places:
    """file:line of the [variant.NAME] and [[scenario]] headers (tomllib gives no positions).
    A table written another way (inline, dotted keys) has no line: the file alone is named."""

    _VARIANT = re.compile(r"""\s*\[\s*variant\s*\.\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*\]""")
    _SCENARIO = re.compile(r"\s*\[\[\s*scenario\s*\]\]")

    def __init__(self, path: Path, text: str, n_scenarios: int) -> None:
        self.path = path
        lines = text.split("\n")
        self.variants: dict[str, int] = {}
        scen = []
        for n, line in enumerate(lines, 1):
            m = self._VARIANT.match(line)
            if m:
                self.variants.setdefault(next(g for g in m.groups() if g is not None), n)
            elif self._SCENARIO.match(line):
                scen.append(n)
        self.scenarios = scen if len(scen) == n_scenarios else []
        self.keys: dict[str, int] = {}   # top-level `variant = ...` / `scenario = ...` (before any [table])
        for n, line in enumerate(lines, 1):
            if re.match(r"\s*\[", line):
                break
            m = re.match(r"\s*(variant|scenario)\s*=", line)
            if m:
                self.keys.setdefault(m.group(1), n)

    def at(self, line: int | None) -> str:
        return f"{self.path}:{line}" if line else str(self.path)

    def variant(self, name: str) -> str:
        return self.at(self.variants.get(name))

    def scenario(self, n: int) -> str:
        return self.at(self.scenarios[n - 1] if self.scenarios else None)


def load(path: Path) -> UserFile:
    path = Path(path)
    try:
        text = read_text(path)
    except TextFileError as e:
        raise UserFileError(str(e)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        where = f"{path}:{m.group(1)}" if m else str(path)
        what = re.sub(r" \(at line.*", "", str(e))
        raise UserFileError(f"{where}: {what}") from None
    except RecursionError:
        raise UserFileError(f"{path}: arrays or tables nested too deeply") from None
    except ValueError as e:   # an integer beyond Python's digit limit for str -> int
        raise UserFileError(f"{path}: {str(e).split(';')[0]}") from None
    unknown = set(data) - {"variant", "scenario"}
    if unknown:
        raise UserFileError(f"{path}: unknown table {_show(sorted(unknown)[0])} (use [variant.NAME] and [[scenario]])")
    variant_tables = data.get("variant", {})
    scenario_tables = data.get("scenario", [])
    places = _Places(path, text, len(scenario_tables) if isinstance(scenario_tables, list) else -1)
    if not isinstance(variant_tables, dict):
        raise UserFileError(f"{places.at(places.keys.get('variant'))}: variant must be tables: [variant.NAME]")
    if not isinstance(scenario_tables, list) or not all(isinstance(s, dict) for s in scenario_tables):
        raise UserFileError(f"{places.at(places.keys.get('scenario'))}: scenario must be an array of tables: "
                            "[[scenario]]")
    uf = UserFile(path, [], {}, [])
    for name, spec in variant_tables.items():
        _variant(uf, places, name, spec)
    seen: dict[str, str] = {}
    for n, spec in enumerate(scenario_tables, 1):
        us = _scenario(places.scenario(n), n, spec, uf.variants)
        if us.scenario.name in seen:
            raise UserFileError(f"{us.where}: scenario {us.scenario.name[5:]!r} is already defined at "
                                f"{seen[us.scenario.name]}")
        seen[us.scenario.name] = us.where
        uf.scenarios.append(us)
    return uf


def _variant(uf: UserFile, places: _Places, name: str, spec: object) -> None:
    where = places.variant(name)
    if not NAME.fullmatch(name) or name in RESERVED_VARIANTS:
        raise UserFileError(f"{where}: variant name {_show(name)}: use letters, digits and . _ + - "
                            f"(at most 80; not {', '.join(RESERVED_VARIANTS)})")
    where += f": [variant.{name}]"
    if not isinstance(spec, dict) or "diff" not in spec:
        raise UserFileError(f"{where}: needs diff = \"FILE.diff\"")
    bad = set(spec) - _VARIANT_KEYS
    if bad:
        raise UserFileError(f"{where}: unknown key {_show(sorted(bad)[0])} (known: {', '.join(sorted(_VARIANT_KEYS))})")
    if name in variant_names():
        raise UserFileError(f"{where}: {name!r} is a built-in variant; choose another name")
    rel = spec["diff"]
    if not isinstance(rel, str) or not rel.strip() or "\0" in rel:
        raise UserFileError(f"{where}: diff = {_show(rel)}: give the diff's file name, in quotes")
    for key, kind in (("matrix", bool), ("description", str)):
        if key in spec and not isinstance(spec[key], kind):
            raise UserFileError(f"{where}: {key} = {_show(spec[key])}: must be a {kind.__name__}")
    base = uf.path.parent.resolve()
    diff = (base / rel).resolve()
    if not diff.is_relative_to(base):
        raise UserFileError(f"{where}: diff {_show(rel)} is outside {uf.path.parent}/: "
                            f"keep a variant's diff next to its TOML file")
    try:
        found = diff.is_file()
    except OSError as e:   # a name too long
        raise UserFileError(f"{where}: diff {_show(rel)}: {e.strerror}") from None
    if not found:
        raise UserFileError(f"{where}: diff file {_show(rel)} not found next to {uf.path.name}")
    try:
        variant_overrides(name, str(diff))   # applied now (and cached): a bad diff stops before any run
    except PatchError as e:
        raise UserFileError(str(e)) from None
    uf.variants[name] = diff
    uf.variant_where[name] = places.variant(name)
    if spec.get("matrix"):
        uf.matrix_variants.append(name)


def _scenario(at: str, n: int, spec: dict, variants: dict[str, Path]) -> UserScenario:
    label = spec.get("name") if isinstance(spec.get("name"), str) else f"#{n}"
    where = f"{at}: scenario {_show(label)}"
    bad = set(spec) - _SCENARIO_KEYS
    if bad:
        raise UserFileError(f"{where}: unknown key {_show(sorted(bad)[0])} (known: {', '.join(sorted(_SCENARIO_KEYS))})")

    def choice(key: str, options: tuple, default):
        v = spec.get(key, default)
        if type(v) is not type(options[0]) or v not in options:   # type: true is not 1
            raise UserFileError(f"{where}: {key} = {_show(v)}: choose one of {', '.join(map(str, options))}")
        return v

    if "name" not in spec:
        raise UserFileError(f"{where}: needs a name")
    name = spec["name"]
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UserFileError(f"{where}: name = {_show(name)}: use letters, digits and . _ + - (at most 80)")
    variant = spec.get("variant", "v4.13")
    if not isinstance(variant, str) or (variant not in variants and variant not in variant_names()):
        raise UserFileError(f"{where}: unknown variant {_show(variant)} (built-in: {', '.join(variant_names())}; "
                            "or define [variant.NAME])")
    cpu = choice("cpu", CPUS, "max")
    mode = choice("mode", ("vhe", "nvhe"), "vhe" if cpu == "max" else "nvhe")
    if cpu == "a57" and mode == "vhe":
        raise UserFileError(f"{where}: the a57 (v8.0) has no VHE: use mode = \"nvhe\"")
    guest_el = choice("guest_el", GUEST_ELS, 1)
    hyp_probes = spec.get("hyp_probes", True)
    for key, kind in (("hyp_probes", bool), ("description", str)):
        if key in spec and not isinstance(spec[key], kind):
            raise UserFileError(f"{where}: {key} = {_show(spec[key])}: must be a {kind.__name__}")
    dit, ssbs = choice("guest_dit", (0, 1), 0), choice("guest_ssbs", (0, 1), 0)
    if cpu == "a57" and (dit or ssbs):
        raise UserFileError(f"{where}: the a57 (v8.0) has no DIT or SSBS: leave guest_dit and guest_ssbs at 0")
    sc = Scenario(
        variant=variant, cpu=cpu, vhe=mode == "vhe", caller=choice("caller", CALLERS, "kvm_run"),
        guest_pan=choice("guest_pan", (0, 1), 0), guest_uao=choice("guest_uao", (0, 1), 0),
        exit=choice("exit", EXITS_FROM[guest_el], "hvc" if guest_el == 1 else "irq"),
        hyp_probes=hyp_probes, guest_el=guest_el, guest_dit=dit, guest_ssbs=ssbs,
        name=f"user/{name}", diff=str(variants[variant]) if variant in variants else None)
    expect = spec.get("expect", {})
    if not isinstance(expect, dict):
        raise UserFileError(f"{where}: expect must be a table of probe = \"ok\" | \"fault\" | \"not_run\"")
    for probe, outcome in expect.items():
        if probe not in PROBES:
            raise UserFileError(f"{where}: expect: unknown probe {_show(probe)} (known: {', '.join(PROBES)})")
        if not isinstance(outcome, str) or outcome not in OUTCOMES:
            raise UserFileError(f"{where}: expect: {probe} = {_show(outcome)}: choose ok, fault or not_run")
    return UserScenario(sc, dict(expect), spec.get("description", ""), at)


def load_all(paths: list[Path] | None = None) -> list[UserFile]:
    files = paths if paths is not None else sorted(USER_DIR.glob("*.toml"))
    unique = {Path(p).resolve(): Path(p) for p in reversed(files)}   # a file named twice is read once
    return [load(p) for p in reversed(unique.values())]
