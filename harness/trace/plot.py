"""PSTATE timeline pictures (matplotlib, Agg): EL, PAN, UAO, DAIF, DIT (and any other PSTATE field
that changes) against instruction count, with the exception entries and ERETs marked, the
phases of the run as a band of named spans, and shaded spans (the exposure window).

Labels never overlap: each text's size is measured from the font before it is placed, and
labels that would collide are moved apart along the time axis as little as possible (a
leader line joins each to its instruction)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.textpath import TextPath  # noqa: E402

from harness.arch.pstate import PSTATE_FIELDS, PState  # noqa: E402
from harness.arch.regs import PSTATE  # noqa: E402
from harness.trace import events as ev  # noqa: E402
from harness.trace.timeline import Span, pstate_timeline  # noqa: E402

# Always drawn (D/A/I/F as one DAIF row); then every other field of regs.PSTATE that changes in
# view (NZCV and M[4] excepted: the flags change without an event, so the events cannot show them).
_ALWAYS = ("el", "pan", "uao", "daif", "dit")
_NOT_DRAWN = {*_ALWAYS, "d", "a", "i", "f", "n", "z", "c", "v", "nrw"}


def _row(key: str) -> tuple[str, object, tuple[int, int]]:
    """(label, getter, value range) of a field as regs.PSTATE declares it; DAIF as one value."""
    if key == "daif":
        return "DAIF", lambda p: p.daif, (0, 15)
    f = PSTATE[key]
    return f.label, _getter(key), (0, f.max)

DPI = 110
WIDTH_IN = 12.0
LEFT, RIGHT = 0.075, 0.985               # axes span, as fractions of the figure width (before labels)
MARK_FONT, PHASE_FONT, AXIS_FONT = 8.5, 9.0, 10.0
MARK_ANGLE = 40                          # degrees: rotated marker labels need little room along x
_PHASE_COLOURS = ("#c6dbef", "#fdd0a2", "#c7e9c0", "#dadaeb", "#fcbba1", "#d9d9d9", "#f2e5a6")
_ENTRY, _ERET, _WINDOW = "#c0392b", "#1e8449", "#e74c3c"
_FONT = FontProperties()                 # the default text font, as every label uses


@dataclass(frozen=True)
class Label:
    track: str                                  # marks | phases
    text: str
    box: tuple[float, float, float, float]      # drawn extent in pixels (x0, y0, x1, y1)
    anchor: tuple[float, float]                 # pixels
    angle: float                                # degrees
    size: float                                 # points


@dataclass
class Layout:
    """Where the picture's labels ended up, for checking that none overlaps another, and the
    signal rows drawn (top to bottom)."""
    size: tuple[float, float] = (0.0, 0.0)
    labels: list[Label] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)


def plot_timeline(events: list[ev.Event], path: Path, *, title: str, start: int | None = None,
                  initial: PState | None = None, phases: Sequence[Span] = (), shade: Sequence[Span] = ()) -> Layout:
    """Write a PNG; `start` drops what happens before that instruction count (the boot);
    `phases` are drawn as a named band under the signals, `shade` as hatched spans across them."""
    steps, markers = pstate_timeline(events, initial)
    if not steps:
        return Layout()
    steps, markers = _from(steps, markers, start)
    end = max(e.icount for e in events) if events else steps[-1].icount + 1
    x0, x1 = steps[0].icount, max(end, steps[-1].icount + 1)
    pad = (x1 - x0) * 0.01
    xlim = (x0 - pad, x1 + pad)
    rows = [_row(f) for f in _ALWAYS] + [_row(f) for f in PSTATE_FIELDS
                                         if f not in _NOT_DRAWN and len({getattr(s.pstate, f) for s in steps}) > 1]
    phases = [p for p in phases if p.end > xlim[0] and p.start < xlim[1]]
    marks = [(m.icount, m.text.replace("->", "→"), _ENTRY if m.kind == "entry" else _ERET) for m in markers]
    right, placed, mark_px, rise = _place_marks(marks, xlim)
    axes_px = (LEFT * WIDTH_IN * DPI, placed * WIDTH_IN * DPI)
    to_px, from_px = _x_to_px(xlim, placed), _px_to_x(xlim, right)
    phase_w = [_text_size(p.name, PHASE_FONT)[0] for p in phases]
    phase_px = _spread([to_px((p.start + p.end) / 2) for p in phases], phase_w, 10.0, axes_px)

    mark_h = (rise + 14) / DPI
    heights = [mark_h] + [0.75 if hi <= 1 else 1.0 for _n, _g, (_lo, hi) in rows] + ([0.62] if phases else [])
    top_in, bottom_in = 0.45, 0.95
    fig_h = sum(heights) + 0.12 * len(heights) + top_in + bottom_in
    fig, axes = plt.subplots(len(heights), 1, sharex=True, figsize=(WIDTH_IN, fig_h), dpi=DPI,
                             gridspec_kw={"height_ratios": heights, "hspace": 0.12 * len(heights) / sum(heights)})
    fig.subplots_adjust(left=LEFT, right=right, top=1 - top_in / fig_h, bottom=bottom_in / fig_h)
    colour = _phase_colours(phases)
    for ax, row in zip(axes[1:1 + len(rows)], rows, strict=True):
        _draw_signal(ax, row, steps, x1, marks, phases, colour, shade)
    texts = _draw_marks(axes[0], marks, [from_px(px) for px in mark_px], 8 / (mark_h * DPI))
    if phases:
        texts += _draw_phases(axes[-1], phases, [from_px(px) for px in phase_px], colour)
    _finish(fig, axes[-1], xlim, shade, title, fig_h)
    fig.savefig(path)
    layout = Layout((fig.bbox.width, fig.bbox.height),
                    [Label(track, t.get_text(), tuple(t.get_window_extent().extents),
                           tuple(t.get_transform().transform(t.get_position())), t.get_rotation(), t.get_fontsize())
                     for track, t in texts], [name for name, _g, _r in rows])
    plt.close(fig)
    return layout


def _from(steps: list, markers: list, start: int | None) -> tuple[list, list]:
    """The timeline from `start` on, the PSTATE held at `start` as its first step."""
    if start is None:
        return steps, markers
    before = [s for s in steps if s.icount <= start]
    steps = ([before[-1].__class__(start, before[-1].pstate, "start")] if before else []) + \
        [s for s in steps if s.icount > start]
    return steps, [m for m in markers if m.icount >= start]


def _place_marks(marks: list[tuple[int, str, str]],
                 xlim: tuple[float, float]) -> tuple[float, float, list[float], float]:
    """(the axes' right edge, the right edge the labels were placed for (the one before the last
    narrowing when all four rounds narrow), each marker label's x in pixels, the labels' rise).
    Rotated, each label needs along x only its line height / sin(angle); the axes end early
    enough for the last label to fit in the figure."""
    ang = math.radians(MARK_ANGLE)
    sizes = [_text_size(t, MARK_FONT) for _x, t, _c in marks]
    run_x = [w * math.cos(ang) + h * math.sin(ang) for w, h in sizes]
    rise = max((w * math.sin(ang) + h for w, h in sizes), default=10.0)
    sep = max((h for _w, h in sizes), default=10.0) / math.sin(ang) + 2
    fig_w = WIDTH_IN * DPI
    right = RIGHT
    for _ in range(4):  # narrow the axes until the last rotated label ends inside the figure
        placed, to_px = right, _x_to_px(xlim, right)
        mark_px = _spread([to_px(x) for x, _t, _c in marks], [0.0] * len(marks), sep, (LEFT * fig_w, right * fig_w))
        over = max((px + r for px, r in zip(mark_px, run_x, strict=True)), default=0.0) - (fig_w - 8)
        if over <= 0:
            break
        right -= over / fig_w
    return right, placed, mark_px, rise


def _draw_signal(ax, row: tuple, steps: list, x1: int, marks: list, phases: Sequence[Span], colour: dict[str, str],
                 shade: Sequence[Span]) -> None:
    """One signal row, over the phases' background and the shaded spans."""
    name, get, (lo, hi) = row
    for p in phases:
        ax.axvspan(p.start, p.end, color=colour[p.name], alpha=0.45, linewidth=0, zorder=0)
    for s in shade:
        ax.axvspan(s.start, s.end, facecolor=_WINDOW, alpha=0.18, hatch="///", edgecolor=_WINDOW,
                   linewidth=0, zorder=1)
    xs = [s.icount for s in steps] + [x1]
    ys = [get(s.pstate) for s in steps]
    ax.step(xs, ys + ys[-1:], where="post", color="#1f4e79", linewidth=1.8, zorder=3)
    for x, _t, c in marks:
        ax.axvline(x, color=c, linewidth=0.9, alpha=0.8, zorder=2, linestyle="-" if c == _ENTRY else (0, (4, 2)))
    ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=AXIS_FONT, fontweight="bold")
    margin = 0.35 * max(1, hi / 3)
    ax.set_ylim(lo - margin, hi + margin)
    ax.set_yticks(range(lo, hi + 1) if hi <= 3 else [lo, hi])
    ax.tick_params(labelsize=AXIS_FONT - 1)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6, zorder=0)


