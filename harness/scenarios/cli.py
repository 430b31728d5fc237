"""`python -m harness scenarios` (make run-scenarios): run the matrix, decide the claims,
print the claims table and the variant comparison, write reports/."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console

from harness.cli import ArgumentParser, jobs_arg  # ArgumentParser: one-line usage errors, exit 2
from harness.data import FIDELITY_JSON, REPORTS_DIR
from harness.scenarios import claims as claims_mod
from harness.scenarios.catalog import SelectionError, add_selection_arguments, selection_of
from harness.scenarios.report import prepare_reports_dir
from harness.scenarios.runner import (
    ScenarioError,
    ScenarioRun,
    StoppedVariant,
    default_jobs,
    run_scenarios,
)
from harness.scenarios.summary import outcomes
from harness.scenarios.terminal import print_result
from harness.scenarios.user import UserFileError
from harness.scenarios.world import variant_origin, variant_preamble

EXIT_OK, EXIT_HARNESS, EXIT_BAD_INPUT = 0, 1, 2


def fidelity_figure() -> str | None:
    """The latest `make fidelity` result, as that command saved it."""
    try:
        d = json.loads(FIDELITY_JSON.read_text())
        return f"agrees with QEMU {d['qemu_version']} on {d['agree']}/{d['cases']} cases ({d.get('date', '?')})"
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog="python -m harness scenarios",
                        description="Run the KVM world-switch scenarios and decide the review's claims.")
    ap.add_argument("--json", action="store_true", help="print claims and scenarios as JSON (no tables)")
    ap.add_argument("--details", action="store_true",
                    help="also print the full comparison: every configuration under every variant")
    add_selection_arguments(ap)
    ap.add_argument("-j", "--jobs", type=jobs_arg, default=None, metavar="N",
                    help="worker processes (default: the number of cores); the result does not depend on it")
    ap.add_argument("--reports", metavar="DIR", type=Path, default=REPORTS_DIR, help="where to write reports")
    ap.add_argument("--no-reports", action="store_true", help="do not write reports/")
    ap.add_argument("--all-timelines", action="store_true", help="a timeline picture for every scenario (slow)")
    return ap


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        catalog, scenarios = selection_of(args)
    except (UserFileError, SelectionError) as e:
        print(str(e), file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.no_reports:
        try:
            prepare_reports_dir(args.reports)
        except OSError as e:
            print(f"{e.filename or args.reports}: cannot write reports there: {e.strerror or e}", file=sys.stderr)
            return EXIT_BAD_INPUT

    t0 = time.perf_counter()
    stopped: list[StoppedVariant] = []
    try:
        runs = _run(scenarios, tuple(args.arch_quirk), stopped, args.jobs or default_jobs(),
                    show=not args.json and sys.stderr.isatty())
    except ScenarioError as e:
        print(str(e), file=sys.stderr)
        return EXIT_BAD_INPUT if e.bad_input else EXIT_HARNESS
    seconds = time.perf_counter() - t0
    verdicts = claims_mod.evaluate(runs)
    expectations = {u.scenario.id: u.expect for u in catalog.user_scenarios}
    result = {
        "harness": {"fidelity": fidelity_figure(), "quirks": list(args.arch_quirk), "seconds": round(seconds, 3),
                    "command": shlex.join(["scenarios", *argv])},
        "variants": _variants(runs),
        "claims": verdicts,
        "scenarios": [r.to_json() for r in runs],
        "user": [_user_result(r, expectations[r.scenario.id]) for r in runs if r.scenario.id in expectations],
        "stopped": [{"variant": s.variant, "message": s.message, "skipped": s.skipped} for s in stopped],
    }
    reports, reports_lost = None, False
    if not args.no_reports:
        reports = _write_reports(result, runs, args.reports, args.all_timelines)
        reports_lost = reports is None
    if args.json:
        print(json.dumps(result, indent=1, sort_keys=True))
    else:
        print_result(Console(), result, details=args.details, reports=reports)
    firsts = {id(s.run): s for s in stopped if s.run is not None}
    for r in runs:
        if (not r.ok or r.observations.failures) and id(r) not in firsts:
            print(f"harness failure: {r.scenario.id}: {r.status}: {r.message} {r.observations.failures}",
                  file=sys.stderr)
    for s in stopped:
        print(f"harness failure: {s.message}; variant {s.variant} stopped there: {s.skipped} of its scenarios "
              "not run", file=sys.stderr)
    failed = stopped or any(not r.ok or r.observations.failures for r in runs)
    return EXIT_HARNESS if failed or reports_lost else EXIT_OK


def _run(scenarios, quirks, stopped: list[StoppedVariant], jobs: int, *, show: bool) -> list[ScenarioRun]:
    if not show:
        return run_scenarios(scenarios, quirks=quirks, stopped=stopped, jobs=jobs)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("scenarios"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("", total=len(scenarios))
        return run_scenarios(scenarios, quirks=quirks, stopped=stopped, jobs=jobs,
                             progress=lambda r: bar.update(task, advance=1, description=r.scenario.id))


def _variants(runs: list[ScenarioRun]) -> list[dict]:
    """Each variant of the run with what it models (its diff's first line) and its base."""
    seen: dict[str, dict] = {}
    for r in runs:
        v = r.scenario.variant
        if v not in seen:
            provenance, base = variant_preamble(v, r.scenario.diff)
            upstream, kind = variant_origin(provenance, base)
            seen[v] = {"name": v, "provenance": provenance, "applies_to": base, "upstream": upstream, "kind": kind}
    return list(seen.values())


def _user_result(run: ScenarioRun, expect: dict[str, str]) -> dict:
    got = {p: run.observations.probes[p].outcome for p in expect}
    return {"id": run.scenario.id, "status": run.status, "expect": expect, "observed": got,
            "met": run.ok and got == expect, "outcomes": outcomes(run.to_json())}


def _write_reports(result: dict, runs: list[ScenarioRun], out: Path, all_timelines: bool) -> Path | None:
    from harness.scenarios.report import write_reports

    if all_timelines:
        pictures = {r.scenario.id for r in runs}
    else:  # per claim, the first scenario that holds and the first that fails; every user scenario
        pictures = {r.scenario.id for r in runs if r.scenario.name}
        for c in result["claims"]:
            for want in (True, False):
                hit = next((x["scenario"] for x in c["evidence"] if x["holds"] == want), None)
                if hit:
                    pictures.add(hit)
        # W2's DIT answer: per variant, the first scenario whose host does not get its DIT back
        w2 = next((c for c in result["claims"] if c["id"] == "W2"), {"evidence": []})
        first: dict[str, str] = {}
        for x in w2["evidence"]:
            if isinstance(x["observed"].get("leaks"), dict) and "dit" in x["observed"]["leaks"]:
                first.setdefault(x["scenario"].split("/")[0], x["scenario"])
        pictures |= set(first.values())
    try:
        write_reports(result, {r.scenario.id: r.events for r in runs}, out, pictures=pictures)
    except OSError as e:
        print(f"{out}: cannot write reports: {e.strerror}", file=sys.stderr)
        return None
    return out / "report.html"

