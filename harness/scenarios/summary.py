"""What the terminal and the reports say about a run, computed once from its JSON result:
each scenario's outcomes, where variants differ, short unique labels for configurations,
the kernel phases of a run and the one-paragraph answer to the review.

Everything is derived from the data (the scenarios' axes, the probes and PSTATE fields the
observations hold, the claims' verdicts), so a new axis, probe, field or claim shows up
without a change here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.scenarios.claims import CALL_CLOBBERED, SHOWN_TOGETHER
from harness.scenarios.observe import PSTATE_FIELD_NAMES, Observations
from harness.scenarios.scenario import Scenario
from harness.scenarios.world import BASE_VARIANT, PHASES, PROBES

BASELINE = BASE_VARIANT
OUTCOME_MARK = {"ok": "o", "fault": "F", "not_run": "-"}
_AFTER = "host_after_call"   # the observation point whose PSTATE is "after the return"

Axes = dict[str, object]


def outcomes(s: dict) -> dict[str, str]:
    """A scenario's outcomes, name -> value: every probe, and every PSTATE field the
    observations hold at the host's return, as W2 compares them (condition flags left out,
    D/A/I/F as one DAIF value in binary)."""
    if s["status"] != "poweroff":
        return {"run": s["status"]}
    o = Observations.from_json(s["observations"])
    probes = sorted(o.probes, key=lambda n: (PROBES.index(n) if n in PROBES else len(PROBES), n))
    out = {name.removeprefix("probe_"): o.probes[name].outcome for name in probes}
    after = o.points.get(_AFTER)
    for f in _FIELD_ORDER if after is not None else ():
        v = getattr(after, f)
        out[f"{f.upper()} after"] = f"{v:0{len(SHOWN_TOGETHER[f])}b}" if f in SHOWN_TOGETHER else str(v)
    return out


def _field_order() -> list[str]:
    """PState's fields in declaration order, condition flags left out, each SHOWN_TOGETHER
    group in the place of its first member."""
    first = {ms[0]: name for name, ms in SHOWN_TOGETHER.items()}
    members = {m for ms in SHOWN_TOGETHER.values() for m in ms}
    return [first.get(f, f) for f in PSTATE_FIELD_NAMES
            if f not in CALL_CLOBBERED and (f not in members or f in first)]


_FIELD_ORDER = _field_order()


def matrix_rows(result: dict) -> tuple[list[str], dict[str, dict[str, dict]]]:
    """(variants in run order, {config_id: {variant: scenario json}}) for the matrix scenarios
    (user scenarios name themselves and are not part of it)."""
    variants: list[str] = []
    rows: dict[str, dict[str, dict]] = {}
    for s in result["scenarios"]:
        if s["config"].get("name"):
            continue
        if s["variant"] not in variants:
            variants.append(s["variant"])
        rows.setdefault(s["config_id"], {})[s["variant"]] = s
    return variants, rows


def baseline(variants: Sequence[str]) -> str | None:
    return BASELINE if BASELINE in variants else (variants[0] if variants else None)


_AXES_ORDER = [a for a in Scenario(BASE_VARIANT).axes() if a != "variant"]


def axes_of(s: dict) -> Axes:
    """The configuration axes of a scenario (its variant left out), in Scenario.axes() order
    whatever order the JSON kept."""
    axes = {k: v for k, v in s["axes"].items() if k != "variant"}
    return {**{a: axes[a] for a in _AXES_ORDER if a in axes}, **axes}


# ---------------------------------------------------------------- where variants differ

@dataclass(frozen=True)
class Difference:
    variant: str
    where: list[str]                       # alternatives, each "axis=value ..." (see describe)
    configs: list[str]                     # config ids
    changes: tuple[tuple[str, str, str], ...]  # (outcome, baseline value, variant value)


def differing_outcomes(result: dict) -> list[str]:
    """The outcomes that differ between two variants in at least one configuration, in order;
    with one variant (or none differing), those that differ between configurations."""
    _variants, rows = matrix_rows(result)
    order: dict[str, None] = {}
    seen: set[str] = set()
    every: list[dict[str, str]] = []
    for cells in rows.values():
        outs = [outcomes(s) for s in cells.values()]
        every += outs
        for o in outs:
            order.update(dict.fromkeys(o))
        seen |= {k for k in order if any(o.get(k) != outs[0].get(k) for o in outs[1:])}
    if not seen:
        seen = {k for k in order if len({o.get(k) for o in every}) > 1}
    return [k for k in order if k in seen]


def variant_differences(result: dict) -> tuple[str | None, int, list[Difference]]:
    """(baseline, configurations per variant, differences): per variant, the groups of
    configurations where its outcomes differ from the baseline's in the same way. A variant
    that never differs has one Difference with no changes."""
    variants, rows = matrix_rows(result)
    base = baseline(variants)
    universe = [axes_of(cells[next(iter(cells))]) for cells in rows.values()]
    out: list[Difference] = []
    for v in variants:
        if v == base:
            continue
        groups: dict[tuple, list[str]] = {}
        for cid, cells in rows.items():
            if v not in cells or base not in cells:
                continue
            b, o = outcomes(cells[base]), outcomes(cells[v])
            changes = tuple((k, b.get(k, "-"), o.get(k, "-")) for k in dict.fromkeys([*b, *o]) if b.get(k) != o.get(k))
            if changes:
                groups.setdefault(changes, []).append(cid)
        if not groups:
            out.append(Difference(v, [], [], ()))
        for changes, cids in groups.items():
            members = [axes_of(rows[c][v]) for c in cids]
            out.append(Difference(v, describe(members, universe), cids, changes))
    return base, len(rows), out


def describe(members: list[Axes], universe: list[Axes]) -> list[str]:
    """A set of configurations as alternatives, each a product of axis values ("mode=vhe
    guest_pan=0"), with every constraint left out that does not narrow the set."""
    if not members:
        return []
    key = _key(universe)
    want = {key(m) for m in members}
    axes = list(universe[0])
    vals = {a: {m[a] for m in members} for a in axes}
    cube = {key(u) for u in universe if all(u[a] in vals[a] for a in axes)}
    if cube != want:
        a = next(a for a in axes if len(vals[a]) > 1)
        return [d for v in sorted(vals[a], key=str) for d in describe([m for m in members if m[a] == v], universe)]
    constraint = dict(vals)
    for a in axes:  # drop what does not narrow the set
        trial = {b: s for b, s in constraint.items() if b != a}
        if {key(u) for u in universe if all(u[b] in s for b, s in trial.items())} == want:
            constraint = trial
    if not constraint:
        return ["all"]
    return [" ".join(f"{a}={'|'.join(str(x) for x in sorted(s, key=str))}" for a, s in constraint.items())]


def _key(universe: list[Axes]):
    axes = list(universe[0]) if universe else []
    return lambda d: tuple(d[a] for a in axes)


def change_text(changes: Iterable[tuple[str, str, str]]) -> str:
    return ", ".join(f"{k} {b}->{n}" for k, b, n in changes)


@dataclass(frozen=True)
class Leaks:
    """W2 on one variant: scenarios compared, how many leak, each leak (field before -> after)
    with the scenarios showing it, and the PSTATE fields those leaks touch."""

    variant: str
    scenarios: int
    leaking: int
    leaks: tuple[tuple[str, int], ...]

    @property
    def fields(self) -> list[str]:
        return sorted({text.split()[0] for text, _n in self.leaks})


def leaks_by_variant(result: dict) -> list[Leaks]:
    """W2's leaks per variant, in run order (empty when W2 was not decided)."""
    w2 = next((c for c in result["claims"] if c["id"] == "W2"), None)
    by = (w2 or {}).get("by_variant") or {}
    order = matrix_rows(result)[0]
    names = [v for v in order if v in by] + sorted(set(by) - set(order))
    return [Leaks(v, by[v]["scenarios"], by[v]["leaking"], tuple(sorted(by[v]["leaks"].items(), key=lambda kv: -kv[1])))
            for v in names]


def leak_text(x: Leaks) -> str:
    return "; ".join(f"{text} ({n})" for text, n in x.leaks) or "none"


# ---------------------------------------------------------------- short labels

def short_labels(configs: list[Axes]) -> tuple[list[str], str]:
    """(a short label per configuration, unique, and the legend that reads them). Axes with a
    single value are left out of the labels and named once in the legend."""
    if not configs:
        return [], ""
    axes = list(configs[0])
    varying = [a for a in axes if len({c[a] for c in configs}) > 1]
    fixed = [a for a in axes if a not in varying]
    tokens = {a: _tokens(a, [c[a] for c in configs], varying) for a in varying}
    labels = [" ".join(tokens[a][c[a]] for a in varying) for c in configs]
    legend = []
    for a in varying:
        items = [t if t == str(v) or _numeric(v) else f"{t}={v}" for v, t in tokens[a].items()]
        legend.append(f"{a} {' '.join(items)}")
    if fixed:
        legend.append("all rows: " + " ".join(f"{a}={configs[0][a]}" for a in fixed))
    return labels, " · ".join(legend)


def _numeric(v: object) -> bool:
    return isinstance(v, bool | int)


def _tokens(axis: str, values: list[object], varying: list[str]) -> dict[object, str]:
    distinct = list(dict.fromkeys(values))
    if all(_numeric(v) for v in distinct):
        # guest_pan -> p0/p1: the shortest prefix of the axis's last word unique among the numeric axes
        words = {a: a.split("_")[-1] for a in varying}
        n = 1
        while n < len(words[axis]) and any(w[:n] == words[axis][:n] for a, w in words.items() if a != axis):
            n += 1
        stem = words[axis][:n]
        return {v: f"{stem}{int(v)}" for v in distinct}
    names = [str(v) for v in distinct]
    if all(len(x) <= 4 for x in names):
        return {v: str(v) for v in distinct}
    short = [_abbrev(x) for x in names]
    if len(set(short)) == len(short):
        return dict(zip(distinct, short, strict=True))
    return {v: str(v) for v in distinct}


def _abbrev(name: str) -> str:
    parts = [p for p in name.replace("-", "_").split("_") if p]
    if len(name) <= 4:
        return name
    return "".join(p[0] for p in parts) if len(parts) > 1 else name[:3]


# ---------------------------------------------------------------- cells of the full comparison

def cell(s: dict, keys: Sequence[str]) -> str:
    """A scenario's outcomes `keys` in a few characters: o ok, F fault, - not run, then the
    PSTATE values (e.g. `FoFF 10`)."""
    if s["status"] != "poweroff":
        return f"RUN {s['status']}"
    o = outcomes(s)
    groups = ["".join(OUTCOME_MARK.get(o.get(k, "-"), "?") for k in keys if not k.endswith(" after"))]
    run = ""
    for k in keys:   # one-digit values run together (PAN, UAO: "10"), longer ones stand apart
        if k.endswith(" after"):
            v = o.get(k, "?")
            if len(v) == 1:
                run += v
                continue
            groups += [run, v]
            run = ""
    return " ".join(g for g in [*groups, run] if g)


def cell_legend(keys: Sequence[str]) -> str:
    probes = [k for k in keys if not k.endswith(" after")]
    fields = [k.removesuffix(" after") for k in keys if k.endswith(" after")]
    parts = []
    if probes:
        parts.append(f"{', '.join(probes)} (o ok, F fault, - not run)")
    if fields:
        parts.append(f"then {', '.join(fields)} after the return (one-digit values run together)")
    return "cells: " + "; ".join(parts) if parts else ""


# ---------------------------------------------------------------- kernel phases of a run

@dataclass(frozen=True)
class Phase:
    name: str
    start: int
    end: int


def phases(s: dict, end: int) -> list[Phase]:
    """The kernel phases a scenario went through (world.PHASES), from the instruction counts
    of its observation points and guest exit; a phase whose start was not reached is left out."""
    o = Observations.from_json(s["observations"])
    at = {name: p.icount for name, p in o.points.items()}
    if o.exit is not None:
        at["guest exit"] = o.exit.icount
    starts = [(name, at[label]) for name, label in PHASES if label in at]
    starts.sort(key=lambda x: x[1])
    return [Phase(name, t, starts[i + 1][1] if i + 1 < len(starts) else end) for i, (name, t) in enumerate(starts)]


def exposure_window(s: dict) -> Phase | None:
    """EL2 with PAN=0 after the guest exit (observe.py's window), as a span."""
    o = Observations.from_json(s["observations"])
    if not o.window.opened or o.exit is None:
        return None
    t = o.exit.icount
    n = o.window.instructions
    if n is None:
        return None
    return Phase(f"exposure window: EL2 with PAN=0, {n} instructions", t, t + n)


# ---------------------------------------------------------------- the answer

def answer(result: dict, *, brief: bool = False) -> str:
    """One paragraph: what holds, what fails and under which conditions, from the verdicts
    (`brief`: claims by id only, for the terminal where the table follows)."""
    claims = result["claims"]
    h = result["harness"]
    variants, _rows = matrix_rows(result)
    by: dict[str, list[dict]] = {}
    for c in claims:
        by.setdefault(c["verdict"], []).append(c)
    n = len(result["scenarios"])
    quirks = h.get("quirks") or []
    parts = [f"Run on {n} scenario{'s' * (n != 1)}"
             + (f" under {_series(variants)}" if variants else "")
             + (f", on a deliberately wrong architecture ({', '.join(quirks)})" if quirks else ", under the Arm rules")
             + f", the review's {len(claims)} claims come out as follows."]
    def who(c: dict) -> str:
        return c["id"] if brief else f"{c['id']} ({c['role']}: {_first_clause(c['claim'])})"

    if by.get("holds"):
        parts.append(f"{_count(by['holds'])} wherever {'it is' if len(by['holds']) == 1 else 'they are'} tested: "
                     f"{_series(who(c) for c in by['holds'])}.")
    if by.get("fails"):
        parts.append(f"{_count(by['fails'], 'fail')} in every scenario that tests "
                     f"{'it' if len(by['fails']) == 1 else 'them'}: {_series(who(c) for c in by['fails'])}.")
    if by.get("conditional"):
        parts.append(f"{_count(by['conditional'])} only under conditions: "
                     + "; ".join(f"{who(c)} when {' or when '.join(c['conditions'])}" for c in by["conditional"])
                     + ".")
    if by.get("undecided"):
        parts.append(f"No scenario of this run tests {_series(c['id'] for c in by['undecided'])}.")
    return " ".join(parts)


def _first_clause(text: str) -> str:
    """A claim's text up to its first clause break outside parentheses."""
    depth = 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and ch in ".;:" and text[i + 1:i + 2] in (" ", ""):
            return text[:i]
    return text


def _count(cs: list[dict], verb: str = "hold") -> str:
    n = len(cs)
    return f"{n} claim{'s' * (n != 1)} {verb}{'s' * (n == 1)}"


def _series(items: Iterable[str]) -> str:
    xs = list(items)
    if len(xs) <= 1:
        return "".join(xs)
    return ", ".join(xs[:-1]) + " and " + xs[-1]
