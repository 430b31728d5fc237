"""Fuzz the `scenarios` command's user input (issue 13): TOML scenario files and variant diffs.

Generated TOML documents (valid structure with wild values, wrong types, unknown keys, paths,
huge numbers; random bytes; byte-mutated example.toml) and diffs mutated from the real ones
(asm/variants/*.diff, scenarios/late-pan-reset.diff: truncated hunks, wrong counts, wrong context,
binary junk, hostile paths) run through `python -m harness scenarios --user FILE --no-reports
--json --only 'user/*'` in a fuzzkit worker, so each example runs at most a few scenarios. The
property is fuzzkit's (status 0/1/2, one line for 2, no traceback, no signal death, bounded time
and memory) plus: a run that ends 0 reports every user scenario the file defines.
`make test` runs fuzzkit.examples() per surface; `make test-slow` (PSTATE_FUZZ_SLOW=1) 2,000."""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from pathlib import Path

import pytest
from fuzzkit import Worker, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.scenarios.scenario import CPUS
from harness.scenarios.user import NAME, OUTCOMES
from harness.scenarios.world import (
    CALLERS,
    EXIT_CAUSES,
    EXITS_FROM,
    GUEST_ELS,
    PROBES,
    VARIANTS_DIR,
    variant_names,
)

ROOT = Path(__file__).resolve().parents[1]

EXAMPLE_TOML = ROOT / "scenarios" / "example.toml"
REAL_DIFFS = sorted(VARIANTS_DIR.glob("*.diff")) + [ROOT / "scenarios" / "late-pan-reset.diff"]
GOOD_DIFF = "good.diff"   # a copy of late-pan-reset.diff beside every generated TOML

_FUZZ = settings(max_examples=examples(), deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.function_scoped_fixture])
_counter = itertools.count()


@pytest.fixture(scope="module")
def worker():
    with Worker() as w:
        yield w


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> Path:
    """One directory for every example's files: the good diff is shared, so the worker's
    assembly cache serves the examples that use it."""
    d = tmp_path_factory.mktemp("fuzz-scenarios")
    (d / GOOD_DIFF).write_bytes((ROOT / "scenarios" / "late-pan-reset.diff").read_bytes())
    (d / "sub").mkdir()
    return d


def run_user_file(worker: Worker, toml: Path, expected_names: list[str] | None) -> None:
    r = worker.cli(["scenarios", "--no-reports", "--json", "--user", str(toml), "--only", "user/*"])
    r.check()
    if r.status == 0 and expected_names is not None:   # nothing lost: every user scenario reported
        got = {u["id"] for u in json.loads(r.stdout)["user"]}
        assert got == {f"user/{n}" for n in expected_names}, f"input: {r.what}\n{toml.read_bytes()[:2000]!r}"


# ---------------------------------------------------------------- TOML documents

def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k, ensure_ascii=False)


class Raw(str):
    """A TOML literal written as is (values Python cannot round-trip through str())."""


RAW_LITERALS = [Raw("9" * 5000), Raw("0x" + "f" * 20000), Raw("1e99999"), Raw("-inf"), Raw("nan"),
                Raw("[" * 1500 + "]" * 1500), Raw("{a = " * 1200 + "1" + "}" * 1200), Raw("1979-05-27T07:32:00Z"),
                Raw("07:32:00"), Raw("'''\nmulti\nline'''"), Raw('"\\u0000"'), Raw('"a\\nb"')]


def toml_value(v: object) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v > 0 else "-inf") if v in (float("inf"), float("-inf")) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


wild = st.one_of(
    st.booleans(), st.integers(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70), st.floats(),
    st.text(max_size=30), st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(-3, 3), max_size=2),
    st.sampled_from(["", " ", "\n", "../../etc/passwd", "/etc/passwd", "a\x00b", "x" * 300, "ü", "[x]"]),
    st.sampled_from(RAW_LITERALS),
)
names = st.one_of(st.from_regex(NAME, fullmatch=True).filter(lambda s: len(s) < 30), st.sampled_from(["a", "b", "a"]))


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy = wild) -> st.SearchStrategy:
    return st.integers(0, 9).flatmap(lambda i: good if i < 8 else bad)


