"""`python -m harness fidelity`: the harness against qemu-system-aarch64, case by case.

Generates the exhaustive slices and seeded random cases (harness/fidelity/cases.py), builds
each program once with GNU as, runs it on QEMU and on the harness, compares every field
under the reviewed exclusions (exclusions.toml), checks that the harness's assembler gives
GNU as's words for the generated programs and for every project source, prints
"agrees with QEMU X.Y on N/N cases" and saves the figures to reports/fidelity.json.
A --quick run is a check while working, not the headline: it never replaces the full run's
figures in reports/fidelity.json (which `make run-scenarios` quotes); it saves to
reports/fidelity-quick.json, marked "quick": true, unless --json names a file.
Exit status: 0 all agree, 1 a difference or problem, 2 bad usage or missing tools.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

from harness.cli import ArgumentParser
from harness.data import FIDELITY_JSON
from harness.fidelity.cases import Case
from harness.fidelity.compare import RECORD_FIELDS, CaseOutput, ExclusionError
from harness.fidelity.run import CaseResult, FidelityResult, run, select_cases
from harness.qemu import BuildError, missing_tools
from harness.text import one_line

QUICK_JSON = FIDELITY_JSON.with_name("fidelity-quick.json")
BUILD_DIR = Path("build") / "fidelity"
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
SAMPLES, SEED = 600, 2017


def _count(text: str) -> int:
    try:
        n = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {n}")
    return n


def _parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog="python -m harness fidelity",
                                 description="Run generated exception programs on QEMU and on the harness and compare.")
    ap.add_argument("--samples", type=_count, default=SAMPLES, help=f"seeded random cases (default {SAMPLES})")
    ap.add_argument("--seed", type=_count, default=SEED, help=f"random seed (default {SEED})")
    ap.add_argument("--quick", action="store_true",
                    help="every 8th exhaustive case only (with --samples); saved apart from the full figures")
    ap.add_argument("--build-dir", type=Path, help="where the generated programs and ELFs go (default build/fidelity)")
    ap.add_argument("--json", metavar="FILE", type=Path,
                    help="where to save the figures (default reports/fidelity.json; "
                         "reports/fidelity-quick.json for --quick)")
    ap.add_argument("--no-save", action="store_true", help="do not write the JSON figures")
    ap.add_argument("--no-sources", action="store_true", help="skip the GNU-as word check of the project's sources")
    ap.add_argument("--show", type=_count, default=10, metavar="N", help="differences to print in full (default 10)")
    return ap


def side_by_side(case: Case, num: int, q: CaseOutput | None, o: CaseOutput | None, detail: str) -> str:
    """The case, both outputs field by field, the first difference marked."""
    lines = [f"C{num} {case.id}: {detail}", f"  {'field':<14} {'QEMU':<20} {'harness':<20}"]

    def row(name: str, a: str | None, b: str | None) -> None:
        mark = "" if a == b else "   <-"
        lines.append(f"  {name:<14} {a or '-':<20} {b or '-':<20}{mark}")

    row("exceptions", str(q.n) if q else None, str(o.n) if o else None)
    row("x0", q.x0 if q else None, o.x0 if o else None)
    row("exit SPSR", q.exit if q else None, o.exit if o else None)
    for i in range(max(len(q.records) if q else 0, len(o.records) if o else 0)):
        qr = q.records[i] if q and i < len(q.records) else {}
        orr = o.records[i] if o and i < len(o.records) else {}
        for f in RECORD_FIELDS:
            row(f"{i + 1}.{f}", qr.get(f), orr.get(f))
    return "\n".join(lines)


def to_json(res: FidelityResult, source_words: tuple[int, int, list[str]] | None, seed: int, samples: int,
            quick: bool = False) -> dict:
    def one(r: CaseResult) -> dict:
        return {"num": r.num, "id": r.case.id, "status": r.verdict.status, "detail": r.verdict.detail,
                "qemu": r.qemu.line if r.qemu else None, "harness": r.ours.line if r.ours else None}

    return {
        "qemu_version": res.qemu_version,
        "agree": res.count("agree"),
        "cases": res.compared,
        "excluded": res.count("excluded"),
        "harness_only": len(res.harness_only),
        "date": datetime.date.today().isoformat(),
        "seed": seed,
        "samples": samples,
        "quick": quick,
        "programs": [{"source": str(p.source.name), "cases": p.cases, "words": p.words,
                      "qemu_s": round(p.qemu.seconds, 3) if p.qemu else None,
                      "harness_s": round(p.ours.seconds, 3)} for p in res.programs],
        "source_words": None if source_words is None else
        {"sources": source_words[0], "words": source_words[1], "differences": source_words[2]},
        "exclusions": [{"name": e.name, "reason": e.reason, "cases": res.exclusion_counts()[e.name]}
                       for e in res.exclusions],
        "not_agreeing": [one(r) for r in res.results if r.verdict.status in ("differ", "missing")],
        "excluded_cases": [one(r) for r in res.results + res.harness_only if r.verdict.status == "excluded"],
        "problems": res.problems,
    }


def _output_problem(path: Path, what: str, *, create_parent: bool) -> str | None:
    """Why `path` cannot be written, found before minutes of work rather than after."""
    parent = path.parent
    if create_parent and not parent.exists():
        try:
            parent.mkdir(parents=True)
        except OSError as e:
            return f"{what} {parent}: cannot create: {e.strerror or e}"
    if path.is_dir():
        return f"{what} {path}: is a directory"
    if not parent.is_dir():
        return f"{what} {path}: no directory {parent}"
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"{what} {path}: not writable"
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"fidelity: needs {', '.join(missing)} (Debian: qemu-system-arm, binutils-aarch64-linux-gnu; "
              "bash .ci/run installs them)", file=sys.stderr)
        return EXIT_USAGE
    save = None if args.no_save else args.json or (QUICK_JSON if args.quick else FIDELITY_JSON)
    build = args.build_dir or BUILD_DIR
    problem = next(filter(None, _output_problems(args, save, build)), None)
    if problem:
        print(one_line(f"fidelity: {problem}"), file=sys.stderr)
        return EXIT_USAGE
    cases = select_cases(args.samples, args.seed, quick=args.quick)
    try:
        res = run(cases, build, progress=lambda m: print(f"  {m}", file=sys.stderr))
    except (ExclusionError, BuildError) as e:
        print(one_line(f"fidelity: {e}"), file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # the build directory went away or filled up during the run
        print(one_line(f"fidelity: {e.filename or ''}: {e.strerror or e}"), file=sys.stderr)
        return EXIT_FAIL
    source_words = None if args.no_sources else _source_words()
    _print_result(res, source_words, args)
    if save is not None:
        try:
            save.write_text(json.dumps(to_json(res, source_words, args.seed, args.samples, args.quick), indent=1) + "\n")
        except OSError as e:
            print(one_line(f"fidelity: --json {save}: {e.strerror or e}"), file=sys.stderr)
            return EXIT_FAIL
        if args.quick and args.json is None:
            print(f"quick run: figures saved to {save}, not {FIDELITY_JSON} (the full run's)")
    ok = res.ok and not (source_words and source_words[2])
    return EXIT_OK if ok else EXIT_FAIL


def _output_problems(args: argparse.Namespace, save: Path | None, build: Path) -> list[str | None]:
    """What is wrong with the places the run writes to (--json, --build-dir), before it starts."""
    problems = [_output_problem(save, "--json", create_parent=args.json is None)] if save else []
    if build.exists():
        problems.append(None if build.is_dir() else f"--build-dir {build}: not a directory")
    else:
        problems.append(_output_problem(build, "--build-dir", create_parent=args.build_dir is None))
    return problems


def _source_words() -> tuple[int, int, list[str]]:
    """(project sources, their instructions, the words where keystone and GNU as differ)."""
    from harness.fidelity.words import compare_words, project_sources

    srcs = project_sources()
    total, bad = 0, []
    for s in srcs:
        n, b = compare_words(s)
        total += n
        bad += b
    return len(srcs), total, bad


def _print_result(res: FidelityResult, source_words: tuple[int, int, list[str]] | None,
                  args: argparse.Namespace) -> None:
    shown = 0
    for r in res.results:
        if r.verdict.status in ("differ", "missing") and shown < args.show:
            print(side_by_side(r.case, r.num, r.qemu, r.ours, r.verdict.detail))
            shown += 1
    for p in res.problems:
        print(f"problem: {p}")
    print("exclusions (reviewed, harness/fidelity/exclusions.toml):")
    for name, n in res.exclusion_counts().items():
        print(f"  {name}: {n} cases")
    gen_words = sum(p.words for p in res.programs)
    print(f"keystone words = GNU as words: {len(res.programs)} generated programs ({gen_words} instructions)"
          + ("" if source_words is None else
             f", {source_words[0]} project sources ({source_words[1]} instructions, "
             f"{len(source_words[2])} differ)"))
    for line in (source_words[2] if source_words else [])[: args.show]:
        print(f"  {line}")
    print(f"agrees with QEMU {res.qemu_version} on {res.count('agree')}/{res.compared} cases "
          f"({res.count('excluded')} excluded and {len(res.harness_only)} harness-only by the reviewed list)"
          + (" [quick run]" if args.quick else ""))
