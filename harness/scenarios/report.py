"""reports/: report.md and a self-contained report.html (CSS inline, pictures as data URIs),
timelines/<scenario>.png for the scenarios that decide claims, vcd/<scenario>.vcd for all."""

from __future__ import annotations

import base64
import errno
import html
import json
import tempfile
from pathlib import Path

from harness.trace import events as ev
from harness.trace.plot import plot_timeline
from harness.trace.vcd import write_vcd

_CSS = """body{font-family:sans-serif;margin:2em;max-width:90em}table{border-collapse:collapse;font-size:90%}
td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}th{background:#eee}.holds{color:#060}
.fails{color:#a00}.conditional{color:#a60}.diff{background:#ffd}code,pre{font-size:85%}img{max-width:100%}"""


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
    """Write the reports; `pictures` are the scenario ids that get a timeline PNG."""
    prepare_reports_dir(out_dir)
    written: list[Path] = []
    starts = start_by_scenario or {}
    pngs: dict[str, Path] = {}
    for sid, events in events_by_scenario.items():
        vcd = out_dir / "vcd" / f"{_slug(sid)}.vcd"
        write_vcd(events, vcd)
        written.append(vcd)
        if sid in pictures:
            png = out_dir / "timelines" / f"{_slug(sid)}.png"
            plot_timeline(events, png, title=sid, start=starts.get(sid))
            pngs[sid] = png
            written.append(png)
    md = out_dir / "report.md"
    md.write_text(_markdown(result, pngs))
    page = out_dir / "report.html"
    page.write_text(_html(result, pngs))
    return [md, page, *written]