def _draw_marks(ax, marks: list, label_x: list[float], lift: float) -> list[tuple[str, Text]]:
    """Exception entries and returns: a rotated label each, joined to its instruction (`lift`:
    the leader's rise, as a fraction of the track)."""
    _track(ax, 1.0)
    texts = []
    for (x, text, c), lx in zip(marks, label_x, strict=True):
        ax.plot([x, x, lx], [0, lift * 0.5, lift], color=c, linewidth=0.7, alpha=0.9)
        texts.append(("marks", ax.text(lx, lift, text, fontsize=MARK_FONT, color=c, ha="left", va="bottom",
                                       rotation=MARK_ANGLE, rotation_mode="anchor")))
    return texts


def _draw_phases(ax, phases: Sequence[Span], label_x: list[float], colour: dict[str, str]) -> list[tuple[str, Text]]:
    """The kernel phases: a band of spans, each named above it."""
    _track(ax, 1.0)
    texts = []
    for p, lx in zip(phases, label_x, strict=True):
        ax.axvspan(p.start, p.end, ymin=0, ymax=0.32, color=colour[p.name], linewidth=0)
        ax.plot([p.start, p.start], [0, 0.32], color="#888888", linewidth=0.6)
        xm = (p.start + p.end) / 2
        ax.plot([xm, xm, lx], [0.3, 0.42, 0.55], color="#666666", linewidth=0.6)
        texts.append(("phases", ax.text(lx, 0.56, p.name, fontsize=PHASE_FONT, ha="center", va="bottom",
                                        color="#222222")))
    ax.set_ylabel("phase", rotation=0, ha="right", va="center", fontsize=AXIS_FONT, fontweight="bold")
    return texts


