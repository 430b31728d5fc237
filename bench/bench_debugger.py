"""Debugger latency and continue speed, in one run (debugger issue, Speed).

Prints the median latency of `stepi` (target < 5 ms), of `reverse-stepi` with 100 000
instructions of history (target < 50 ms), and the speed of a `continue` to a breakpoint
10 million instructions away as a ratio to the same run on a bare Board (target >= 0.8).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_board import LOOP, PER_ITER  # the same loop the board benchmark times
from figures import Figure, report

from harness.asm import assemble_text
from harness.debugger.core import Debugger
from harness.machine.board import Board


def median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def measure() -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "loop.S"
        src.write_text(LOOP.format(iters=10_000_000 // PER_ITER))
        d = Debugger()
        d.load_program(str(src))
        stepi = median_ms(lambda: d.execute("stepi"), 200)  # with the stop display
        d.cont(limit=100_000)
        history = d.board.icount
        rev = median_ms(lambda: d.execute("reverse-stepi"), 30)

        image = assemble_text(src.read_text(), str(src))
        best_raw, best_dbg = float("inf"), float("inf")
        for _ in range(3):
            b = Board("max")
            b.load(image)
            b.add_breakpoint(image.addr_of("done"))
            t = time.perf_counter()
            r = b.run(50_000_000)
            best_raw = min(best_raw, time.perf_counter() - t)
            assert r.status == "breakpoint", r.message
            n = b.icount
            d2 = Debugger()
            d2.load_program(str(src))
            d2.execute("break done")
            t = time.perf_counter()
            st = d2.cont()
            best_dbg = min(best_dbg, time.perf_counter() - t)
            assert st.reason == "breakpoint" and d2.board.icount == n
    print(f"stepi median latency:                {stepi:6.2f} ms   (target < 5 ms)")
    print(f"reverse-stepi, {history:,} insns history: {rev:6.2f} ms   (target < 50 ms)")
    print(f"continue to a breakpoint {n:,} insns away: bare board {best_raw:.3f} s, debugger "
          f"{best_dbg:.3f} s, ratio {best_raw / best_dbg:.2f}   (target >= 0.8)", flush=True)
    return [Figure("debugger stepi, median", stepi, "ms", 5.0),
            Figure(f"debugger reverse-stepi ({history:,} insns history)", rev, "ms", 50.0),
            Figure("debugger continue / bare board", best_raw / best_dbg, "x", 0.8, at_most=False)]


def main() -> int:
    return report(measure(), "bench_debugger")


if __name__ == "__main__":
    sys.exit(main())