def scenario_tables(variants: list[str]) -> st.SearchStrategy:
    fields = {
        "name": mostly(names),
        "variant": mostly(st.sampled_from(variant_names() + variants + ["nope"])),
        "cpu": mostly(st.sampled_from(CPUS)),
        "mode": mostly(st.sampled_from(("vhe", "nvhe"))),
        "caller": mostly(st.sampled_from(CALLERS)),
        "guest_el": mostly(st.sampled_from(GUEST_ELS)),
        "guest_pan": mostly(st.sampled_from((0, 1))),
        "guest_uao": mostly(st.sampled_from((0, 1))),
        "exit": mostly(st.sampled_from(EXIT_CAUSES)),
        "hyp_probes": mostly(st.booleans()),
        "expect": mostly(st.dictionaries(mostly(st.sampled_from(PROBES), st.text(max_size=8)),
                                         mostly(st.sampled_from(OUTCOMES)), max_size=3)),
        "description": mostly(st.text(max_size=20)),
    }
    name = fields.pop("name")
    return st.fixed_dictionaries({"name": name}, optional=fields).flatmap(
        lambda d: mostly(st.just(d), st.one_of(  # now and then an unknown key, or no name
            st.builds(lambda k, v: {**d, k: v}, st.text(min_size=1, max_size=8), wild),
            st.just({k: v for k, v in d.items() if k != "name"}))))


variant_tables = st.fixed_dictionaries(
    {"diff": mostly(st.sampled_from([GOOD_DIFF] * 6 + ["missing.diff", "sub", "../good.diff", "sub/../" + GOOD_DIFF,
                                                       "/etc/passwd", "../../etc/passwd"]))},
    optional={"matrix": mostly(st.booleans()), "description": mostly(st.text(max_size=20))},
).flatmap(lambda d: mostly(st.just(d), st.builds(lambda k, v: {**d, k: v}, st.text(min_size=1, max_size=8), wild)))


@st.composite
def documents(draw) -> tuple[str, list[str] | None]:
    """(TOML text, the scenario names it defines when it is a well-formed document)."""
    vnames = draw(st.lists(mostly(st.sampled_from(["f", "g", "late-x"]), st.text(min_size=1, max_size=10)),
                           max_size=2, unique=True))
    variants = {n: draw(mostly(variant_tables)) for n in vnames}
    scens = draw(st.lists(scenario_tables([n for n in vnames if isinstance(n, str)]), max_size=3))
    out = []
    top = draw(st.sampled_from(["tables", "tables", "tables", "inline", "junk-top"]))
    if top == "junk-top":
        out.append(f"{draw(st.sampled_from(['scenario', 'variant', 'other']))} = {toml_value(draw(wild))}")
    for n, spec in variants.items():
        if isinstance(spec, dict):
            out.append(f"[variant.{_key(n)}]")
            out += [f"{_key(k)} = {toml_value(v)}" for k, v in spec.items()]
        else:
            out.append(f"variant.{_key(n)} = {toml_value(spec)}")
    if top == "inline":
        out.append("scenario = " + toml_value(scens))
    else:
        for spec in scens:
            out.append("[[scenario]]")
            out += [f"{_key(k)} = {toml_value(v)}" for k, v in spec.items()]
    text = "\n".join(out) + "\n"
    try:   # what the document defines is what TOML reads in it, whatever was meant
        parsed = tomllib.loads(text).get("scenario")
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        return text, None
    ok = isinstance(parsed, list) and all(isinstance(s, dict) for s in parsed)
    return text, [s.get("name") for s in parsed] if ok else None


def mutate_bytes(data: bytes, draw) -> bytes:
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "dup"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
        elif op == "cut":
            data = data[:i]
        elif op == "insert":
            data = data[:i] + draw(st.binary(min_size=1, max_size=20)) + data[i:]
        elif op == "delete":
            data = data[:i] + data[i + draw(st.integers(1, 40)):]
        elif op == "dup":
            data = data[:i] + data[i:i + 40] + data[i:]
    return data


@st.composite
def toml_files(draw) -> tuple[bytes, list[str] | None]:
    kind = draw(st.sampled_from(["generated"] * 6 + ["mutated-example", "random-bytes"]))
    if kind == "generated":
        text, defined = draw(documents())
        return text.encode("utf-8", "surrogatepass"), defined
    if kind == "random-bytes":
        return draw(st.binary(max_size=300)), None
    return mutate_bytes(EXAMPLE_TOML.read_bytes().replace(b"late-pan-reset.diff", GOOD_DIFF.encode()), draw), None


def check_toml_file(worker: Worker, box: Path, doc: tuple[bytes, list | None]) -> None:
    data, defined = doc
    path = box / f"doc{next(_counter)}.toml"
    path.write_bytes(data)
    run_user_file(worker, path, defined)


@_FUZZ
@given(doc=toml_files())
def test_fuzz_toml_scenario_files(worker, box, doc):
    check_toml_file(worker, box, doc)


@pytest.mark.slow
@_FUZZ
@given(doc=toml_files())
def test_fuzz_toml_scenario_files_slow(worker, box, doc):
    check_toml_file(worker, box, doc)


# ---------------------------------------------------------------- diffs

HOSTILE_PATHS = ["b/../../etc/passwd", "/etc/passwd", "b/kvm/nope.S", "b/kvm", "", "b/kvm/entry.S\tjunk",
                 "b/asm/kvm/entry.S", "/dev/null", "b/" + "x" * 300, "b/kvm/\x00.S"]


