"""Fuzz: debugger command lines (issue 13).

Sequences of command lines generated from the command set, with ordinary, extreme and
malformed arguments, run against a loaded small program and a loaded scenario in a fuzzkit
worker (memory limit, timeout, a crash or hang reported with its input). Property: every command
returns valid rich markup or raises one DebuggerError line that is not an internal error; the
session survives (a command after the sequence still works). Some examples go through the
`python -m harness debug` front end instead (statuses 0/1, one stderr line per failed command).
"""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path

import fuzzkit
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.text import Text

from harness.debugger.commands import COMMANDS
from harness.debugger.core import Debugger, DebuggerError
from harness.debugger.points import CATCH_FILTERS
from harness.debugger.render import PSTATE_FIELDS, SYSREG_GROUPS

ALIASES = COMMANDS.aliases()
EXCEPTION_CAUSES = tuple(CATCH_FILTERS)

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = str(ROOT / "tests/data/debug/hello.S")
SCENARIO = ("max-vhe-kvm_run-pan1-uao0-hvc", "patch-2017")
LABELS = ["_start", "next", "done", "leaf", "msg", "__guest_exit", "__guest_exit_end", "guest_entry", "__kvm_vcpu_run",
          "host_main", "panic", "el1_sync", "__kvm_hyp_vector", "guest_irq_point", "kvm_exit_code", "nosuchlabel"]
SOURCE_SELF = "@self"  # replaced in the worker by a script that sources itself

# ---------------------------------------------------------------- strategies

_ints = st.one_of(
    st.integers(-3, 40),
    st.sampled_from([0x40080000, 0x4008000C, 0x40000000, 0x4FFFFFF8, 0x50000000, 0x9000000, 0x9000018, 0xDEADBEEF00,
                     (1 << 64) - 4, (1 << 64) - 1, 1 << 64, (1 << 65) + 3, -(1 << 63), -(1 << 64), 10**6, 10**6 + 1,
                     10**20]),
    st.integers(-(1 << 70), 1 << 70),
)
NUM = st.one_of(_ints.map(str), _ints.map(lambda v: hex(v)), st.sampled_from(["", "zz", "1_000", "0x", "1e3", "--1", "0b101",
                                                                               "9" * 5000]))
REG = st.sampled_from(["$x0", "$x1", "$x30", "$x31", "x99", "$w2", "$sp", "$pc", "$lr", "pc", "$cpsr", "$xzr"])
LOC = st.one_of(
    st.sampled_from(LABELS),
    st.tuples(st.sampled_from(LABELS), st.sampled_from(["+", "-"]), NUM).map("".join),
    NUM,
    st.tuples(REG, st.sampled_from(["", "+", "-"]), st.sampled_from(["", "4", "0x10", "zz"])).map("".join),
    st.sampled_from(["hello.S:9", "entry.S:40", "asm/kvm/entry.S:64", "nofile.S:1", ":", "*0x40080000", "*", "'q"]),
    st.text(max_size=12),
)
COUNT = st.one_of(st.just(""), st.integers(-2, 300).map(str), st.sampled_from(["1000000", "1000001", "99999999999999999999",
                                                                             "x", "0"]))
SYSREG = st.sampled_from(["HCR_EL2", "SCTLR_EL1", "sctlr_el12", "SPSR_EL2", "TPIDR_EL2", "SP_EL0", "SP_EL1", "VBAR_EL2",
                          "ESR_EL2", "NOT_A_REG", "CurrentEL", "DAIF", "NZCV", "S3_4_C1_C1_0", *SYSREG_GROUPS])
FIELD = st.one_of(st.sampled_from(PSTATE_FIELDS), st.sampled_from(["spsel", "nrw", "dit", "xyz", "PAN", ""]))
LHS = st.one_of(
    REG, FIELD.map(lambda f: f"pstate.{f}"), SYSREG,
    st.tuples(st.sampled_from(["*", "{char}", "{short}", "{int}", "{long}", "{float}", "{char}*"]), LOC).map("".join),
)
TARGET = st.sampled_from([PROGRAM, "/", "/nonexistent.S", "/dev/null", ROOT / "README.md", "nope",
                          SCENARIO[0], "user/late-pan-reset-vhe-guest-pan0"]).map(str)


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


