"""`make bench`: every benchmark in one run, then one table of every figure next to its target,
with the bare-Unicorn yardsticks measured in the same run. Exits 1 when any target is missed.

    python bench/run_all.py [--skip NAME ...]

Each bench_*.py also runs alone (python bench/bench_NAME.py) and exits 1 on its own misses.
"""

from __future__ import annotations

import argparse
import sys

import bench_board
import bench_debugger
import bench_explore
import bench_scenarios
import bench_startup
from figures import Figure, report

BENCHES = ("board", "startup", "scenarios", "debugger", "explore")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", action="append", default=[], choices=BENCHES, help="leave this benchmark out")
    args = ap.parse_args()
    figures: list[Figure] = []
    raw_mips = None
    for name in BENCHES:
        if name in args.skip:
            continue
        print(f"\n== bench_{name}", flush=True)
        if name == "board":
            got = bench_board.measure()
            raw_mips = got[0].measured
        elif name == "scenarios":
            got = bench_scenarios.measure(raw_mips)
        else:
            got = {"startup": bench_startup.measure, "debugger": bench_debugger.measure,
                   "explore": bench_explore.measure}[name]()
        figures += got
    print()
    return report(figures, "make bench")


if __name__ == "__main__":
    sys.exit(main())
