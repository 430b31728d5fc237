"""reports/: report.md and a self-contained report.html (CSS inline, pictures as data URIs),
timelines/<scenario>.png for the scenarios that decide claims, vcd/<scenario>.vcd for all,
scenarios.json (the result as --json prints it), and run.json, which names the run that wrote
them and lists every file it wrote.

Each run leaves only its own files: what the previous run's run.json lists, and any picture
or VCD in timelines/ and vcd/, is removed first (other files, such as fidelity.json, stay).
Every link is relative, so the folder can be moved or archived as a whole."""

from __future__ import annotations

import base64
import errno
import html
import json
import tempfile
from pathlib import Path

from harness.scenarios import summary
from harness.trace import events as ev
from harness.trace.timeline import Span

MANIFEST = "run.json"
RESULT_JSON = "scenarios.json"
TITLE = "pstate-harness: the 2017 UAO/PAN review, decided by running the world switch"

_CSS = """body{font-family:sans-serif;margin:2em;max-width:90em;line-height:1.4}
table{border-collapse:collapse;font-size:90%;margin:0.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}th{background:#eee;text-align:left}
.holds{color:#060}.fails{color:#a00}.conditional{color:#a60}.undecided{color:#666}.diff{background:#ffd}
code,pre{font-size:85%}img{max-width:100%}p.answer{font-size:105%;background:#f4f7fb;padding:0.8em;
border-left:4px solid #1f4e79}.run{color:#555;font-size:90%}"""


_W2_LEGEND = ("Every PSTATE field of the host at host_before_call against host_after_call (the same point of its "
              "path before and after the world switch), condition flags left out, D/A/I/F as one DAIF: a field "
              "that differs is one the world switch did not give back. DIT: a VHE guest exit keeps the guest's "
              "(AArch64.TakeException does not assign DIT) and no ERET returns to a VHE host.")


def _slug(scenario_id: str) -> str:
    return scenario_id.replace("/", "__")


def prepare_reports_dir(out_dir: Path) -> None:
    """Create out_dir, timelines/ and vcd/ and check that each is a directory a file can be
    written in (OSError otherwise): checked before a run, so a bad --reports costs nothing."""
    for d in (out_dir, out_dir / "timelines", out_dir / "vcd"):
        if d.exists() and not d.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(d))
        d.mkdir(parents=True, exist_ok=True)
        try:
            with tempfile.TemporaryFile(dir=d):
                pass
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(d)) from None


def write_reports(result: dict, events_by_scenario: dict[str, list[ev.Event]], out_dir: Path, *,
                  pictures: set[str], start_by_scenario: dict[str, int] | None = None) -> list[Path]:
    """Write the reports; `pictures` are the scenario ids that get a timeline PNG; a timeline
    starts where the scenario's first kernel phase does unless `start_by_scenario` says."""
    # matplotlib and the VCD writer load here, so `scenarios --no-reports` does without them
    from harness.trace.plot import plot_timeline
    from harness.trace.vcd import vcd_date, write_vcd

    prepare_reports_dir(out_dir)
    _clean(out_dir)
    date = vcd_date()
    command = result["harness"].get("command") or "scenarios"
    scen = {s["id"]: s for s in result["scenarios"]}
    written: list[Path] = []
    pngs: dict[str, Path] = {}
    for sid, events in events_by_scenario.items():
        s = scen.get(sid)
        end = max((e.icount for e in events), default=0)
        phases = [Span(p.name, p.start, p.end) for p in summary.phases(s, end)] if s else []
        window = summary.exposure_window(s) if s else None
        windows = [Span(window.name, window.start, window.end)] if window else []
        vcd = out_dir / "vcd" / f"{_slug(sid)}.vcd"
        write_vcd(events, vcd, phases=phases, windows=windows, date=date,
                  comment=f"pstate-harness {sid}, written by: {command}")
        written.append(vcd)
        if sid in pictures:
            png = out_dir / "timelines" / f"{_slug(sid)}.png"
            start = (start_by_scenario or {}).get(sid, phases[0].start if phases else None)
            plot_timeline(events, png, title=sid, start=start, phases=phases, shade=windows)
            if png.exists():
                pngs[sid] = png
                written.append(png)
    md = out_dir / "report.md"
    md.write_text(_markdown(result, pngs, date))
    page = out_dir / "report.html"
    page.write_text(_html(result, pngs, date))
    result_json = out_dir / RESULT_JSON
    result_json.write_text(json.dumps(result, sort_keys=True, separators=(",", ":")) + "\n")
    files = [md, page, result_json, *written]
    (out_dir / MANIFEST).write_text(json.dumps(
        {"date": date, "command": command, "scenarios": len(result["scenarios"]),
         "files": sorted(str(p.relative_to(out_dir)) for p in files)}, indent=1) + "\n")
    return [*files, out_dir / MANIFEST]