# Code a variant may add: valid, invalid, hanging, trapping (big directive operands are the
# assembler fuzzer's surface).
ASM_SOUP = ["nop", "1:  b 1b", "b .", "bogus x1, x2", "msr pan, #1", "msr pan, #0", "msr uao, #1", "eret",
            "hvc #0", "svc #0", "brk #1", "udf #0", "wfi", "isb", "host_main:", "__guest_exit:", ".inst 0xffffffff",
            "ldr x0, =nosuchlabel", "mov x0, #0x123456789", "msr daifclr, #0xf", "ALTERNATIVE(nop, nop, ARM64_HAS_PAN)",
            "alternative_if ARM64_HAS_PAN", ".space 64", ".balign 4096", "ret", "b __guest_exit", "ldr x1, [x0]",
            "x0", "// comment", ""]


def _bump_new_count(lines: list[str], i: int) -> None:
    """Add one to the new-line count of the hunk that line i is in (after inserting a + line)."""
    j = next((n for n in range(i, -1, -1) if lines[n].startswith("@@")), None)
    m = j is not None and re.match(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)", lines[j])
    if m:
        lines[j] = f"@@ -{m[1]},{m[2] or 1} +{m[3]},{int(m[4] or 1) + 1} @@{m[5]}"


@st.composite
def mutated_diffs(draw) -> bytes:
    lines = draw(st.sampled_from(REAL_DIFFS)).read_text().split("\n")
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["truncate", "delete", "dup", "junk", "counts", "tag", "path", "context",
                                   "swap", "crlf", "code", "code", "code", "add", "add", "add"]))
        added = [n for n, s in enumerate(lines) if s.startswith("+") and not s.startswith("+++")]
        if op == "code" and added:      # the diff stays well-formed; what it adds changes
            lines[draw(st.sampled_from(added))] = "+    " + draw(st.sampled_from(ASM_SOUP))
        elif op == "add" and added:
            at = draw(st.sampled_from(added))
            lines.insert(at + 1, "+" + draw(st.sampled_from(ASM_SOUP)))
            _bump_new_count(lines, at)
        elif op == "truncate":
            lines = lines[:i] + ([lines[i][:draw(st.integers(0, len(lines[i])))]] if draw(st.booleans()) else [])
        elif op == "delete":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "junk":
            lines[i] = draw(st.text(max_size=40))
        elif op == "counts":
            hunks = [n for n, s in enumerate(lines) if s.startswith("@@")] or [i]
            j = draw(st.sampled_from(hunks))
            big = st.one_of(st.integers(0, 12), st.integers(0, 10 ** 12))
            lines[j] = f"@@ -{draw(big)},{draw(big)} +{draw(big)},{draw(big)} @@"
        elif op == "tag":
            lines[i] = draw(st.sampled_from(" +-\\@x")) + lines[i][1:]
        elif op == "path":
            heads = [n for n, s in enumerate(lines) if s.startswith(("+++ ", "--- "))] or [i]
            j = draw(st.sampled_from(heads))
            lines[j] = lines[j][:4] + draw(st.sampled_from(HOSTILE_PATHS))
        elif op == "context":
            lines[i] = lines[i] + draw(st.sampled_from(["x", "  ", " // y", "\tz"]))
        elif op == "swap" and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "crlf":
            lines = [s + "\r" for s in lines]
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        data = mutate_bytes(data, draw)
    return data


configs = st.tuples(st.sampled_from(CPUS), st.sampled_from(GUEST_ELS)).flatmap(lambda c: st.fixed_dictionaries({
    "cpu": st.just(c[0]),
    "mode": st.sampled_from(("vhe", "nvhe") if c[0] == "max" else ("nvhe",)),
    "caller": st.sampled_from(CALLERS),
    "guest_el": st.just(c[1]),
    "guest_pan": st.sampled_from((0, 1)),
    "exit": st.sampled_from(EXITS_FROM[c[1]]),
}))


def check_diff(worker: Worker, box: Path, diff: bytes, config: dict) -> None:
    n = next(_counter)
    (box / f"m{n}.diff").write_bytes(diff)
    toml = box / f"m{n}.toml"
    toml.write_text(f'[variant.m]\ndiff = "m{n}.diff"\n\n[[scenario]]\nname = "s"\nvariant = "m"\n'
                    + "".join(f"{k} = {toml_value(v)}\n" for k, v in config.items()))
    run_user_file(worker, toml, ["s"])


@_FUZZ
@given(diff=mutated_diffs(), config=configs)
def test_fuzz_variant_diffs(worker, box, diff, config):
    check_diff(worker, box, diff, config)


@pytest.mark.slow
@_FUZZ
@given(diff=mutated_diffs(), config=configs)
def test_fuzz_variant_diffs_slow(worker, box, diff, config):
    check_diff(worker, box, diff, config)
