"""Parsing the programs' output, the reviewed exclusions, and the field-by-field comparison."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.fidelity.cases import Case

EXCLUSIONS_FILE = Path(__file__).with_name("exclusions.toml")
RECORD_FIELDS = ("vec", "el", "esr", "elr", "spsr", "far", "pan", "uao", "daif", "spsel", "dit", "ssbs")
HEAD_FIELDS = ("x0", "exit")  # the case's own fields, before its exception records
MASKABLE = {*HEAD_FIELDS, "esr", "spsr", "pan", "uao", "dit", "ssbs"}
_LINE = re.compile(r"^C(\d+) n=(\d+) x0=(\S+) exit=(\S+)((?: \| .*)?)$")


class ExclusionError(Exception):
    """exclusions.toml is malformed (the message names the entry)."""


@dataclass
class CaseOutput:
    """One case's line, parsed: head fields and one dict per exception taken."""

    n: int
    x0: str
    exit: str
    records: list[dict[str, str]]
    line: str


def parse(text: str) -> dict[int, CaseOutput]:
    """Case number -> output; lines that are not case lines are ignored here."""
    out: dict[int, CaseOutput] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        records = []
        for group in m.group(5).split(" | ")[1:]:
            records.append(dict(kv.split("=", 1) for kv in group.split()))
        out[int(m.group(1))] = CaseOutput(int(m.group(2)), m.group(3), m.group(4), records, line)
    return out


@dataclass(frozen=True)
class Exclusion:
    name: str
    reason: str
    match: dict
    record: dict = field(default_factory=dict)
    mask: dict = field(default_factory=dict)
    arm: dict = field(default_factory=dict)
    after_ec: tuple[int, ...] = ()
    qemu: bool = True

    def applies(self, case: Case) -> bool:
        return all(getattr(case, k) in v for k, v in self.match.items())

    @property
    def whole_case(self) -> bool:
        return not self.mask


def load_exclusions(path: Path = EXCLUSIONS_FILE) -> list[Exclusion]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ExclusionError(f"{path}: {e}") from None
    known = {f for f in Case.__dataclass_fields__}
    out = []
    for i, raw in enumerate(data.get("exclusion", [])):
        where = f"{path}: exclusion {i + 1} ({raw.get('name', '?')})"
        unknown = set(raw) - {"name", "reason", "match", "record", "mask", "arm", "after_ec", "qemu"}
        if unknown or "name" not in raw or "reason" not in raw or "match" not in raw:
            raise ExclusionError(f"{where}: needs name, reason and match; unknown keys {sorted(unknown)}")
        if set(raw["match"]) - known:
            raise ExclusionError(f"{where}: match names no case field: {sorted(set(raw['match']) - known)}")
        if set(raw.get("mask", {})) - MASKABLE or set(raw.get("arm", {})) - set(raw.get("mask", {})):
            raise ExclusionError(f"{where}: mask fields must be among {sorted(MASKABLE)}, arm within mask")
        out.append(Exclusion(raw["name"], " ".join(raw["reason"].split()), raw["match"], raw.get("record", {}),
                             raw.get("mask", {}), raw.get("arm", {}), tuple(raw.get("after_ec", ())),
                             raw.get("qemu", True)))
    return out


@dataclass
class Verdict:
    status: str  # agree | differ | excluded | missing
    detail: str = ""  # the first differing field, or the exclusion applied
    masked: list[str] = field(default_factory=list)  # exclusions whose masks were used
    arm_violations: list[str] = field(default_factory=list)  # harness values against `arm`


def _ec(rec: dict[str, str]) -> int:
    return int(rec["esr"], 16) >> 26


def _masks_for(ex: Exclusion, out: CaseOutput) -> tuple[dict[int, dict], dict]:
    """Per-record masks and the masks of the head fields (x0, exit) that `ex` puts on `out`."""
    start = 0
    if ex.after_ec:
        hits = [i for i, r in enumerate(out.records) if _ec(r) in ex.after_ec]
        if not hits:
            return {}, {}
        start = hits[0]
    per: dict[int, dict] = {}
    for i, rec in enumerate(out.records[start:], start):
        if "ec" in ex.record and _ec(rec) not in ex.record["ec"]:
            continue
        if "el" in ex.record and int(rec["el"], 16) not in ex.record["el"]:
            continue
        if "spsr_set" in ex.record and int(rec["spsr"], 16) & ex.record["spsr_set"] != ex.record["spsr_set"]:
            continue
        per[i] = {k: v for k, v in ex.mask.items() if k not in HEAD_FIELDS}
    head = {k: v for k, v in ex.mask.items() if k in HEAD_FIELDS}
    return per, (head if per or not ex.record else {})


