"""The reports: timelines whose labels do not overlap, with the phases and the exposure window;
a folder that holds one run's files only and names that run; relative links; real VCD dates;
the answer paragraph generated from the verdicts."""

from __future__ import annotations

import datetime
import json
import math
import re
from html.parser import HTMLParser

import pytest
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextPath
from PIL import Image

from harness.scenarios import summary
from harness.scenarios.claims import evaluate
from harness.scenarios.report import MANIFEST, write_reports
from harness.scenarios.runner import run_scenarios
from harness.scenarios.scenario import Scenario
from harness.scenarios.world import PHASES
from harness.trace.plot import plot_timeline
from harness.trace.timeline import Span

VHE_PAN0 = Scenario("v4.13", "max", True, "kvm_run", 0, 0, "hvc")
NVHE_PATCH = Scenario("patch-2017", "max", False, "kvm_run", 0, 0, "hvc")
VHE_PATCH = Scenario("patch-2017", "max", True, "kvm_run", 0, 0, "hvc")
VHE_DIT = Scenario("v6.13", "max", True, "kvm_run", 0, 0, "hvc")   # a v6.2+ host (DIT=1), a DIT=0 guest


@pytest.fixture(scope="module")
def runs():
    return {r.scenario.id: r for r in run_scenarios([VHE_PAN0, NVHE_PATCH, VHE_PATCH, VHE_DIT])}


def _result(runs: list, command: str = "scenarios --test") -> dict:
    return {"harness": {"fidelity": None, "quirks": [], "command": command}, "claims": evaluate(runs),
            "scenarios": [r.to_json() for r in runs], "user": []}


def _spans(run) -> tuple[list[Span], list[Span]]:
    s = run.to_json()
    phases = [Span(p.name, p.start, p.end) for p in summary.phases(s, run.icount)]
    w = summary.exposure_window(s)
    return phases, ([Span(w.name, w.start, w.end)] if w else [])


def _text_wh(label) -> tuple[float, float]:
    ext = TextPath((0, 0), label.text, size=label.size, prop=FontProperties()).get_extents()
    return ext.width * 110 / 72, label.size * 110 / 72


def _rotated_overlap(a, b) -> bool:
    """Two parallel rotated text boxes overlap unless one of the two axes separates them."""
    th = math.radians(a.angle)
    d, n = (math.cos(th), math.sin(th)), (-math.sin(th), math.cos(th))
    (wa, ha), (wb, hb) = _text_wh(a), _text_wh(b)

    def span(axis, lab, length):
        p = lab.anchor[0] * axis[0] + lab.anchor[1] * axis[1]
        return p, p + length

    (a0, a1), (b0, b1) = span(d, a, wa), span(d, b, wb)
    (c0, c1), (e0, e1) = span(n, a, ha), span(n, b, hb)
    return a0 < b1 and b0 < a1 and c0 < e1 and e0 < c1


@pytest.mark.parametrize("sid", [VHE_PAN0.id, NVHE_PATCH.id])
def test_timeline_marks_phases_and_window_without_overlap(runs, sid, tmp_path):
    run = runs[sid]
    phases, windows = _spans(run)
    assert [p.name for p in phases] == [name for name, _label in PHASES]   # every phase reached, in order
    assert windows, "a guest exit with PAN=0 opens the exposure window in both"
    png = tmp_path / "t.png"
    layout = plot_timeline(run.events, png, title=sid, start=phases[0].start, phases=phases, shade=windows)
    with Image.open(png) as im:
        assert im.size == (round(layout.size[0]), round(layout.size[1]))
    marks = [lab for lab in layout.labels if lab.track == "marks"]
    names = [lab for lab in layout.labels if lab.track == "phases"]
    assert len(marks) >= 6 and [lab.text for lab in names] == [p.name for p in phases]
    w, h = layout.size
    for lab in layout.labels:   # inside the picture
        x0, y0, x1, y1 = lab.box
        assert 0 <= x0 and x1 <= w and 0 <= y0 and y1 <= h, lab
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert a.box[2] <= b.box[0] or b.box[2] <= a.box[0], (a.text, b.text)
    for i, a in enumerate(marks):
        for b in marks[i + 1:]:
            assert not _rotated_overlap(a, b), (a.text, b.text)


def test_timeline_draws_dit_and_the_report_lists_w2_leaks_per_variant(runs, tmp_path):
    # facts §8: a VHE guest exit keeps the guest's DIT (0 here) and nothing gives the v6.13 host its
    # DIT=1 back; the timeline draws DIT, and the reports list W2's leaks per variant.
    run = runs[VHE_DIT.id]
    phases, windows = _spans(run)
    layout = plot_timeline(run.events, tmp_path / "d.png", title=VHE_DIT.id, start=phases[0].start, phases=phases)
    assert layout.rows[:5] == ["EL", "PAN", "UAO", "DAIF", "DIT"]
    all_runs = list(runs.values())
    result = _result(all_runs)
    write_reports(result, {r.scenario.id: r.events for r in all_runs}, tmp_path / "r", pictures=set())
    w2 = next(c for c in result["claims"] if c["id"] == "W2")
    assert w2["by_variant"]["v6.13"] == {"scenarios": 1, "leaking": 1, "leaks": {"dit 1 -> 0": 1}}
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| v6.13 | 1/1 | dit 1 -> 0 (1) |" in md
    (v413_leak,) = w2["by_variant"]["v4.13"]["leaks"]       # its DAIF (test_scenarios derives it)
    assert v413_leak.startswith("daif ") and f"| v4.13 | 1/1 | {v413_leak} (1) |" in md and "| patch-2017 | 1/2 |" in md
    page = (tmp_path / "r" / "report.html").read_text()
    assert "<table id='w2'>" in page and "<td>v6.13</td><td>1/1</td><td>dit 1 -&gt; 0 (1)</td>" in page


