"""`python -m harness explore`: an IRQ, FIQ or SError at every instruction boundary of the world
switch of each selected scenario; the points table per variant, the invariants' verdicts with
evidence and replay commands, reports/explore.html."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.cli import ArgumentParser, jobs_arg  # ArgumentParser: one-line usage errors, exit 2
from harness.data import REPORTS_DIR
from harness.scenarios.catalog import SelectionError, add_selection_arguments, selection_of
from harness.scenarios.explore import KINDS, explore_all
from harness.scenarios.invariants import INVARIANTS, evaluate
from harness.scenarios.runner import ScenarioError, default_jobs
from harness.scenarios.scenario import Scenario
from harness.scenarios.user import UserFileError

EXIT_OK, EXIT_HARNESS, EXIT_BAD_INPUT = 0, 1, 2


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip().lower() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"{text!r}: choose among {','.join(KINDS)}")
    return tuple(k for k in KINDS if k in kinds)


def _parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(
        prog="python -m harness explore",
        description="Inject an IRQ, FIQ or SError at every instruction boundary of the world switch, run each "
                    "to the end, and check the invariants.")
    add_selection_arguments(ap)
    ap.add_argument("--kinds", type=_kinds, default=KINDS, metavar="irq,fiq,serror",
                    help="which interrupts to inject (default: all three)")
    ap.add_argument("-j", "--jobs", type=jobs_arg, default=None, metavar="N",
                    help="worker processes (default: the number of cores); the result does not depend on it")
    ap.add_argument("--json", action="store_true", help="print everything as JSON (no tables)")
    ap.add_argument("--reports", metavar="DIR", type=Path, default=REPORTS_DIR,
                    help="where to write explore.html (default reports/)")
    ap.add_argument("--no-reports", action="store_true", help="do not write the HTML report")
    return ap


def summarize(results: list[dict], verdicts: list[dict], kinds: tuple[str, ...], quirks: tuple[str, ...] = ()) -> dict:
    """The whole result: the points table, the verdicts and every scenario's segments."""
    table = []
    for variant in dict.fromkeys(r["variant"] for r in results):
        mine = [r for r in results if r["variant"] == variant]
        for kind in kinds + ("all",):
            row = {"variant": variant, "kind": kind, "scenarios": len(mine), "points": 0, "masked": 0, "taken": 0,
                   "never_taken": 0, "violations": {inv.id: 0 for inv in INVARIANTS}}
            for r in mine:
                for k, segs in r["kinds"].items():
                    if kind not in ("all", k):
                        continue
                    for seg in segs:
                        n = seg["n"][1] - seg["n"][0] + 1
                        row["points"] += n
                        row[seg["outcome"]] += n
                        row["never_taken"] += n if seg["taken_at"] is None else 0
                        for x, status in seg["x"].items():
                            row["violations"][x] += n if status == "violated" else 0
            table.append(row)
    virtual = sorted({r["id"] for r in results if r["virtual_interrupts_at"]})
    return {"harness": {"kinds": list(kinds), "quirks": list(quirks), "scenarios": len(results),
                        "virtual_interrupts": virtual or "HCR_EL2.VI/VF/VSE are never set at any boundary"},
            "table": table, "invariants": verdicts, "scenarios": results}


# --json: each scenario's segments as rows of these columns (README, "explore --json")
COLUMNS = ("n_first", "n_last", "at", "el", "phase", "outcome", "rule_target_el", "rule_masked", "ran_at", "taken_at",
           "taken_where", "to_el", "vector", "before", "after", "returned", "differs", "end", "end_where",
           "exit_code", "x", "note", "x_why")


def json_document(result: dict) -> dict:
    """`result` (summarize's) as --json prints it, losing nothing: a segment is a row of COLUMNS,
    its `x` (verdict per invariant) an index into `x_sets`; the label -> file:line map is kept
    once per image under `src`, and a scenario's `src` names its image ("variant/cpu")."""
    x_sets: dict[str, int] = {}
    src: dict[str, dict[str, str]] = {}
    scenarios = []
    for r in result["scenarios"]:
        image = f"{r['variant']}/{r['axes']['cpu']}"
        src.setdefault(image, {}).update(r["src"])
        kinds = {}
        for kind, segs in r["kinds"].items():
            rows = []
            for seg in segs:
                x = json.dumps(seg["x"], sort_keys=True)
                row = {**seg, "n_first": seg["n"][0], "n_last": seg["n"][1], "rule_target_el": seg["rule"]["target_el"],
                       "rule_masked": seg["rule"]["masked"], "x": x_sets.setdefault(x, len(x_sets))}
                rows.append([row.get(c) for c in COLUMNS])
            kinds[kind] = rows
        scenarios.append({**r, "kinds": kinds, "src": image})
    return {**result, "scenarios": scenarios, "columns": list(COLUMNS),
            "x_sets": [json.loads(x) for x in x_sets], "src": {k: dict(sorted(v.items())) for k, v in src.items()}}