def _markdown(result: dict, pngs: dict[str, Path]) -> str:
    h = result["harness"]
    lines = ["# pstate-harness: the 2017 UAO/PAN review, decided by running the world switch", "",
             f"Fidelity: {h.get('fidelity') or 'no figure yet (make fidelity)'}. "
             f"Quirks: {', '.join(h.get('quirks') or []) or 'none (Arm rules)'}.", "",
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
    lines += ["## Variant comparison", "", comparison_markdown(result), "", "## Timelines", ""]
    for sid, png in pngs.items():
        lines.append(f"![{sid}](timelines/{png.name})")
    return "\n".join(lines) + "\n"


def comparison(result: dict) -> tuple[list[str], list[tuple[str, dict[str, str], set[str]]]]:
    """(variants, rows): per configuration, each variant's probe cell and the variants whose
    cell differs from v4.13's."""
    variants: list[str] = []
    rows: dict[str, dict[str, str]] = {}
    for s in result["scenarios"]:
        if s["config"].get("name"):
            continue
        if s["variant"] not in variants:
            variants.append(s["variant"])
        rows.setdefault(s["config_id"], {})[s["variant"]] = cell(s)
    out = []
    for cid, cells in rows.items():
        base = cells.get("v4.13")
        out.append((cid, cells, {v for v, c in cells.items() if base is not None and c != base}))
    return variants, out


def cell(s: dict) -> str:
    """A scenario's outcomes in a few characters: host probes after the return (plain LDR of a
    user page, USER_DS uaccess, KERNEL_DS uaccess), the window probe, PAN/UAO after return."""
    if s["status"] != "poweroff":
        return f"RUN {s['status']}"
    o = s["observations"]
    mark = {"ok": "ok", "fault": "F", "not_run": "-"}
    p = o["probes"]
    after = o["points"].get("host_after_call", {})
    return (f"L{mark[p['probe_ldr_user']['outcome']]} U{mark[p['probe_uaccess_user']['outcome']]} "
            f"K{mark[p['probe_uaccess_kernel']['outcome']]} W{mark[p['probe_window_ldr']['outcome']]} "
            f"P{after.get('pan', '?')}U{after.get('uao', '?')}")


def comparison_markdown(result: dict) -> str:
    variants, rows = comparison(result)
    lines = ["| configuration | " + " | ".join(variants) + " |", "|---" * (len(variants) + 1) + "|"]
    for cid, cells, diff in rows:
        lines.append(f"| {cid} | " + " | ".join(
            (f"**{cells.get(v, '')}**" if v in diff else cells.get(v, "")) for v in variants) + " |")
    return "\n".join(lines) + "\n\nL: plain LDR of a user page, U: USER_DS uaccess, K: KERNEL_DS uaccess, " \
        "W: LDR of a user page in the exposure window (ok/F fault/- not run); P/U: PAN/UAO after the return. " \
        "Bold: differs from v4.13."


def _html(result: dict, pngs: dict[str, Path]) -> str:
    e = html.escape
    h = result["harness"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>pstate-harness report</title>"
             f"<style>{_CSS}</style></head><body>",
             "<h1>pstate-harness: the 2017 UAO/PAN review, decided by running the world switch</h1>",
             f"<p>Fidelity: {e(h.get('fidelity') or 'no figure yet (make fidelity)')}. Quirks: "
             f"{e(', '.join(h.get('quirks') or []) or 'none (Arm rules)')}.</p>",
             "<h2>Claims</h2><table><tr><th>id</th><th>role</th><th>claim</th><th>verdict</th><th>conditions</th>"
             "<th>evidence</th></tr>"]
    for c in result["claims"]:
        ev_links = ", ".join(f"<a href='#{_slug(x['scenario'])}'>{e(x['scenario'])}</a>"
                             f"{'' if x['holds'] else ' (fails)'}" for x in c["evidence"][:6])
        parts.append(f"<tr><td><a href='#claim-{c['id']}'>{c['id']}</a></td><td>{c['role']}</td><td>{e(c['claim'])}</td>"
                     f"<td class='{c['verdict']}'><b>{c['verdict']}</b></td><td>{e('; '.join(c['conditions']))}</td>"
                     f"<td>{e(c['summary'])}<br>{ev_links}</td></tr>")
    parts.append("</table>")
    for c in result["claims"]:
        parts.append(f"<details id='claim-{c['id']}'><summary><b>{c['id']}</b> {c['verdict']}: "
                     f"{e(c['summary'])}</summary><table><tr><th>scenario</th><th>holds</th><th>observed</th></tr>")
        for x in c["evidence"]:
            parts.append(f"<tr><td><a href='#{_slug(x['scenario'])}'>{e(x['scenario'])}</a></td><td>{x['holds']}</td>"
                         f"<td><code>{e(json.dumps(x['observed'], sort_keys=True))}</code></td></tr>")
        parts.append("</table></details>")
    variants, rows = comparison(result)
    parts.append("<h2>Variant comparison</h2><table><tr><th>configuration</th>"
                 + "".join(f"<th>{e(v)}</th>" for v in variants) + "</tr>")
    for cid, cells, diff in rows:
        parts.append(f"<tr><td>{e(cid)}</td>" + "".join(
            f"<td class='{'diff' if v in diff else ''}'>{e(cells.get(v, ''))}</td>" for v in variants) + "</tr>")
    parts.append("</table><p>L: plain LDR of a user page, U: USER_DS uaccess, K: KERNEL_DS uaccess, W: LDR of a "
                 "user page in the exposure window (ok / F fault / - not run); P/U: PAN/UAO after the return. "
                 "Highlighted: differs from v4.13.</p><h2>Scenarios</h2>")
    for s in result["scenarios"]:
        sid = s["id"]
        img = ""
        if sid in pngs:
            data = base64.b64encode(pngs[sid].read_bytes()).decode()
            img = f"<img alt='{e(sid)} timeline' src='data:image/png;base64,{data}'>"
        parts.append(f"<details id='{_slug(sid)}'{' open' if img else ''}><summary>{e(sid)}: {e(s['status'])}, "
                     f"{s['icount']} instructions</summary>{img}<p><a href='vcd/{_slug(sid)}.vcd'>VCD</a></p>"
                     f"<pre>{e(json.dumps(s['observations'], indent=1, sort_keys=True))}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)
