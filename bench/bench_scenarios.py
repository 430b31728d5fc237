"""Benchmark the scenario matrix: assembly, the runs (per scenario), claims, report generation.

    python bench/bench_scenarios.py

Targets (issue 12): a scenario's median <= 2 ms, the full default matrix (runs and claims, the
images assembled) <= 1.5 s on one core. The runs are single-threaded, so a figure "on one core"
is this process's CPU time: on a machine shared with other work the wall time, printed beside
it, also counts the time other processes held the core.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from figures import Figure, report, timed

from harness.scenarios import world
from harness.scenarios.claims import evaluate
from harness.scenarios.report import write_reports
from harness.scenarios.runner import run_scenarios
from harness.scenarios.scenario import matrix


def measure(raw_mips: float | None = None) -> list[Figure]:
    scenarios = matrix()
    _, cold, cold_cpu = timed(lambda: run_scenarios(scenarios))   # assembles every (variant, CPU) once
    marks: list[float] = []

    def matrix_run():
        marks.append(time.process_time())
        runs = run_scenarios(scenarios, progress=lambda r: marks.append(time.process_time()))
        return runs, evaluate(runs)

    (runs, result_claims), warm, warm_cpu = timed(matrix_run)
    # A scenario's CPU time: its restore, run and observations (the first on a boot: its boot too).
    per_cpu = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    per_run = [r.seconds for r in runs]
    insns = [r.icount for r in runs]
    result = {"harness": {"fidelity": None, "quirks": []}, "claims": result_claims,
              "scenarios": [r.to_json() for r in runs], "user": []}
    pictures = {x["scenario"] for c in result_claims for x in c["evidence"][:1]}
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        write_reports(result, {r.scenario.id: r.events for r in runs}, Path(d), pictures=pictures)
        t_reports = time.perf_counter() - t0
    n_asm = len({(s.variant, s.cpu) for s in scenarios})
    median = statistics.median(per_cpu)
    print(f"scenarios: {len(runs)} ({n_asm} assemblies of {world.WORLD_S.name})")
    print(f"matrix, cold (assembly included): {cold:6.2f} s wall, {cold_cpu:6.2f} s CPU")
    print(f"matrix, warm (runs and claims):   {warm:6.2f} s wall, {warm_cpu:6.2f} s CPU   target <= 1.5 s")
    print(f"per scenario: median {median * 1e3:.2f} ms CPU (board run alone: {statistics.median(per_run) * 1e3:.2f} ms "
          f"wall), max {max(per_cpu) * 1e3:.2f} ms, {statistics.median(insns):.0f} instructions from the snapshot "
          "(boot included in icount)")
    print(f"reports ({len(pictures)} PNG timelines, {len(runs)} VCDs, md + html): {t_reports:6.2f} s", flush=True)
    bare = ""
    if raw_mips:
        bare = f"; bare Unicorn would run its {statistics.median(insns):.0f} instructions in " \
               f"{statistics.median(insns) / raw_mips:.0f} us"
    return [
        Figure("scenario median", median * 1e3, "ms", 2.0,
               note=f"CPU time per scenario (restore, run, observations) over {len(runs)} scenarios{bare}"),
        Figure(f"default matrix, one core ({len(runs)} scenarios)", warm_cpu, "s", 1.5,
               note=f"CPU time of runs and claims, images assembled (wall {warm:.2f} s; "
                    f"with the assembly, CPU {cold_cpu:.2f} s)"),
    ]


def main() -> int:
    return report(measure(), "bench_scenarios")


if __name__ == "__main__":
    sys.exit(main())
