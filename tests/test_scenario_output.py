"""The `scenarios` command's terminal output fits 80 and 120 columns without cutting text,
gives every configuration a short unique label, and respects NO_COLOR and pipes."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from harness.scenarios import summary
from harness.scenarios.terminal import print_result

ROOT = Path(__file__).resolve().parents[1]
COLOUR = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-79]|9[0-7]|38;[25];[\d;]+)m")   # a foreground colour


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "TERM")}
    return subprocess.run([sys.executable, "-m", "harness", "scenarios", "--no-reports", *args], cwd=ROOT,
                          env={**base, **(env or {})}, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def result() -> dict:
    """The full run (every variant, the TOML example) as the command computes it."""
    p = _cli("--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _render(result: dict, width: int, details: bool) -> str:
    buf = io.StringIO()
    print_result(Console(file=buf, width=width, color_system=None), result, details=details)
    return buf.getvalue()


def _details_rows(text: str, labels: list[str]) -> list[str]:
    return [line for line in text.splitlines() if any(line.startswith(lab + " ") for lab in labels)]


@pytest.mark.parametrize("width", [80, 120])
def test_output_fits_without_cutting_text(result, width):
    for details in (False, True):
        text = _render(result, width, details)
        assert "…" not in text
        assert max(len(line) for line in text.splitlines()) <= width
        for c in result["claims"]:   # one row per claim, its id in the first column
            assert len(re.findall(rf"^│ {c['id']} +│", text, re.M)) == 1, c["id"]
        variants, _rows = summary.matrix_rows(result)
        for v in variants[1:]:
            assert re.search(rf"^│ {re.escape(v)} +│", text, re.M), v
        # W2 per variant, every variant's row with its leaking count (the DIT answer among them)
        assert "does not give back to the host (W2, per variant)" in text
        for x in summary.leaks_by_variant(result):
            assert re.search(rf"^│ {re.escape(x.variant)} +│ +{x.leaking}/{x.scenarios} │", text, re.M), x.variant
        assert "dit 1 -> 0" in text.replace("\n│", "")


@pytest.mark.parametrize("width", [80, 120])
def test_details_rows_have_unique_labels_and_are_never_alike(result, width):
    text = _render(result, width, True)
    variants, rows = summary.matrix_rows(result)
    configs = [summary.axes_of(next(iter(c.values()))) for c in rows.values()]
    labels, legend = summary.short_labels(configs)
    assert len(set(labels)) == len(labels) == len(rows)
    lines = _details_rows(text, labels)
    tables = len(lines) // len(rows)      # as many tables as the width needs, each with every row
    assert tables >= 1 and len(lines) == tables * len(rows)
    shown: set[str] = set()
    for k in range(tables):
        chunk = lines[k * len(rows):(k + 1) * len(rows)]
        assert len(set(chunk)) == len(chunk)             # no two rows alike
        for lab, line in zip(labels, chunk, strict=True):  # the whole label first
            assert line.startswith(lab + " ")
        head = text.split(chunk[0])[0].rstrip().splitlines()
        shown |= {v for v in variants if v.split("-")[-1] in " ".join(head[-4:])}
    assert shown == set(variants), "every variant has a column somewhere"
    assert f"rows: {legend}".split()[:4] == text[text.index("rows: "):].split()[:4]
    default = _render(result, width, False)
    assert not _details_rows(default, labels)    # the full comparison only under --details
    assert len(default.splitlines()) < len(text.splitlines())


def test_short_labels_follow_the_axes_they_are_given():
    """A new axis (as guest_el will be) gets a token and a legend entry without code changes."""
    configs = [{"cpu": "max", "mode": m, "caller": c, "guest_pan": p, "guest_el": el, "exit": x}
               for m in ("vhe", "nvhe") for c in ("kvm_run", "kernel_ds") for p in (0, 1) for el in (1, 2)
               for x in ("hvc", "serror")]
    labels, legend = summary.short_labels(configs)
    assert len(set(labels)) == len(labels)
    assert "guest_el el1 el2" in legend and "caller kr=kvm_run kd=kernel_ds" in legend and "all rows: cpu=max" in legend
    assert labels[0] == "vhe kr p0 el1 hvc"


def test_where_variants_differ_is_described_by_axes():
    universe = [{"mode": m, "caller": c, "pan": p} for m in ("vhe", "nvhe") for c in ("a", "b") for p in (0, 1)]
    assert summary.describe([u for u in universe if u["mode"] == "vhe" and u["pan"] == 0], universe) == \
        ["mode=vhe pan=0"]
    assert summary.describe(universe, universe) == ["all"]
    odd = [u for u in universe if (u["mode"], u["caller"], u["pan"]) in (("vhe", "a", 0), ("nvhe", "b", 1))]
    assert sorted(summary.describe(odd, universe)) == ["mode=nvhe caller=b pan=1", "mode=vhe caller=a pan=0"]


def test_pipe_no_color_and_columns_are_respected():
    args = ("--only", "v4.13/max-vhe-kvm_run-*", "--only", "patch-2017/max-vhe-kvm_run-*")
    piped = _cli(*args, env={"COLUMNS": "80"})
    assert piped.returncode == 0 and "\x1b[" not in piped.stdout
    assert max(len(line) for line in piped.stdout.splitlines()) <= 80
    forced = _cli(*args, env={"COLUMNS": "120", "FORCE_COLOR": "1"})
    assert COLOUR.search(forced.stdout), "a terminal gets colours"
    plain = _cli(*args, env={"COLUMNS": "120", "FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert not COLOUR.search(plain.stdout)
    assert "*" in plain.stdout or "differ" in plain.stdout
    assert max(len(re.sub(r"\x1b\[[\d;]*m", "", line)) for line in plain.stdout.splitlines()) <= 120


def test_one_variant_or_user_scenarios_alone(result):
    """With one variant there is nothing to compare, but --details still shows each configuration's
    outcomes; user scenarios alone print no comparison at all."""
    one = {**result, "scenarios": [s for s in result["scenarios"] if s["variant"] == "patch-2017"
                                   and not s["config"].get("name")]}
    text = _render(one, 80, True)
    n = len(one["scenarios"])
    assert f"One variant ran (patch-2017, {n} configurations)" in text
    configs = [summary.axes_of(s) for s in one["scenarios"]]
    labels, _legend = summary.short_labels(configs)
    rows = _details_rows(text, labels)
    assert len(rows) == n and all(len(r.split()) > len(lab.split()) for r, lab in zip(rows, labels, strict=True))
    users = {**result, "scenarios": [s for s in result["scenarios"] if s["config"].get("name")]}
    text = _render(users, 80, True)
    assert "Your scenarios" in text
    assert "Where the variants differ" not in text and "One variant ran" not in text and "Every configuration" not in text


def test_json_is_the_same_for_any_jobs():
    """-j N runs each (variant, CPU) in a worker process; the result is the one process's, in the
    same order, but for the wall time and the command line that asked for it."""
    outs = []
    for jobs in ("1", "2"):
        p = _cli("--json", "--only", "*-kvm_run-pan0-uao0-*", "-j", jobs)
        assert p.returncode == 0, p.stderr
        d = json.loads(p.stdout)
        assert d["harness"].pop("command").endswith(f"-j {jobs}")
        d["harness"].pop("seconds")
        outs.append(json.dumps(d, indent=1, sort_keys=True))
    assert outs[0] == outs[1]
    d = json.loads(outs[0])
    assert len({(s["variant"], s["config"]["cpu"]) for s in d["scenarios"]}) > 2   # many worker tasks
    assert any(s["config"]["diff"] for s in d["scenarios"])   # a user variant's diff among them
