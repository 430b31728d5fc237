"""Statements, what the preprocessor hands the layout: one plain instruction or directive each, with
the labels in front of it and the place in the source it came from."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from harness.asm.image import SourceLoc

LABEL = re.compile(r"^\s*([A-Za-z_.$][\w.$]*|\d+)\s*:(?!:)")
# Bytes per value of each data directive (`.inst` apart: its words are instructions).
DATA_WIDTHS = {
    ".byte": 1, ".hword": 2, ".short": 2, ".2byte": 2, ".word": 4, ".long": 4, ".int": 4,
    ".4byte": 4, ".quad": 8, ".xword": 8, ".8byte": 8, ".dword": 8,
}


@dataclass(frozen=True)
class Stmt:
    text: str  # one statement, comments removed, no label
    loc: SourceLoc
    labels: tuple[str, ...] = ()
    via: str = ""  # "from macro 'NAME' used at file:line" when produced by an expansion
    label_locs: tuple[SourceLoc, ...] = ()  # where each of `labels` is defined
    calls: tuple[tuple[str, SourceLoc], ...] = ()  # macro expansions it came from: (name, call site), innermost first


def split_labels(stmts: list[Stmt]) -> list[Stmt]:
    """`lab: stmt` becomes `lab:` and `stmt`, so the statement may be a macro call or a directive."""
    out = []
    for st in stmts:
        text = st.text
        m = LABEL.match(text)
        if m is None:
            out.append(st)
            continue
        while m is not None and text[m.end():].strip():
            out.append(replace(st, text=text[: m.end()].strip()))
            text = text[m.end():].strip()
            m = LABEL.match(text)
        out.append(replace(st, text=text))
    return out


_NUMREF = re.compile(r"(?<![\w.$])(\d+)([fb])(?![\w])")


def number_labels(stmts: list[Stmt]) -> list[Stmt]:
    """Split leading labels off statements; rename numeric labels N: and their Nf/Nb uses
    (definition k of label N becomes __num_N_k)."""
    out: list[Stmt] = []
    counts: dict[str, int] = {}
    pending: list[str] = []
    pending_locs: list[SourceLoc] = []
    defs_seen: dict[str, int] = {}
    for st in stmts:
        text = st.text
        if ":" in text:
            m = LABEL.match(text)
            while m:
                lab = m.group(1)
                if lab.isdigit():
                    k = defs_seen.get(lab, 0)
                    defs_seen[lab] = k + 1
                    lab = f"__num_{lab}_{k}"
                pending.append(lab)
                pending_locs.append(st.loc)
                text = text[m.end():].strip()
                m = LABEL.match(text)
        if not text:
            continue
        if "f" in text or "b" in text:
            text = _NUMREF.sub(lambda m: _numref(m, defs_seen, counts), text)
        if pending:
            out.append(Stmt(text, st.loc, tuple(pending), st.via, tuple(pending_locs), st.calls))
            pending, pending_locs = [], []
        else:
            out.append(st if text == st.text and not st.labels else Stmt(text, st.loc, (), st.via, calls=st.calls))
    if pending:
        out.append(Stmt("", pending_locs[-1], tuple(pending), "", tuple(pending_locs)))
    return out


def _numref(m: re.Match, defs_seen: dict[str, int], counts: dict[str, int]) -> str:
    n, d = m.group(1), m.group(2)
    k = defs_seen.get(n, 0)  # definitions of N seen so far
    return f"__num_{n}_{k - 1}" if d == "b" else f"__num_{n}_{k}"