def compare(case: Case, qemu: CaseOutput | None, ours: CaseOutput | None, exclusions: list[Exclusion]) -> Verdict:
    """Field by field, with the masks of the exclusions that apply; the first difference."""
    applicable = [e for e in exclusions if e.applies(case)]
    whole = next((e for e in applicable if e.whole_case), None)
    if ours is None:
        return Verdict("missing", "no output from the harness")
    if qemu is None:
        return Verdict("excluded", whole.name) if whole is not None else Verdict("missing", "no output from QEMU")
    if whole is not None:
        # left out of the count; still say whether QEMU differs here, and where
        inner = compare(case, qemu, ours, [e for e in exclusions if e is not whole])
        seen = "QEMU agrees" if inner.status == "agree" else f"QEMU differs: {inner.detail}"
        return Verdict("excluded", f"{whole.name} ({seen})")
    masks: dict[int, dict] = {}
    head_mask = dict.fromkeys(HEAD_FIELDS, 0)
    used, violations = [], []
    for ex in applicable:
        per, ex_exit = _masks_for(ex, ours)
        q_per, _ = _masks_for(ex, qemu)
        for i, m in {**q_per, **per}.items():
            for k, v in m.items():
                masks.setdefault(i, {})[k] = masks.get(i, {}).get(k, 0) | v
        for k, v in ex_exit.items():
            head_mask[k] |= v
        if per or ex_exit:
            used.append(ex.name)
            violations += _check_arm(ex, ours, per, ex_exit)

    def differs(name: str, a: str, b: str, mask: int) -> bool:
        if mask and a.startswith("0x") and b.startswith("0x"):
            return (int(a, 16) & ~mask) != (int(b, 16) & ~mask)
        return a != b

    if qemu.n != ours.n:
        return Verdict("differ", f"exceptions taken: QEMU {qemu.n}, harness {ours.n}", used, violations)
    for name, a, b, m in (("x0", qemu.x0, ours.x0, head_mask["x0"]), ("exit", qemu.exit, ours.exit, head_mask["exit"])):
        if differs(name, a, b, m):
            return Verdict("differ", f"{name}: QEMU {a}, harness {b}", used, violations)
    for i, (qr, br) in enumerate(zip(qemu.records, ours.records, strict=True)):
        for f in RECORD_FIELDS:
            if differs(f, qr.get(f, "?"), br.get(f, "?"), masks.get(i, {}).get(f, 0)):
                return Verdict("differ", f"exception {i + 1} {f}: QEMU {qr.get(f)}, harness {br.get(f)}",
                               used, violations)
    return Verdict("agree", ", ".join(used), used, violations)


def _check_arm(ex: Exclusion, ours: CaseOutput, per: dict[int, dict], ex_exit: dict) -> list[str]:
    """Where QEMU is masked, the harness must show what the Arm rule says (`arm`: a number,
    "spsr0": those bits of the first exception's SPSR, "spsr": of the record's own SPSR)."""
    bad = []
    spsr0 = int(ours.records[0]["spsr"], 16) if ours.records else 0
    targets = [(f"exception {i + 1} {f}", ours.records[i][f], f, int(ours.records[i]["spsr"], 16))
               for i, m in per.items() for f in m]
    targets += [(k, getattr(ours, k), k, spsr0) for k in ex_exit]
    for where, value, f, own_spsr in targets:
        if f not in ex.arm or not value.startswith("0x"):
            continue
        mask = ex.mask[f]
        want = {"spsr0": spsr0, "spsr": own_spsr}.get(ex.arm[f], ex.arm[f]) & mask
        if int(value, 16) & mask != want:
            bad.append(f"{ex.name}: {where} = {value}, Arm rule wants bits {mask:#x} = {want:#x}")
    return bad