def test_exposure_window_matches_the_observation(runs):
    """The shaded span is the window observe.py measured: from the exit to the PAN set."""
    run = runs[VHE_PAN0.id]
    w = summary.exposure_window(run.to_json())
    o = run.observations
    assert w.start == o.exit.icount and w.end - w.start == o.window.instructions == 12


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for k in ("href", "src"):
            if a.get(k):
                self.refs.append(a[k])


def test_reports_folder_holds_one_run_and_moves_whole(runs, tmp_path):
    out = tmp_path / "reports"
    all_runs = list(runs.values())
    write_reports(_result(all_runs, "scenarios --all"), {r.scenario.id: r.events for r in all_runs}, out,
                  pictures={VHE_PAN0.id, NVHE_PATCH.id})
    (out / "fidelity.json").write_text("{}")           # written by another command: must stay
    one = [runs[VHE_PATCH.id]]
    write_reports(_result(one, "scenarios --only X"), {r.scenario.id: r.events for r in one}, out,
                  pictures={VHE_PATCH.id})
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["command"] == "scenarios --only X" and manifest["scenarios"] == 1
    assert on_disk == set(manifest["files"]) | {MANIFEST, "fidelity.json"}
    assert not any(VHE_PAN0.id.replace("/", "__") in f or NVHE_PATCH.id.replace("/", "__") in f for f in on_disk)

    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    out.rename(moved)
    page = (moved / "report.html").read_text()
    links = _Links()
    links.feed(page)
    assert "scenarios --only X" in page
    for ref in links.refs:
        if ref.startswith("#"):
            assert ref[1:] in links.ids, ref
        elif not ref.startswith("data:"):
            assert "://" not in ref and not ref.startswith("/"), ref
            assert (moved / ref).is_file(), ref
    assert any(r.endswith(".vcd") for r in links.refs)


def test_vcd_date_is_the_real_date(runs, tmp_path, monkeypatch):
    one = [runs[VHE_PAN0.id]]
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    write_reports(_result(one), {r.scenario.id: r.events for r in one}, tmp_path / "a", pictures=set())
    (vcd,) = (tmp_path / "a" / "vcd").glob("*.vcd")
    date = re.search(r"\$date (.*?) \$end", vcd.read_text()).group(1)
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    assert date.startswith(today) and "today" not in date
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1500000000")     # reproducible builds may pin it
    write_reports(_result(one), {r.scenario.id: r.events for r in one}, tmp_path / "b", pictures=set())
    (vcd,) = (tmp_path / "b" / "vcd").glob("*.vcd")
    text = vcd.read_text()
    assert "$date 2017-07-14 02:40:00 UTC $end" in text
    assert "$var string 1" in text and " phase " in text and "sguest" in text   # the phases, as a string signal


def _claim(cid: str, verdict: str, conditions: list[str] | None = None) -> dict:
    return {"id": cid, "role": "reviewer", "claim": f"Claim {cid} says something; more detail.",
            "verdict": verdict, "conditions": conditions or [], "summary": "", "evidence": []}


def test_answer_is_generated_from_the_verdicts():
    claims = [_claim("X1", "holds"), _claim("X2", "fails"), _claim("X3", "conditional", ["mode=vhe", "cpu=a57"]),
              _claim("X4", "undecided"), _claim("X5", "holds")]
    result = {"harness": {"quirks": []}, "claims": claims, "scenarios": []}
    text = summary.answer(result)
    sentences = {s.split(":")[0]: s for s in re.split(r"(?<=\.) (?=[A-Z0-9])", text)}
    holds = next(s for k, s in sentences.items() if "hold wherever" in k)
    assert "X1 (reviewer: Claim X1 says something)" in holds and "X5" in holds and "X2" not in holds
    assert "X2" in next(s for k, s in sentences.items() if "fails in every" in k)
    assert "X3 (reviewer: Claim X3 says something) when mode=vhe or when cpu=a57" in text
    assert "No scenario of this run tests X4." in text
    claims[1]["verdict"] = "holds"
    assert "fail" not in summary.answer(result).split("come out as follows.")[1]
    brief = summary.answer(result, brief=True)
    assert "X1, X2 and X5" in brief and "says something" not in brief


def test_answer_on_real_verdicts_names_every_claim(runs):
    result = _result(list(runs.values()))
    text = summary.answer(result, brief=True)
    for c in result["claims"]:
        if c["verdict"] != "undecided":
            assert re.search(rf"\b{c['id']}\b", text), c["id"]
