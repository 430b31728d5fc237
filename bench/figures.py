"""What every bench script reports: figures next to their targets, one summary table, and an
exit status (1 when a target is missed), so `make bench` fails on a miss."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.scenarios.runner import default_jobs


@dataclass
class Figure:
    name: str
    measured: float
    unit: str
    target: float | None     # None: a yardstick, printed for comparison, with no target
    at_most: bool = True     # the target is an upper bound (else a lower bound)
    note: str = ""
    digits: int = 2

    @property
    def ok(self) -> bool:
        if self.target is None:
            return True
        return self.measured <= self.target if self.at_most else self.measured >= self.target

    def cells(self) -> tuple[str, str, str, str]:
        target = "-" if self.target is None else f"{'<=' if self.at_most else '>='} {self.target:g} {self.unit}"
        verdict = "yardstick" if self.target is None else "ok" if self.ok else "MISS"
        return self.name, f"{self.measured:.{self.digits}f} {self.unit}", target, verdict


def yardstick(name: str, measured: float, unit: str, note: str = "", digits: int = 2) -> Figure:
    return Figure(name, measured, unit, None, note=note, digits=digits)


def table(figures: list[Figure], title: str = "summary") -> str:
    rows = [("figure", "measured", "target", "ok/MISS"), *(f.cells() for f in figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    out = [f"{title} (load average {load():.1f} on {default_jobs()} cores)", line]
    for i, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) if j != 1 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True))))
        if i == 0:
            out.append(line)
    out.append(line)
    out += [f"  {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(out)


def report(figures: list[Figure], title: str = "summary") -> int:
    """Print the table; 1 when any target is missed, else 0."""
    print(table(figures, title), flush=True)
    return 0 if all(f.ok for f in figures) else 1


def load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """(fn(), wall seconds, CPU seconds of this process)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c
