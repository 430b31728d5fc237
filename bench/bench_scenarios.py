"""Benchmark the scenario matrix: assembly, the runs (per scenario), claims, report generation.

    python bench/bench_scenarios.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from harness.scenarios import world
from harness.scenarios.claims import evaluate
from harness.scenarios.report import write_reports
from harness.scenarios.runner import run_scenarios
from harness.scenarios.scenario import matrix


def main() -> None:
    scenarios = matrix()
    t0 = time.perf_counter()
    runs = run_scenarios(scenarios)          # cold: assembles every (variant, CPU) once
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    runs = run_scenarios(scenarios)          # warm: the assembly cache is filled
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    result_claims = evaluate(runs)
    t_claims = time.perf_counter() - t0
    per = [r.seconds for r in runs]
    insns = [r.icount for r in runs]
    result = {"harness": {"fidelity": None, "quirks": []}, "claims": result_claims,
              "scenarios": [r.to_json() for r in runs], "user": []}
    pictures = {x["scenario"] for c in result_claims for x in c["evidence"][:1]}
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        write_reports(result, {r.scenario.id: r.events for r in runs}, Path(d), pictures=pictures)
        t_reports = time.perf_counter() - t0
    n_asm = len({(s.variant, s.cpu) for s in scenarios})
    print(f"scenarios: {len(runs)} ({n_asm} assemblies of {world.WORLD_S.name})")
    print(f"matrix, cold (assembly included): {cold:6.2f} s   target < 5 s")
    print(f"matrix, warm (runs only):         {warm:6.2f} s")
    print(f"per scenario run: median {statistics.median(per) * 1e3:.2f} ms, max {max(per) * 1e3:.2f} ms, "
          f"{statistics.median(insns):.0f} instructions from the snapshot (boot included in icount)")
    print(f"claims evaluation:                {t_claims:6.3f} s")
    print(f"reports ({len(pictures)} PNG timelines, {len(runs)} VCDs, md + html): {t_reports:6.2f} s")


if __name__ == "__main__":
    main()
