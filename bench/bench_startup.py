"""Start-up of `python -m harness run X.elf` against a bare `python -c 'import unicorn'`, in one
run (issue 12: within 0.1 s). X.elf powers off at its second instruction, so the figure is the
start-up: imports, the ELF's loading, the board's creation.

    python bench/bench_startup.py [--repeat N]

The two commands alternate, N times each; the figure is the difference of their medians of CPU
time (user + system: on a machine shared with other work, wall time also counts the others').
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import Figure, report, yardstick

TARGET_S = 0.1
POWER_OFF = """
    .text
    .global _start
_start:
    ldr     x0, =0x84000008        // PSCI SYSTEM_OFF
    smc     #0
"""


def _seconds(argv: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of argv: the CPU time (user + system) is what the command
    costs, whatever else the machine runs; the wall time on a shared machine is not."""
    t, c = time.perf_counter(), _children_cpu()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t, _children_cpu() - c


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(repeat: int = 21) -> list[Figure]:
    with tempfile.TemporaryDirectory() as d:
        src, elf = Path(d) / "off.S", Path(d) / "off.elf"
        src.write_text(POWER_OFF)
        subprocess.run([sys.executable, "-m", "harness", "build", str(src), "-o", str(elf)], check=True,
                       stdout=subprocess.DEVNULL)
        bare_cmd = [sys.executable, "-c", "import unicorn"]
        run_cmd = [sys.executable, "-m", "harness", "run", str(elf)]
        _seconds(bare_cmd), _seconds(run_cmd)  # warm the page cache and the .pyc files
        bare, run = [], []
        for _ in range(repeat):
            bare.append(_seconds(bare_cmd))
            run.append(_seconds(run_cmd))
    (bw, bc), (rw, rc) = ([statistics.median(x[i] for x in runs) for i in (0, 1)] for runs in (bare, run))
    print(f"python -c 'import unicorn': median {bc * 1e3:.0f} ms CPU, {bw * 1e3:.0f} ms wall")
    print(f"python -m harness run X.elf: median {rc * 1e3:.0f} ms CPU, {rw * 1e3:.0f} ms wall   "
          f"difference {(rc - bc) * 1e3:.0f} ms CPU ({(rw - bw) * 1e3:.0f} ms wall), target <= {TARGET_S * 1e3:.0f} ms",
          flush=True)
    return [yardstick("bare `python -c 'import unicorn'` (CPU)", bc, "s", digits=3),
            Figure("`harness run X.elf` start-up over bare (CPU)", rc - bc, "s", TARGET_S, digits=3,
                   note=f"medians of {repeat} alternating runs, CPU {rc:.3f} s against {bc:.3f} s; "
                        f"wall {rw:.3f} s against {bw:.3f} s")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=21, help="runs of each command (default 21)")
    return report(measure(ap.parse_args().repeat), "bench_startup")


if __name__ == "__main__":
    sys.exit(main())
