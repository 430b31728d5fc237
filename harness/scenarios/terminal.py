"""The `scenarios` command's terminal output: the answer, the claims with one piece of evidence
each, and a per-variant summary of where the variants differ; with --details, what each variant
models and the full comparison with a short unique label per configuration and a legend.

It fits the terminal: rich folds long text instead of cutting it (no ellipsis anywhere), the
width comes from the terminal or COLUMNS (80 when neither says), and NO_COLOR or output to a
pipe gives plain text (rich's own rules). Cells that differ from the baseline carry a `*`,
so the highlight survives without colour."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.scenarios import summary

_STYLE = {"holds": "green", "fails": "red", "conditional": "yellow", "undecided": "dim"}


def print_result(con: Console, result: dict, *, details: bool = False, reports: Path | None = None) -> None:
    h = result["harness"]
    n = len(result["scenarios"])
    fid = h.get("fidelity")
    con.print(f"[bold]pstate-harness[/bold]: {n} scenarios in {h.get('seconds', 0):.2f} s; board "
              + escape(fid if fid else "fidelity not measured yet (make fidelity)")
              + (f"; architecture quirks: {', '.join(h['quirks'])}" if h.get("quirks") else ""))
    con.print(escape(summary.answer(result, brief=True)))
    if result.get("variants"):
        con.print(provenance_table(result) if details else variant_lines(result))
    con.print(claims_table(result))
    if summary.matrix_rows(result)[1]:   # user scenarios alone have nothing to compare
        if summary.leaks_by_variant(result):
            con.print(leaks_table(result))
        con.print(variants_table(result))
        if details:
            for part in comparison_tables(result, con.width):
                con.print(part)
    if result.get("user"):
        con.print(user_table(result))
    if not details:
        con.print("--details adds what each variant models and every configuration under every variant.")
    if reports:
        con.print(f"reports: {reports} (and report.md, timelines/, vcd/, scenarios.json: all of it)")


def _fold(table: Table) -> Table:
    for c in table.columns:
        c.overflow = "fold"
    return table


def provenance_table(result: dict) -> Table:
    t = Table(title="Variants (asm/variants/*.diff; what each models)", box=box.SQUARE, title_justify="left")
    t.add_column("variant", no_wrap=True)
    t.add_column("applies to", no_wrap=True)
    t.add_column("models")
    for v in result["variants"]:
        t.add_row(escape(v["name"]), escape(v["applies_to"] or "-"), escape(v["provenance"]))
    return _fold(t)


def variant_lines(result: dict) -> Table:
    """One line per variant: name, the release and commits it models, faithful or what-if."""
    t = Table(title="Variants (--details: what each models)", box=None, title_justify="left", pad_edge=False)
    for col in ("variant", "upstream", "kind"):
        t.add_column(col, no_wrap=col != "upstream", style="dim" if col == "kind" else None)
    for v in result["variants"]:
        t.add_row(escape(v["name"]), escape(v.get("upstream", "")), escape(v.get("kind", "")))
    return _fold(t)


def claims_table(result: dict) -> Table:
    t = Table(title="Claims of the review", box=box.SQUARE, show_lines=True, title_justify="left")
    t.add_column("id", no_wrap=True)
    t.add_column("verdict", no_wrap=True)
    t.add_column("claim, and one scenario that decides it")
    for c in result["claims"]:
        ev = c["evidence"]
        held = sum(1 for x in ev if x["holds"])
        count = f"{held}/{len(ev)} hold" if ev else ""
        text = f"{escape(c['claim'])} [dim]({c['role']})[/]"
        if c["verdict"] == "conditional":
            text += "\n[yellow]holds when[/] " + escape(" or when ".join(c["conditions"]))
        x = _pick(c)
        if x is not None:
            mark = "[green]✓ holds[/]" if x["holds"] else "[red]✗ fails[/]"
            text += f"\n{mark} in {escape(x['scenario'])}: " + escape(_observed(x["observed"]))
        t.add_row(c["id"], f"[{_STYLE[c['verdict']]}]{c['verdict']}[/]\n{count}", text)
    return _fold(t)


def _pick(c: dict) -> dict | None:
    """The one piece of evidence shown: a counter-example where the claim does not hold
    everywhere, else the first scenario that decides it."""
    ev = c["evidence"]
    if c["verdict"] in ("fails", "conditional"):
        return next((x for x in ev if not x["holds"]), None)
    return ev[0] if ev else None


def _observed(obs: dict) -> str:
    """key=value, ...; a long list shows its first two items and how many more the reports have."""
    def show(v: object) -> str:
        if isinstance(v, dict):
            return "{" + "; ".join(f"{k}: {show(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            more = f"; +{len(v) - 2} more" if len(v) > 2 else ""
            return "[" + "; ".join(map(show, v[:2])) + more + "]"
        return str(v)

    return ", ".join(f"{k}={show(v)}" for k, v in obs.items())


def leaks_table(result: dict) -> Table:
    """W2 per variant: which PSTATE fields the host does not get back, in how many scenarios."""
    t = Table(title="What the world switch does not give back to the host (W2, per variant)", box=box.SQUARE,
              title_justify="left", expand=True)
    t.add_column("variant", no_wrap=True)
    t.add_column("leaking", justify="right", no_wrap=True)
    t.add_column("field: before -> after (scenarios)", ratio=3)
    for x in summary.leaks_by_variant(result):
        t.add_row(escape(x.variant), f"{x.leaking}/{x.scenarios}", escape(summary.leak_text(x)))
    return _fold(t)


def variants_table(result: dict) -> Table | str:
    base, n, diffs = summary.variant_differences(result)
    if not diffs:
        return escape(f"One variant ran ({base}, {n} configurations): nothing to compare; "
                      "--details lists its outcomes per configuration.")
    t = Table(title=f"Where the variants differ from {base} ({n} configurations each)", box=box.SQUARE,
              title_justify="left", expand=True)
    t.add_column("variant", no_wrap=True)
    t.add_column("configs", justify="right", no_wrap=True)
    t.add_column("where", ratio=2)
    t.add_column(f"what changes ({base} -> variant)", ratio=3)
    last = None
    for d in diffs:
        name = d.variant if d.variant != last else ""
        last = d.variant
        if not d.changes:
            t.add_row(name, "0", "nowhere", f"same outcomes as {base}")
        else:
            t.add_row(name, str(len(d.configs)), escape("\nor ".join(d.where)), escape(summary.change_text(d.changes)))
    return _fold(t)


def comparison_tables(result: dict, width: int = 80) -> list:
    """The full comparison: one row per configuration (short label), one column per variant,
    cells from the outcomes that differ between variants somewhere; as many tables as the
    width needs (each repeats the labels and the baseline's column); then the legends."""
    variants, rows = summary.matrix_rows(result)
    base = summary.baseline(variants)
    keys = summary.differing_outcomes(result)
    configs = [summary.axes_of(next(iter(cells.values()))) for cells in rows.values()]
    labels, legend = summary.short_labels(configs)
    text: dict[str, list[str]] = {}
    for v in variants:
        col = []
        for cells in rows.values():
            ref = summary.cell(cells[base], keys) if base in cells else None
            c = summary.cell(cells[v], keys) if v in cells else ""
            col.append(f"{c}*" if c and ref is not None and c != ref else c)
        text[v] = col
    heads = {v: v.replace("-", "-\n") for v in variants}   # long names split at their hyphens, never cut
    col_w = {v: max([len(x) for x in text[v]] + [len(x) for x in heads[v].splitlines()]) for v in variants}
    label_w = max([len(x) for x in labels] + [len("configuration")])
    chunks: list[list[str]] = []
    for v in variants:
        if v == base and chunks:
            continue
        cur = chunks[-1] if chunks else None
        if cur is None or label_w + sum(col_w[x] + 1 for x in [*cur, v]) > width:
            cur = [base] if base is not None and v != base else []
            chunks.append(cur)
        cur.append(v)
    out: list = [f"[italic]Every configuration under every variant (* differs from {escape(str(base))})[/]"]
    for chunk in chunks:
        t = Table(box=box.SIMPLE_HEAD, padding=(0, 0), show_edge=False)
        t.add_column("configuration", no_wrap=True, min_width=label_w)
        for v in chunk:
            t.add_column(heads[v], no_wrap=True, min_width=col_w[v])
        for r, label in enumerate(labels):
            t.add_row(label, *[f"[bold yellow]{escape(text[v][r])}[/]" if text[v][r].endswith("*")
                               else escape(text[v][r]) for v in chunk])
        out.append(t)
    return [*out, escape(f"rows: {legend}"), escape(summary.cell_legend(keys))]


def user_table(result: dict) -> Table:
    t = Table(title="Your scenarios (TOML)", box=box.SQUARE, title_justify="left")
    t.add_column("scenario", ratio=1)
    t.add_column("expectations", ratio=1)
    for x in result["user"]:
        if x["status"] != "poweroff":
            exp = f"[red]stopped: {escape(x['status'])}[/]"
        elif not x["expect"]:
            exp = "none"
        elif x["met"]:
            exp = "[green]met[/]: " + escape(", ".join(f"{p} {w}" for p, w in x["expect"].items()))
        else:
            exp = "[red]not met[/]: " + escape(", ".join(f"{p} {x['observed'][p]} (expected {w})"
                                                         for p, w in x["expect"].items() if x["observed"][p] != w))
        t.add_row(escape(x["id"]), exp)
    return _fold(t)
