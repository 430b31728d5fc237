"""reports/explore.html: the points table, the invariants with their evidence and replay commands,
and one strip per scenario along the instruction-count axis: for each kind, where it is masked or
taken (and what became of the run), and below it where an invariant broke. Self-contained (inline
CSS and SVG; hover a segment for its record)."""

from __future__ import annotations

import html
from pathlib import Path

from harness.arch.pstate import PState

_CSS = """body{font-family:sans-serif;margin:2em;max-width:110em}table{border-collapse:collapse;font-size:90%}
td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}th{background:#eee}.holds{color:#060}
.fails{color:#a00}.conditional{color:#a60}code{font-size:85%}.bad{color:#a00;font-weight:bold}
.legend span{display:inline-block;width:1.2em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}
svg text{font-size:10px;font-family:sans-serif}h3{margin:1.2em 0 .2em;font-size:100%}"""

# Fill of a segment by what happened to its interrupt.
CLASSES = {
    "returned": ("#2a9d5c", "taken, returned to the interrupted instruction"),
    "exit": ("#8fd0a6", "taken from the guest: a guest exit (the guest is not resumed in one KVM_RUN)"),
    "panic": ("#e9a23b", "taken, the run ends in panic/hyp_panic"),
    "later": ("#8d99a6", "masked, taken later"),
    "never": ("#d5dae0", "masked, never taken before power-off"),
    "other": ("#222222", "the run ends in a loop, a stop or an unexpected vector"),
}
_W, _ROW, _GAP = 1100, 12, 5


def segment_class(seg: dict) -> str:
    if seg["end"] not in ("poweroff", "panic", "hyp_panic"):
        return "other"
    if seg["outcome"] == "masked" and seg["taken_at"] is None:
        return "never"
    if seg["end"] != "poweroff":
        return "panic"
    if seg["outcome"] == "masked":
        return "later"
    return "returned" if seg["returned"] else "exit"


def write_explore_report(result: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "explore.html"
    page.write_text(render(result))
    return page


def render(result: dict) -> str:
    e = html.escape
    h = result["harness"]
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>pstate-harness explore</title>"
             f"<style>{_CSS}</style></head><body><h1>Asynchronous exceptions at every instruction boundary of the "
             "world switch</h1>",
             f"<p>{h['scenarios']} scenarios; kinds {e(', '.join(h['kinds']))}; each point is one interrupt made "
             "pending at one boundary (instruction count N: before instruction N+1), run to power-off or to a "
             "function that never returns. Virtual interrupts: "
             f"{e(h['virtual_interrupts'] if isinstance(h['virtual_interrupts'], str) else ', '.join(h['virtual_interrupts']))}.</p>",
             _table(result), _invariants(result), "<h2>Strips</h2>", _legend()]
    for r in result["scenarios"]:
        parts.append(_strip(r))
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(result: dict) -> str:
    ids = list(result["table"][0]["violations"]) if result["table"] else []
    rows = ["<h2>Points per variant</h2><table><tr><th>variant</th><th>kind</th><th>scenarios</th><th>points</th>"
            "<th>masked</th><th>taken</th><th>never taken</th>" + "".join(f"<th>{i}</th>" for i in ids) + "</tr>"]
    for row in result["table"]:
        b = ("<b>", "</b>") if row["kind"] == "all" else ("", "")
        cells = [row["variant"], row["kind"], row["scenarios"], row["points"], row["masked"], row["taken"],
                 row["never_taken"]]
        rows.append("<tr>" + "".join(f"<td>{b[0]}{html.escape(str(c))}{b[1]}</td>" for c in cells)
                    + "".join(f"<td class='{'bad' if v else ''}'>{v}</td>" for v in row["violations"].values()) + "</tr>")
    return "\n".join(rows) + "</table>"


def _invariants(result: dict) -> str:
    e = html.escape
    parts = ["<h2>Invariants</h2><table><tr><th>id</th><th>invariant</th><th>verdict</th><th>violated when</th>"
             "<th>evidence</th></tr>"]
    for x in result["invariants"]:
        ex = "".join(f"<li>excluded {n:,}: {e(why)}</li>" for why, n in x["excluded"].items())
        parts.append(f"<tr><td><a href='#{x['id']}'>{x['id']}</a></td><td>{e(x['statement'])}</td>"
                     f"<td class='{x['verdict']}'><b>{x['verdict']}</b></td><td>{e(' or '.join(x['violated_when']))}</td>"
                     f"<td>{e(x['summary'])}<ul>{ex}</ul></td></tr>")
    parts.append("</table>")
    for x in result["invariants"]:
        if not x["examples"]:
            continue
        parts.append(f"<details id='{x['id']}'><summary><b>{x['id']}</b>: {len(x['examples'])} smallest examples "
                     "(per variant, VHE or not, kind and phase)</summary><table><tr><th>variant</th><th>configuration</th>"
                     "<th>kind</th><th>phase</th><th>icount</th><th>where</th><th>observed</th><th>replay</th></tr>")
        for ex in x["examples"]:
            obs = ", ".join(f"{k}={v}" for k, v in ex["observed"].items())
            parts.append(f"<tr><td>{e(ex['variant'])}</td><td><a href='#{_slug(ex['variant'], ex['config'])}'>"
                         f"{e(ex['config'])}</a></td><td>{ex['kind']}</td><td>{ex['phase']}</td><td>{ex['icount']}</td>"
                         f"<td>{e(ex['at'])}<br><code>{e(ex['src'])}</code></td><td>{e(obs)}</td>"
                         f"<td><code>{e(ex['replay'])}</code></td></tr>")
        parts.append("</table></details>")
    return "\n".join(parts)