COMMAND = st.one_of(
    st.tuples(st.sampled_from(["stepi", "si", "step", "s", "next", "n", "reverse-stepi", "rsi"]), COUNT).map(lambda t: _join(*t)),
    st.sampled_from(["continue", "c", "finish", "reverse-continue", "rc", "help", "list", "info breakpoints", "delete",
                     "info exceptions", "info pstate", "info registers", "info sysregs", "catch eret", "quit"]),
    st.tuples(st.sampled_from(["until", "u", "break", "b", "tbreak", "list", "disassemble"]), LOC).map(lambda t: _join(*t)),
    st.tuples(st.just("disassemble"), LOC, COUNT).map(lambda t: _join(*t)),
    st.tuples(st.just("delete"), st.lists(NUM, max_size=3).map(" ".join)).map(lambda t: _join(*t)),
    st.tuples(st.just("watch"), st.one_of(FIELD.map(lambda f: f"pstate.{f}"), SYSREG, LOC.map(lambda v: "*" + v),
                                          st.tuples(LOC, NUM).map(lambda t: f"*{t[0]} {t[1]}"))).map(lambda t: _join(*t)),
    st.tuples(st.just("catch"), st.sampled_from(["exception", "eret", "signal", ""]),
              st.lists(st.sampled_from([*EXCEPTION_CAUSES, "sync", "el0", "el2", "el4", "teleport"]), max_size=3)
              .map(" ".join)).map(lambda t: _join(*t)),
    st.tuples(st.sampled_from(["info registers", "info r", "info sysregs", "info exceptions", "i", "info"]),
              st.lists(st.one_of(REG.map(lambda r: r.lstrip("$")), SYSREG, NUM), max_size=3).map(" ".join))
    .map(lambda t: _join(*t)),
    st.tuples(st.sampled_from(["x/", "x/4gx", "x/2i", "x/16bx", "x/3wd", "x/0x", "x/99999999gx", "x/4qq", "x/"]),
              st.sampled_from(["", "4", "100000", "g", "x", "bx"]), LOC).map(lambda t: f"{t[0]}{t[1]} {t[2]}"),
    st.tuples(st.just("set"), st.sampled_from(["", "var "]), LHS, st.sampled_from(["=", " = ", "=="]),
              st.one_of(NUM, REG, LOC)).map(lambda t: f"{t[0]} {t[1]}{t[2]}{t[3]}{t[4]}"),
    st.tuples(st.just("inject"), st.sampled_from(["irq", "fiq", "serror", "IRQ", "nmi", ""])).map(lambda t: _join(*t)),
    st.tuples(st.sampled_from(["load", "run"]), TARGET).map(lambda t: _join(*t)),
    st.tuples(st.just("load scenario"), st.sampled_from([SCENARIO[0], "nope", "v5.11/" + SCENARIO[0], ""]),
              st.sampled_from(["", "--variant v4.13", "--variant", "--variant nope"])).map(lambda t: _join(*t)),
    st.tuples(st.just("source"), st.sampled_from(["/", "/dev/null", "/dev/zero", "/nonexistent", SOURCE_SELF])).map(
        lambda t: _join(*t)),
    st.tuples(st.sampled_from([*COMMANDS, *ALIASES]), st.text(max_size=16)).map(lambda t: f"{t[0]} {t[1]}"),
    st.text(max_size=24),
)
SESSION = st.lists(COMMAND, min_size=1, max_size=8)


# ---------------------------------------------------------------- worker side

def debugger_session(target: str, variant: str | None, lines: list[str]) -> int:
    """Runs in the worker: every command returns text or one error line; the session survives."""
    gc.collect()  # the previous example's boards (Unicorn reserves ~1.4 GB of address space each)
    with tempfile.TemporaryDirectory() as tmp:
        selfsrc = Path(tmp) / "self.gdb"
        selfsrc.write_text(f"info pstate\nsource {selfsrc}\n")
        d = Debugger()
        d.load(target, variant)
        shown = bytearray()
        d.output = shown.extend
        errors = 0
        for line in lines:
            line = line.replace(SOURCE_SELF, str(selfsrc))
            try:
                out = d.execute(line)
            except DebuggerError as e:
                msg = str(e)
                assert msg and "\n" not in msg, f"{line!r}: error of {msg.count(chr(10)) + 1} lines: {msg!r}"
                assert "internal error" not in msg, f"{line!r}: {msg}"
                errors += 1
                continue
            assert isinstance(out, str)
            Text.from_markup(out)  # what the front end prints must be valid markup
        if d.board is not None:
            Text.from_markup(d.execute("info pstate"))  # the session survived
        return errors


def _check_cli(w: fuzzkit.Worker, target: list[str], lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        selfsrc = Path(tmp) / "self.gdb"
        selfsrc.write_text(f"info pstate\nsource {selfsrc}\n")
        text = "\n".join(line.replace(SOURCE_SELF, str(selfsrc)).replace("\n", " ") for line in lines) + "\n"
        r = w.cli(["debug", *target, "--no-color"], stdin=text, timeout=180).check(statuses=(0, 1))
    errs = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert all(ln.startswith("<stdin>:") and "internal error" not in ln for ln in errs), errs[:5]


def _fuzz(w: fuzzkit.Worker, target: tuple[str, str | None], lines: list[str], via_cli: bool) -> None:
    if via_cli:
        _check_cli(w, [target[0]] + (["--variant", target[1]] if target[1] else []), lines)
    else:
        w.call("test_fuzz_debugger:debugger_session", target[0], target[1], lines, timeout=180,
               what=f"debug {target[0]}: {lines!r}").check()


@pytest.fixture(scope="module")
def worker():
    with fuzzkit.Worker(timeout=180) as w:
        yield w


TARGETS = {"program": (PROGRAM, None), "scenario": SCENARIO}


def _settings(n: int):
    # make test: the same examples every run; the slow suite explores new ones each time
    return settings(max_examples=n, deadline=None, database=None, derandomize=os.environ.get("PSTATE_FUZZ_SLOW") != "1",
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_debugger_commands(worker, target):
    @_settings(fuzzkit.examples(fast=100))
    @given(lines=SESSION, via_cli=st.integers(0, 7).map(lambda k: k == 0))
    def run(lines, via_cli):
        _fuzz(worker, TARGETS[target], lines, via_cli)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_debugger_commands_slow(worker, target):
    @_settings(fuzzkit.examples(fast=100, slow=1000))
    @given(lines=SESSION, via_cli=st.integers(0, 7).map(lambda k: k == 0))
    def run(lines, via_cli):
        _fuzz(worker, TARGETS[target], lines, via_cli)

    run()