def _finish(fig, bottom_ax, xlim: tuple[float, float], shade: Sequence[Span], title: str, fig_h: float) -> None:
    """The time axis, the legend and the title."""
    bottom_ax.set_xlim(*xlim)
    bottom_ax.set_xlabel("instructions executed", fontsize=AXIS_FONT)
    bottom_ax.tick_params(axis="x", labelsize=AXIS_FONT - 1)
    handles = [Line2D([], [], color=_ENTRY, linewidth=1.2, label="exception entry"),
               Line2D([], [], color=_ERET, linewidth=1.2, linestyle=(0, (4, 2)), label="ERET")]
    handles += [Patch(facecolor=_WINDOW, alpha=0.3, hatch="///", edgecolor=_WINDOW, label=s.name) for s in shade]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=AXIS_FONT - 0.5, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(title, fontsize=AXIS_FONT + 1, y=1 - 0.12 / fig_h, va="top")


def _getter(field: str):
    return lambda p: getattr(p, field)


def _track(ax, top: float) -> None:
    ax.set_ylim(0, top)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


def _phase_colours(phases: Sequence[Span]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in phases:
        out.setdefault(p.name, _PHASE_COLOURS[len(out) % len(_PHASE_COLOURS)])
    return out


def _x_to_px(xlim: tuple[float, float], right: float):
    left, width = LEFT * WIDTH_IN * DPI, (right - LEFT) * WIDTH_IN * DPI
    return lambda x: left + (x - xlim[0]) / (xlim[1] - xlim[0]) * width


def _px_to_x(xlim: tuple[float, float], right: float):
    left, width = LEFT * WIDTH_IN * DPI, (right - LEFT) * WIDTH_IN * DPI
    return lambda px: xlim[0] + (px - left) / width * (xlim[1] - xlim[0])


@functools.cache
def _text_size(text: str, size: float) -> tuple[float, float]:
    """(width, height) of `text` in pixels at `size` points, from the font's glyph outlines."""
    ext = TextPath((0, 0), text, size=size, prop=_FONT).get_extents()
    return ext.width * DPI / 72, max(ext.height, size) * DPI / 72


def _spread(centres: list[float], widths: list[float], gap: float, bounds: tuple[float, float]) -> list[float]:
    """Label centres as close as possible (least squares) to `centres`, in the same order, with
    neighbours at least half their widths plus `gap` apart, kept within `bounds` where they fit:
    isotonic regression (pool adjacent violators) on the centres less their cumulative offsets."""
    order = sorted(range(len(centres)), key=lambda i: centres[i])
    offs, acc = [], 0.0
    for k, i in enumerate(order):
        if k:
            acc += (widths[order[k - 1]] + widths[i]) / 2 + gap
        offs.append(acc)
    lo_b = bounds[0] + (widths[order[0]] / 2 if order else 0)
    hi_b = bounds[1] - (widths[order[-1]] / 2 if order else 0) - (offs[-1] if offs else 0)
    target = [min(max(centres[i] - o, lo_b), max(lo_b, hi_b)) for i, o in zip(order, offs, strict=True)]
    blocks: list[list[float]] = []       # [sum, count]
    for t in target:
        blocks.append([t, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
    fitted = [b[0] / b[1] for b in blocks for _ in range(int(b[1]))]
    out = [0.0] * len(centres)
    for k, i in enumerate(order):
        out[i] = fitted[k] + offs[k]
    return out