def _legend() -> str:
    items = "".join(f"<span style='background:{c}'></span>{html.escape(t)}" for c, t in CLASSES.values())
    return (f"<p class='legend'>{items}<span style='background:#c00'></span>an invariant broke (the thin row under "
            "each kind). Vertical lines: the guest's first instruction, its exit, __guest_exit's SError window.</p>")


def _slug(variant: str, config: str) -> str:
    return f"s-{variant}-{config}".replace("/", "_").replace(".", "_")


def _strip(r: dict) -> str:
    e = html.escape
    a, b = r["range"]
    span = max(b - a + 1, 1)
    left = 60
    scale = (_W - left - 10) / span
    kinds = list(r["kinds"])
    height = 16 + len(kinds) * (_ROW + 4 + _GAP) + 4
    out = [f"<h3 id='{_slug(r['variant'], r['config_id'])}'>{e(r['id'])} (instructions {a:,} to {b:,})</h3>",
           f"<svg width='{_W}' height='{height}' xmlns='http://www.w3.org/2000/svg'>"]
    w = r["window"] or {}
    # the guest's label left of its line, the others right of theirs: they are often close
    for name, n, anchor in (("guest", w.get("guest"), "end"), ("exit", w.get("exit"), "start"),
                            ("window", w.get("start"), "start")):
        if n is not None and a <= n <= b:
            x = left + (n - a) * scale
            tx = x - 2 if anchor == "end" else x + 2
            out.append(f"<line x1='{x:.1f}' y1='10' x2='{x:.1f}' y2='{height}' stroke='#36c' stroke-dasharray='2,2'/>"
                       f"<text x='{tx:.1f}' y='9' fill='#36c' text-anchor='{anchor}'>{name} {n}</text>")
    for i, kind in enumerate(kinds):
        y = 16 + i * (_ROW + 4 + _GAP)
        out.append(f"<text x='0' y='{y + _ROW - 2}'>{kind}</text>")
        for seg in _merged(r["kinds"][kind]):
            x = left + (seg["n"][0] - a) * scale
            wd = max((seg["n"][1] - seg["n"][0] + 1) * scale, 0.6)
            color = CLASSES[seg["cls"]][0]
            out.append(f"<rect x='{x:.1f}' y='{y}' width='{wd:.2f}' height='{_ROW}' fill='{color}'>"
                       f"<title>{e(seg['title'])}</title></rect>")
            if seg["bad"]:
                out.append(f"<rect x='{x:.1f}' y='{y + _ROW + 1}' width='{wd:.2f}' height='3' fill='#c00'>"
                           f"<title>{e(kind)} {seg['n'][0]}-{seg['n'][1]}: {e(', '.join(seg['bad']))} violated"
                           f"</title></rect>")
    out.append("</svg>")
    return "".join(out)


def _merged(segs: list[dict]) -> list[dict]:
    """Adjacent segments with the same class and broken invariants, drawn as one rectangle."""
    out: list[dict] = []
    for seg in segs:
        cls = segment_class(seg)
        bad = sorted(x for x, s in seg["x"].items() if s == "violated")
        line = _describe(seg)
        if out and out[-1]["cls"] == cls and out[-1]["bad"] == bad and out[-1]["n"][1] == seg["n"][0] - 1:
            out[-1]["n"][1] = seg["n"][1]
            if out[-1]["lines"] < 6:
                out[-1]["title"] += "\n" + line
            out[-1]["lines"] += 1
        else:
            out.append({"n": list(seg["n"]), "cls": cls, "bad": bad, "title": line, "lines": 1})
    for m in out:
        if m["lines"] > 6:
            m["title"] += f"\n... {m['lines'] - 6} more segments"
    return out


def _describe(seg: dict) -> str:
    n = f"{seg['n'][0]}" if seg["n"][0] == seg["n"][1] else f"{seg['n'][0]}-{seg['n'][1]}"
    text = f"{n} {seg['at']}: {seg['outcome']}"
    if seg["taken_at"] is not None:
        if seg["outcome"] == "masked":
            text += f", taken at {seg['taken_at']} {seg['taken_where']}"
        text += f" -> EL{seg['to_el']} {seg['vector']}"
        if seg["before"] is not None:
            text += f" (PSTATE {PState.from_bits(seg['before']).describe()} -> {PState.from_bits(seg['after']).describe()})"
        text += ", returned" if seg["returned"] else ""
        if seg["differs"]:
            text += f" with {seg['differs']}"
    text += f"; end {seg['end']}" + (f" {seg['end_where']}" if seg["end_where"] else "")
    if seg["exit_code"] is not None:
        text += f", exit code {seg['exit_code']:#x}"
    return text