def _clean(out_dir: Path) -> None:
    """Remove the previous run's files: those its run.json lists, and any picture or VCD."""
    old: list[Path] = []
    try:
        old = [out_dir / f for f in json.loads((out_dir / MANIFEST).read_text())["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    old += [*(out_dir / "timelines").glob("*.png"), *(out_dir / "vcd").glob("*.vcd")]
    for p in old:
        if p.resolve().is_relative_to(out_dir.resolve()) and p.is_file():
            p.unlink()


def _run_line(result: dict, date: str) -> str:
    h = result["harness"]
    return (f"Run {date}: `{h.get('command') or 'scenarios'}`, {len(result['scenarios'])} scenarios. "
            f"Fidelity: {h.get('fidelity') or 'no figure yet (make fidelity)'}. "
            f"Quirks: {', '.join(h.get('quirks') or []) or 'none (Arm rules)'}.")


# ---------------------------------------------------------------- Markdown

def _markdown(result: dict, pngs: dict[str, Path], date: str) -> str:
    lines = [f"# {TITLE}", "", f"**Answer.** {summary.answer(result)}", "", _run_line(result, date), "",
             "## Claims", "", "| id | role | verdict | conditions | summary |", "|---|---|---|---|---|"]
    for c in result["claims"]:
        lines.append(f"| {c['id']} | {c['role']} | **{c['verdict']}** | {'; '.join(c['conditions']) or '-'} | "
                     f"{c['summary']} |")
    lines += ["", "## Claims in detail", ""]
    for c in result["claims"]:
        lines += [f"### {c['id']} ({c['role']}): {c['verdict']}", "", c["claim"], ""]
        for e in c["evidence"][:12]:
            lines.append(f"- `{e['scenario']}` {'holds' if e['holds'] else 'fails'}: "
                         f"`{json.dumps(e['observed'], sort_keys=True)}`")
        if len(c["evidence"]) > 12:
            lines.append(f"- ... {len(c['evidence']) - 12} more in report.html")
        lines.append("")
    lines += ["## What the world switch does not give back (W2, per variant)", "", _W2_LEGEND, "",
              "| variant | leaking | field: before -> after (scenarios) |", "|---|---|---|"]
    lines += [f"| {x.variant} | {x.leaking}/{x.scenarios} | {summary.leak_text(x)} |"
              for x in summary.leaks_by_variant(result)]
    lines += ["", "## Variants", "", "| variant | applies to | models |", "|---|---|---|"]
    lines += [f"| {v['name']} | {v['applies_to'] or '-'} | {v['provenance']} |" for v in result.get("variants") or []]
    lines += ["", "## Where the variants differ", "", _variants_markdown(result), "",
              "## Every configuration under every variant", "", _comparison_markdown(result), "", "## Timelines", "",
              "Shaded: the kernel phases; hatched: the exposure window (EL2 with PAN=0 after the guest exit). "
              "Each scenario's VCD is in vcd/.", ""]
    for sid, png in pngs.items():
        lines.append(f"![{sid}](timelines/{png.name})")
    return "\n".join(lines) + "\n"


def _variants_markdown(result: dict) -> str:
    base, n, diffs = summary.variant_differences(result)
    if not diffs:
        return f"One variant ran ({base}, {n} configurations): nothing to compare."
    lines = [f"Against {base}, {n} configurations each.", "", "| variant | configurations | where | what changes |",
             "|---|---|---|---|"]
    for d in diffs:
        lines.append(f"| {d.variant} | {len(d.configs)} | {' or '.join(d.where) or 'nowhere'} | "
                     f"{summary.change_text(d.changes) or 'same outcomes as ' + str(base)} |")
    return "\n".join(lines)


def _comparison_markdown(result: dict) -> str:
    variants, rows = summary.matrix_rows(result)
    base = summary.baseline(variants)
    keys = summary.differing_outcomes(result)
    lines = ["| configuration | " + " | ".join(variants) + " |", "|---" * (len(variants) + 1) + "|"]
    for cid, cells in rows.items():
        ref = summary.cell(cells[base], keys) if base in cells else None
        out = []
        for v in variants:
            c = summary.cell(cells[v], keys) if v in cells else ""
            out.append(f"**{c}**" if c and ref is not None and c != ref else c)
        lines.append(f"| {cid} | " + " | ".join(out) + " |")
    return "\n".join(lines) + f"\n\n{summary.cell_legend(keys)}. Bold: differs from {base}."


# ---------------------------------------------------------------- HTML

def _html(result: dict, pngs: dict[str, Path], date: str) -> str:
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>pstate-harness report</title>"
             f"<link rel='icon' href='data:,'><style>{_CSS}</style></head><body>",
             f"<h1>{e(TITLE)}</h1>",
             f"<p class='answer' id='answer'><b>Answer.</b> {e(summary.answer(result))}</p>",
             f"<p class='run'>{e(_run_line(result, date))}</p>",
             "<nav><a href='#claims'>Claims</a> · <a href='#variants'>Where the variants differ</a> · "
             "<a href='#comparison'>Every configuration</a> · <a href='#scenarios'>Scenarios</a></nav>"]
    parts += _html_claims(result) + _html_leaks_and_variants(result)
    base, part = _html_differences(result)
    parts += part + _html_comparison(result, base) + _html_scenarios(result, pngs)
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_claims(result: dict) -> list[str]:
    """The claims table, then each claim's evidence in full (folded)."""
    e = html.escape
    parts = ["<h2>Claims</h2><table id='claims'><tr><th>id</th><th>role</th><th>claim</th><th>verdict</th>"
             "<th>conditions</th><th>evidence</th></tr>"]
    for c in result["claims"]:
        ev_links = ", ".join(f"<a href='#{_slug(x['scenario'])}'>{e(x['scenario'])}</a>"
                             f"{'' if x['holds'] else ' (fails)'}" for x in c["evidence"][:6])
        parts.append(f"<tr><td><a href='#claim-{e(c['id'])}'>{e(c['id'])}</a></td><td>{e(c['role'])}</td>"
                     f"<td>{e(c['claim'])}</td><td class='{e(c['verdict'])}'><b>{e(c['verdict'])}</b></td>"
                     f"<td>{e(' or '.join(c['conditions']))}</td><td>{e(c['summary'])}<br>{ev_links}</td></tr>")
    parts.append("</table>")
    for c in result["claims"]:
        parts.append(f"<details id='claim-{e(c['id'])}'><summary><b>{e(c['id'])}</b> {e(c['verdict'])}: "
                     f"{e(c['summary'])}</summary><table><tr><th>scenario</th><th>holds</th><th>observed</th></tr>")
        for x in c["evidence"]:
            parts.append(f"<tr><td><a href='#{_slug(x['scenario'])}'>{e(x['scenario'])}</a></td><td>{x['holds']}</td>"
                         f"<td><code>{e(json.dumps(x['observed'], sort_keys=True))}</code></td></tr>")
        parts.append("</table></details>")
    return parts


def _html_leaks_and_variants(result: dict) -> list[str]:
    """W2's leaks per variant, and what each variant models."""
    e = html.escape
    parts = []
    leaks = summary.leaks_by_variant(result)
    if leaks:
        parts.append(f"<h2>What the world switch does not give back (W2, per variant)</h2><p>{e(_W2_LEGEND)}</p>"
                     "<table id='w2'><tr><th>variant</th><th>leaking</th><th>field: before -&gt; after (scenarios)</th></tr>"
                     + "".join(f"<tr><td>{e(x.variant)}</td><td>{x.leaking}/{x.scenarios}</td>"
                               f"<td>{e(summary.leak_text(x))}</td></tr>" for x in leaks) + "</table>")
    if result.get("variants"):
        parts.append("<h2>Variants</h2><table id='provenance'><tr><th>variant</th><th>applies to</th><th>models</th></tr>"
                     + "".join(f"<tr><td>{e(v['name'])}</td><td>{e(v['applies_to'] or '-')}</td>"
                               f"<td>{e(v['provenance'])}</td></tr>" for v in result["variants"]) + "</table>")
    return parts


def _html_differences(result: dict) -> tuple[str | None, list[str]]:
    """(the baseline variant, where the variants differ from it, per variant)."""
    e = html.escape
    base, n, diffs = summary.variant_differences(result)
    parts = ["<h2>Where the variants differ</h2>"]
    if not diffs:
        parts.append(f"<p>One variant ran ({e(str(base))}, {n} configurations): nothing to compare.</p>")
    parts.append(f"<table id='variants'><caption>against {e(str(base))}, "
                 f"{n} configurations each</caption><tr><th>variant</th><th>configurations</th><th>where</th>"
                 "<th>what changes</th></tr>")
    for d in diffs:
        parts.append(f"<tr><td>{e(d.variant)}</td><td>{len(d.configs)}</td><td>{e(' or '.join(d.where) or 'nowhere')}"
                     f"</td><td>{e(summary.change_text(d.changes) or 'same outcomes as ' + str(base))}</td></tr>")
    parts.append("</table>")
    return base, parts


def _html_comparison(result: dict, base: str | None) -> list[str]:
    """Every configuration under every variant, the cells that differ from `base` highlighted."""
    e = html.escape
    variants, rows = summary.matrix_rows(result)
    keys = summary.differing_outcomes(result)
    parts = ["<h2>Every configuration under every variant</h2><table id='comparison'><tr><th>configuration</th>"
             + "".join(f"<th>{e(v)}</th>" for v in variants) + "</tr>"]
    for cid, cells in rows.items():
        ref = summary.cell(cells[base], keys) if base in cells else None
        tds = []
        for v in variants:
            if v not in cells:
                tds.append("<td></td>")
                continue
            c = summary.cell(cells[v], keys)
            cls = " class='diff'" if ref is not None and c != ref else ""
            tds.append(f"<td{cls}><a href='#{_slug(cells[v]['id'])}'>{e(c)}</a></td>")
        parts.append(f"<tr><td>{e(cid)}</td>{''.join(tds)}</tr>")
    parts.append(f"</table><p>{e(summary.cell_legend(keys))}. Highlighted: differs from {e(str(base))}.</p>")
    return parts


def _html_scenarios(result: dict, pngs: dict[str, Path]) -> list[str]:
    """Each scenario, folded; those with a timeline open, with the picture and their observations."""
    e = html.escape
    parts = [f"<h2 id='scenarios'>Scenarios</h2><p>Timelines: the kernel phases shaded, the exposure window "
             f"(EL2 with PAN=0 after the guest exit) hatched. Each VCD opens in GTKWave. Every observation of "
             f"every scenario: <a href='{RESULT_JSON}'>{RESULT_JSON}</a> (as <code>--json</code> prints it); "
             f"here in full for the scenarios with a timeline.</p>"]
    for s in result["scenarios"]:
        sid = s["id"]
        img = obs = ""
        if sid in pngs:
            data = base64.b64encode(pngs[sid].read_bytes()).decode()
            img = f"<img alt='{e(sid)} timeline' src='data:image/png;base64,{data}'>"
            obs = f"<pre>{e(json.dumps(s['observations'], indent=1, sort_keys=True))}</pre>"
        outs = ", ".join(f"{k} {v}" for k, v in summary.outcomes(s).items())
        parts.append(f"<details id='{e(_slug(sid))}'{' open' if img else ''}><summary>{e(sid)}: {e(s['status'])}, "
                     f"{s['icount']} instructions</summary>{img}<p>{e(outs)}. <a class='vcd' "
                     f"href='vcd/{e(_slug(sid))}.vcd'>VCD</a></p>{obs}</details>")
    return parts