def segments_of(doc: dict, scenario: dict) -> dict[str, list[dict]]:
    """A --json document's scenario's segments, per kind, as dicts again (the reader of COLUMNS)."""
    out = {}
    for kind, rows in scenario["kinds"].items():
        segs = []
        for row in rows:
            d = dict(zip(doc["columns"], row, strict=True))
            seg = {"n": [d.pop("n_first"), d.pop("n_last")],
                   "rule": {"target_el": d.pop("rule_target_el"), "masked": d.pop("rule_masked")}}
            seg.update(d, x=doc["x_sets"][d["x"]])
            segs.append({k: v for k, v in seg.items() if v is not None or k not in ("note", "x_why")})
        out[kind] = segs
    return out


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    err = Console(stderr=True)
    try:
        _, scenarios = selection_of(args)
    except (UserFileError, SelectionError) as e:
        print(str(e), file=sys.stderr)
        return EXIT_BAD_INPUT
    jobs = args.jobs or default_jobs()
    t0 = time.perf_counter()
    try:
        results = _run(scenarios, args.kinds, tuple(args.arch_quirk), jobs, show=not args.json and err.is_terminal)
    except ScenarioError as e:
        print(str(e), file=sys.stderr)
        return EXIT_HARNESS
    seconds = time.perf_counter() - t0
    result = summarize(results, evaluate(results), args.kinds, tuple(args.arch_quirk))
    report = None
    if not args.no_reports:
        from harness.scenarios.explore_report import write_explore_report

        try:
            report = write_explore_report(result, args.reports)
        except OSError as e:
            print(f"{args.reports}: cannot write the report: {e.strerror}", file=sys.stderr)
    if args.json:
        # compact: a full run has some 10^5 segments (pipe it through jq to read it)
        print(json.dumps(json_document(result), sort_keys=True, separators=(",", ":")))
    else:
        _print(Console(width=None if sys.stdout.isatty() else 170), result, seconds, jobs, report)
    return EXIT_OK


def _run(scenarios: list[Scenario], kinds: tuple[str, ...], quirks: tuple[str, ...], jobs: int, *,
         show: bool) -> list[dict]:
    if not show:
        return explore_all(scenarios, kinds, jobs=jobs, quirks=quirks)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("explore"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("", total=len(scenarios))
        return explore_all(scenarios, kinds, jobs=jobs, quirks=quirks,
                           progress=lambda r: bar.update(task, advance=1, description=r["id"]))


def _print(con: Console, result: dict, seconds: float, jobs: int, report: Path | None) -> None:
    h = result["harness"]
    total = sum(r["points"] for r in result["table"] if r["kind"] == "all")
    con.print(f"[bold]explore[/bold]: {h['scenarios']} scenarios, {total:,} points ({', '.join(h['kinds'])} at every "
              f"instruction boundary from the call into the world switch to its return) in {seconds:.1f} s, "
              f"{jobs} job{'s' if jobs > 1 else ''}")
    t = Table(title="Points per variant (violations per invariant)")
    for col in ("variant", "kind", "scenarios", "points", "masked", "taken", "never taken"):
        t.add_column(col, justify="left" if col in ("variant", "kind") else "right")
    for inv in INVARIANTS:
        t.add_column(inv.id, justify="right")
    for row in result["table"]:
        bold = row["kind"] == "all"
        cells = [row["variant"], row["kind"], str(row["scenarios"]), f"{row['points']:,}", f"{row['masked']:,}",
                 f"{row['taken']:,}", f"{row['never_taken']:,}"]
        cells += [f"[red]{v:,}[/]" if v else "0" for v in row["violations"].values()]
        t.add_row(*[f"[bold]{c}[/]" if bold else c for c in cells], end_section=bold)
    con.print(t)
    v = Table(title="Invariants", show_lines=True)
    for col in ("id", "invariant", "verdict", "violated when", "evidence"):
        v.add_column(col, overflow="fold")
    style = {"holds": "green", "fails": "red", "conditional": "yellow", "undecided": "dim"}
    for x in result["invariants"]:
        ev_lines = [x["summary"]] + [f"excluded {n:,}: {why}" for why, n in x["excluded"].items()]
        for e in x["examples"][:4]:
            ev_lines.append(f"✗ {e['variant']} {e['config']} {e['kind']}@{e['icount']} {e['at']} ({e['src']}), "
                            f"{e['phase']}: "
                            + ", ".join(f"{k}={w}" for k, w in e["observed"].items()))
        if len(x["examples"]) > 4:
            ev_lines.append(f"... {len(x['examples']) - 4} more smallest examples in the report and --json")
        v.add_row(x["id"], x["statement"], f"[{style[x['verdict']]}]{x['verdict']}[/]",
                  "\n".join(x["violated_when"]) or "-", "\n".join(ev_lines))
    con.print(v)
    replays = [(x["id"], e) for x in result["invariants"] for e in x["examples"][:2]]
    if replays:
        con.print("[bold]Replay a violation[/bold] (stops where the interrupt is taken):")
        for xid, e in replays:
            con.print(f"  {xid}: {e['replay']}", soft_wrap=True, highlight=False)
    con.print(f"virtual interrupts: {h['virtual_interrupts']}")
    if report:
        con.print(f"report: {report}")
