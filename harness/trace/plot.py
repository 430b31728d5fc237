"""PSTATE timeline pictures (matplotlib, Agg): EL, PAN, UAO and DAIF against instruction
count, exception entries and ERETs marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from harness.arch.pstate import PState  # noqa: E402
from harness.trace import events as ev  # noqa: E402
from harness.trace.timeline import pstate_timeline  # noqa: E402

_ROWS = (("EL", lambda p: p.el, (0, 3)), ("PAN", lambda p: p.pan, (0, 1)), ("UAO", lambda p: p.uao, (0, 1)),
         ("DAIF", lambda p: p.daif, (0, 15)))


def plot_timeline(events: list[ev.Event], path: Path, *, title: str, start: int | None = None,
                  initial: PState | None = None) -> None:
    """Write a PNG; `start` drops what happens before that instruction count (the boot)."""
    steps, markers = pstate_timeline(events, initial)
    if not steps:
        return
    if start is not None:
        before = [s for s in steps if s.icount <= start]
        steps = ([before[-1].__class__(start, before[-1].pstate, "start")] if before else []) + \
            [s for s in steps if s.icount > start]
        markers = [m for m in markers if m.icount >= start]
    end = max(e.icount for e in events) if events else steps[-1].icount + 1
    xs = [s.icount for s in steps] + [end]
    fig, axes = plt.subplots(len(_ROWS), 1, sharex=True, figsize=(10, 6), dpi=100)
    for ax, (name, get, (lo, hi)) in zip(axes, _ROWS, strict=True):
        ys = [get(s.pstate) for s in steps]
        ax.step(xs, ys + ys[-1:], where="post", color="tab:blue", linewidth=1.5)
        ax.set_ylabel(name, rotation=0, labelpad=20)
        ax.set_ylim(lo - 0.3, hi + 0.3)
        ax.set_yticks(range(lo, hi + 1) if hi <= 3 else [0, 15])
        for m in markers:
            ax.axvline(m.icount, color="tab:red" if m.kind == "entry" else "tab:green",
                       linestyle="-" if m.kind == "entry" else "--", linewidth=0.8, alpha=0.7)
    for m in markers:
        axes[0].annotate(m.text, (m.icount, 3.2), fontsize=6, rotation=60, ha="left", va="bottom",
                         color="tab:red" if m.kind == "entry" else "tab:green", annotation_clip=False)
    axes[-1].set_xlabel("instructions executed")
    fig.suptitle(title, fontsize=9, y=0.995)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path)
    plt.close(fig)
