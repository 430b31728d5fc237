"""The debugger's commands, each registered once with its help, aliases, argument parser and
what it needs (as pwndbg's `@ArgparsedCommand(parser, aliases=...)` with `@OnlyWhenRunning`):

    @COMMANDS.command("stepi", "stepi [N]: execute N instructions (si)", aliases=("si",),
                      args=count_arg, needs=Needs.RUNNING)
    def stepi(d, n): ...

`execute` finds the command a word names (an alias, the name, or a prefix of one name only),
parses its arguments, checks what it needs, and runs it. `help` lists the table in this order.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from harness.arch.pstate import PState, field_max
from harness.data import source_path
from harness.debugger import render
from harness.debugger.base import DebuggerError, Needs, checked_pstate, fit, parse_int
from harness.debugger.execution import MAX_STEP_INSNS, Stop, source_line
from harness.debugger.points import pstate_field
from harness.machine.board import Board, BoardError
from harness.trace.events import StopReason

if TYPE_CHECKING:
    from harness.debugger.core import Debugger

MAX_COUNT = 1_000_000  # the largest N of `stepi N`, `step N`, ... (longer runs: continue, until)
MAX_EXAMINE = 0x10000  # bytes `x` shows at once
MAX_DISASSEMBLE = 4096  # instructions `disassemble` shows at once
MAX_SOURCE_DEPTH = 8  # `source` inside `source`
MAX_SOURCE_BYTES = 1 << 20

Parser = Callable[[str, "str | None"], Any]  # (the rest of the line, a /FMT suffix) -> arguments
Run = Callable[["Debugger", Any], str]  # (the session, the parsed arguments) -> what to print


@dataclass(frozen=True)
class Command:
    name: str
    usage: str  # what `help` says
    run: Run
    parse: Parser
    aliases: tuple[str, ...] = ()
    needs: Needs = Needs.NOTHING


class Registry(dict[str, Command]):
    """Commands by name, in the order they were registered."""

    def command(self, name: str, usage: str, *, aliases: tuple[str, ...] = (), args: Parser | None = None,
                needs: Needs = Needs.NOTHING) -> Callable[[Run], Run]:
        def register(run: Run) -> Run:
            self[name] = Command(name, usage, run, args or no_args, aliases, needs)
            return run

        return register

    def aliases(self) -> dict[str, str]:
        return {a: c.name for c in self.values() for a in c.aliases}

    def find(self, word: str) -> Command | list[str]:
        """The command `word` names: an alias, the name, or a prefix of one name only; else the
        names it is a prefix of (none, or several)."""
        name = self.aliases().get(word, word)
        if name in self:
            return self[name]
        cands = [n for n in self if n.startswith(word)]
        return self[cands[0]] if len(cands) == 1 else cands


COMMANDS = Registry()
INFO = Registry()  # `info WHAT`


def execute(d: Debugger, line: str) -> str:
    """Run one command line (raises DebuggerError)."""
    line = line.strip()
    if not line or line.startswith("#"):
        return ""
    m = re.fullmatch(r"(\S+?)(/\S+)?(?:\s+(.*))?", line, re.S)
    assert m is not None
    word, fmt, rest = m.group(1), m.group(2), (m.group(3) or "").strip()
    cmd = COMMANDS.find(word)
    if isinstance(cmd, list):
        raise DebuggerError(f"unknown command {word}" + (f" (ambiguous: {', '.join(cmd)})" if cmd else "; try help"))
    return invoke(d, cmd, cmd.parse(rest, fmt))


def invoke(d: Debugger, cmd: Command, args: Any) -> str:
    if cmd.needs is not Needs.NOTHING:
        d.require(cmd.needs)
    return cmd.run(d, args)


def _board(d: Debugger) -> Board:
    """The board of a command that declared it needs one."""
    assert d.board is not None
    return d.board


# ---------------------------------------------------------------- argument parsers

def no_args(rest: str, fmt: str | None) -> None:
    return None


def text_arg(rest: str, fmt: str | None) -> str:
    return rest


def count(text: str) -> int:
    """N of `stepi N`, `info exceptions N`, ...: 1..MAX_COUNT."""
    if not text:
        return 1
    try:
        n = parse_int(text)
    except ValueError:
        raise DebuggerError(f"not a count: {text}") from None
    if not 1 <= n <= MAX_COUNT:
        raise DebuggerError(f"count must be 1..{MAX_COUNT:,} (continue or until run further)")
    return n


def count_arg(rest: str, fmt: str | None) -> int:
    return count(rest)


def words_arg(rest: str, fmt: str | None) -> list[str]:
    return rest.split()


def required(usage: str) -> Parser:
    """The rest of the line, which must not be empty (else `usage`)."""

    def parse(rest: str, fmt: str | None) -> str:
        if not rest:
            raise DebuggerError(usage)
        return rest

    return parse


# ---------------------------------------------------------------- execution

def _lines(d: Debugger, n: int, one: Callable[[int], Stop], reason: StopReason) -> str:
    """`step N` / `next N`: N lines within MAX_STEP_INSNS instructions in all."""
    b = _board(d)
    end = b.icount + MAX_STEP_INSNS
    st = None
    for _ in range(n):
        if b.icount >= end:
            st = Stop(StopReason.LIMIT, f"{reason}: no stop within {MAX_STEP_INSNS:,} instructions")
            break
        st = one(end - b.icount)
        if st.reason != reason:
            break
    assert st is not None
    return d.show_stop(st)


@COMMANDS.command("stepi", "stepi [N]: execute N instructions (si)", aliases=("si",), args=count_arg,
                  needs=Needs.RUNNING)
def _stepi(d: Debugger, n: int) -> str:
    return d.show_stop(d.stepi(n))


@COMMANDS.command("step", "step [N]: to the next source line (s)", aliases=("s",), args=count_arg, needs=Needs.RUNNING)
def _step(d: Debugger, n: int) -> str:
    return _lines(d, n, d.step_line, StopReason.STEP)


@COMMANDS.command("next", "next [N]: next source line, over bl/blr (n)", aliases=("n",), args=count_arg,
                  needs=Needs.RUNNING)
def _next(d: Debugger, n: int) -> str:
    return _lines(d, n, d.next_line, StopReason.NEXT)


@COMMANDS.command("finish", "finish: run until the current function returns to x30 (fin)", aliases=("fin",),
                  needs=Needs.RUNNING)
def _finish(d: Debugger, _: None) -> str:
    return d.show_stop(d.finish())


@COMMANDS.command("continue", "continue: until a breakpoint, watchpoint, catchpoint or the end (c); Ctrl-C interrupts",
                  aliases=("c", "cont"), needs=Needs.RUNNING)
def _continue(d: Debugger, _: None) -> str:
    return d.show_stop(d.cont())


@COMMANDS.command("until", "until LOC: run to LOC (u)", aliases=("u",), args=text_arg, needs=Needs.RUNNING)
def _until(d: Debugger, loc: str) -> str:
    return d.show_stop(d.until(loc)) if loc else _next(d, 1)


# ---------------------------------------------------------------- breakpoints, watch- and catchpoints

@COMMANDS.command("break", "break LOC: LOC is a label, label+off, an address or file:line (b)", aliases=("b",),
                  args=text_arg, needs=Needs.LOADED)
def _break(d: Debugger, loc: str) -> str:
    return d.add_breakpoint(loc or hex(_board(d).pc))


@COMMANDS.command("tbreak", "tbreak LOC: a breakpoint that is deleted when hit", aliases=("tb",), args=text_arg,
                  needs=Needs.LOADED)
def _tbreak(d: Debugger, loc: str) -> str:
    return d.add_breakpoint(loc or hex(_board(d).pc), temporary=True)


def _numbers(rest: str, fmt: str | None) -> list[int]:
    try:
        return [int(x) for x in rest.split()]
    except ValueError:
        raise DebuggerError(f"delete: numbers, not {rest}") from None


@COMMANDS.command("delete", "delete [N...]: delete breakpoints/watchpoints (all without N) (d)", aliases=("d",),
                  args=_numbers)
def _delete(d: Debugger, nums: list[int]) -> str:
    return d.delete(nums)


@COMMANDS.command("watch", "watch pstate.FIELD | SYSREG | *ADDR [LEN]: stop when it changes / is written",
                  args=required("watch pstate.FIELD | SYSREG | *ADDR [LEN]"), needs=Needs.LOADED)
def _watch(d: Debugger, spec: str) -> str:
    return d.add_watch(spec)


@COMMANDS.command("catch", "catch exception [svc|hvc|brk|undefined|wfx|abort|data_abort|inst_abort|irq|fiq|serror|...] "
                  "[elN] | catch eret", args=words_arg, needs=Needs.LOADED)
def _catch(d: Debugger, args: list[str]) -> str:
    return d.add_catch(args)


# ---------------------------------------------------------------- state

def _info_args(rest: str, fmt: str | None) -> tuple[Command, Any]:
    parts = rest.split()
    if not parts:
        raise DebuggerError("info registers|pstate|sysregs [GROUP]|exceptions|breakpoints")
    sub = INFO.find(parts[0])
    if isinstance(sub, list):
        raise DebuggerError(f"info {parts[0]}: registers, pstate, sysregs, exceptions or breakpoints")
    return sub, sub.parse(" ".join(parts[1:]), None)


@COMMANDS.command("info", "info registers | pstate | sysregs [el1|el2|el3|vhe|NAME] | exceptions [N] | breakpoints (i)",
                  aliases=("i",), args=_info_args)
def _info(d: Debugger, sub: tuple[Command, Any]) -> str:
    return invoke(d, *sub)


@INFO.command("registers", "", aliases=("r", "reg"), args=words_arg, needs=Needs.LOADED)
def _info_registers(d: Debugger, names: list[str]) -> str:
    if not names:
        return render.registers(_board(d))
    return "\n".join(_info_register(d, name) for name in names)


def _info_register(d: Debugger, name: str) -> str:
    """One register by name, as gdb's `info registers NAME`: a core register, cpsr/pstate, or a
    system register or group."""
    low = name.lower().lstrip("$")
    if low in ("pstate", "cpsr"):
        return _info_pstate(d, None)
    if re.fullmatch(r"[xw]\d+|sp|pc|lr", low):
        v = d.core_reg(low)
        return render.core_register(low, v, _board(d).location(v) if low == "pc" else "")
    return _info_sysregs(d, name)


@INFO.command("pstate", "", needs=Needs.LOADED)
def _info_pstate(d: Debugger, _: None) -> str:
    return render.pstate_info(_board(d).pstate(), d.shown_pstate)


@INFO.command("sysregs", "", args=lambda rest, fmt: rest.split()[0] if rest else None, needs=Needs.LOADED)
def _info_sysregs(d: Debugger, group: str | None) -> str:
    b = _board(d)
    if group is None:
        names = [n for g in ("el2", "el1") for n in render.SYSREG_GROUPS[g]]
    elif group.lower() in render.SYSREG_GROUPS:
        names = list(render.SYSREG_GROUPS[group.lower()])
    else:
        names = [group.upper()]
    rows = []
    for name in names:
        try:
            v = b.read_sysreg(name)
        except (KeyError, ValueError, BoardError):
            if group is not None and group.lower() not in render.SYSREG_GROUPS:
                raise DebuggerError(f"no register, system register or group {group} "
                                    f"(x0..x30, sp, pc, cpsr; groups: {', '.join(render.SYSREG_GROUPS)})") from None
            continue
        rows.append(render.sysreg(name, v))
    return "\n".join(rows)


@INFO.command("exceptions", "", args=lambda rest, fmt: count(rest.split()[0]) if rest else 20, needs=Needs.LOADED)
def _info_exceptions(d: Debugger, n: int) -> str:
    return render.exceptions(_board(d), n)


@INFO.command("breakpoints", "", aliases=("b", "break", "watchpoints"))
def _info_breakpoints(d: Debugger, _: None) -> str:
    return render.breakpoints(d.points.breakpoints.values(), d.points.watches.values())


@COMMANDS.command("x", "x/NFU ADDR: examine memory (F: x d u i; U: b h w g), e.g. x/4gx sp",
                  args=lambda rest, fmt: ((fmt or "/1gx")[1:], rest), needs=Needs.LOADED)
def _examine(d: Debugger, args: tuple[str, str]) -> str:
    fmt, loc = args
    b = _board(d)
    m = re.fullmatch(r"(\d*)([xdui]?)([bhwg]?)([xdui]?)", fmt)
    if not m or (m.group(2) and m.group(4)):
        raise DebuggerError(f"x/{fmt}: use x/NFU, e.g. x/4gx, x/8wx, x/2i")
    n = int(m.group(1) or 1)
    if n < 1:
        raise DebuggerError(f"x/{fmt}: the count must be >= 1")
    form = m.group(2) or m.group(4) or "x"
    if form == "i":
        return _disassemble(d, (loc or hex(b.pc), n))
    size = {"b": 1, "h": 2, "w": 4, "g": 8, "": 8}[m.group(3)]
    if n * size > MAX_EXAMINE:
        raise DebuggerError(f"x/{fmt}: at most {MAX_EXAMINE:#x} bytes at a time")
    addr = d.resolve(loc or hex(b.pc))
    try:
        data = b.read_mem(addr, n * size)
    except BoardError as e:
        raise DebuggerError(f"cannot read {n * size} bytes at {addr:#x}: {e}") from None
    return render.memory(b, addr, data, size, form)


def _disassemble_args(rest: str, fmt: str | None) -> tuple[str | None, int]:
    parts = rest.split()
    return (parts[0] if parts else None), (count(parts[1]) if len(parts) > 1 else 10)


@COMMANDS.command("disassemble", "disassemble [LOC] [N]: capstone, with labels and source lines (disas)",
                  aliases=("disas",), args=_disassemble_args, needs=Needs.LOADED)
def _disassemble(d: Debugger, args: tuple[str | None, int]) -> str:
    loc, n = args
    addr = d.resolve(loc) if loc else _board(d).pc
    if n > MAX_DISASSEMBLE:
        raise DebuggerError(f"disassemble: at most {MAX_DISASSEMBLE} instructions at a time")
    return render.disassembly(_board(d), addr, n)


@COMMANDS.command("list", "list [LOC]: source around LOC or the PC (l)", aliases=("l",), args=text_arg,
                  needs=Needs.LOADED)
def _list(d: Debugger, loc: str) -> str:
    b = _board(d)
    if loc:
        here = _file_line(b, loc) or source_line(b, d.resolve(loc))
    elif d.list_next is not None:
        here = (d.list_next[0], d.list_next[1] + 10)
    else:
        here = source_line(b, b.pc)
    if here is None:
        raise DebuggerError("no source line for this location")
    text = _source_text(b, here[0])
    first = max(1, here[1] - 5 if not (not loc and d.list_next) else here[1])
    if first > len(text) or here[1] < 1:
        raise DebuggerError(f"line {here[1]} is out of range: {here[0]} has {len(text)} lines")
    d.list_next = (here[0], first)
    return render.source(text, first, here[0], source_line(b, b.pc))


def _file_line(b: Board, loc: str) -> tuple[str, int] | None:
    """FILE:LINE of a source the image was assembled from, as `list` takes it: that line itself,
    as gdb lists it (its address may be a macro's, whose body is elsewhere)."""
    m = re.fullmatch(r"(.+?):(\d+)", loc.strip())
    if m is None or b.image is None:
        return None
    name = m.group(1)
    files = [*b.image.source_files, *b.image.source_texts]
    found = next((f for f in files if f == name or f.endswith("/" + name)), None)
    return (found, int(m.group(2))) if found is not None else None


def _source_text(b: Board, name: str) -> list[str]:
    """The lines of source file `name` as they were assembled: a variant's patched text, which
    the image carries, else the file on disk."""
    held = b.image.source_texts.get(name) if b.image is not None else None
    if held is not None:
        return held.splitlines()
    try:
        return source_path(name).read_text().splitlines()
    except OSError:
        raise DebuggerError(f"cannot read {name}") from None


def _assignment(rest: str, fmt: str | None) -> tuple[str, str]:
    rest = re.sub(r"^var\s+", "", rest)
    if "=" not in rest:
        raise DebuggerError("set $xN=V | set pstate.pan=1 | set HCR_EL2=V | set *ADDR=V")
    lhs, rhs = rest.split("=", 1)
    return lhs, rhs


@COMMANDS.command("set", "set $xN=V | set pstate.pan=1 | set SYSREG=V | set *ADDR=V (starts a new reverse history)",
                  args=_assignment, needs=Needs.LOADED)
def _set(d: Debugger, args: tuple[str, str]) -> str:
    lhs, rhs = args
    value = d.eval(rhs)
    lhs = lhs.strip()
    if re.fullmatch(r"(?i)\$?(x\d+|w\d+|sp|pc|cpsr)", lhs):
        value = _set_register(_board(d), lhs, value)
    elif re.fullmatch(r"(?i)pstate\.\w+", lhs):
        fld = pstate_field(lhs.split(".")[1])
        if not 0 <= value <= field_max(fld):
            raise DebuggerError(f"pstate.{fld} holds 0..{field_max(fld)}, not {value}")
        _board(d).set_pstate(checked_pstate(_board(d).pstate().replace(**{fld: value})))
    elif lhs.startswith("*") or lhs.startswith("{"):
        value = _store(d, lhs, value)
    else:
        try:
            value = fit(value, 64, lhs)
            _board(d).write_sysreg(lhs.upper().lstrip("$"), value)
        except (KeyError, ValueError, BoardError):
            raise DebuggerError(f"cannot set {lhs}: not a register, pstate.FIELD, SYSREG or *ADDR") from None
    d.new_history()
    return f"{escape(lhs)} = {value:#x}"


def _set_register(b: Board, lhs: str, value: int) -> int:
    """`set $xN|$wN|$sp|$pc|$cpsr = value`: the value as the register holds it."""
    name = lhs.lower().lstrip("$")
    if name == "cpsr":
        ps = checked_pstate(PState.from_bits(fit(value, 32, lhs)))
        b.set_pstate(ps)
        return ps.to_bits()
    if name in ("pc", "sp"):
        value = fit(value, 64, lhs)
        if name == "pc":
            b.pc = value
        else:
            b.sp = value
        return value
    n = int(name[1:])
    if n > 30:
        raise DebuggerError(f"no register {lhs} (x0..x30, w0..w30)")
    value = fit(value, 32 if name[0] == "w" else 64, lhs)
    b.set_reg(n, value)  # a W register write clears the upper half, as in AArch64
    return value


def _store(d: Debugger, lhs: str, value: int) -> int:
    """`set [{TYPE}]*ADDR = value`: a store of TYPE's size (default 8 bytes)."""
    m = re.fullmatch(r"(?:\{(\w+)\}\s*)?\*?(.+)", lhs, re.S)
    ctype = m.group(1) if m else None
    sizes = {"char": 1, "short": 2, "int": 4, "long": 8, None: 8}
    if ctype not in sizes:
        raise DebuggerError(f"set {{{ctype}}}: the types are char, short, int and long")
    size = sizes[ctype]
    addr = d.resolve(m.group(2).lstrip("*") if m else lhs[1:])
    value = fit(value, 8 * size, f"a {size}-byte store")
    _board(d).write_mem(addr, value.to_bytes(size, "little"))
    d.flush_output()  # a store to the UART data register is output
    return value


@COMMANDS.command("inject", "inject irq|fiq|serror: make an interrupt pending now",
                  args=lambda rest, fmt: rest.strip().lower(), needs=Needs.RUNNING)
def _inject(d: Debugger, kind: str) -> str:
    return d.inject(kind)


@COMMANDS.command("reverse-stepi", "reverse-stepi [N]: back N instructions (rsi)", aliases=("rsi",), args=count_arg,
                  needs=Needs.LOADED)
def _reverse_stepi(d: Debugger, n: int) -> str:
    return d.show_stop(d.reverse_stepi(n))


@COMMANDS.command("reverse-continue", "reverse-continue: back to the previous stop of a breakpoint/watchpoint/catchpoint (rc)",
                  aliases=("rc",), needs=Needs.LOADED)
def _reverse_continue(d: Debugger, _: None) -> str:
    return d.show_stop(d.reverse_continue())


# ---------------------------------------------------------------- session

@dataclass(frozen=True)
class ProgramArgs:
    """PROGRAM [--load-addr ADDR] of `load` and `run`."""

    path: str
    load_addr: int | None = None


def _option(args: list[str], flag: str) -> str | None:
    """Take `flag VALUE` out of args; its VALUE, or None when it is not there."""
    if flag not in args:
        return None
    i = args.index(flag)
    if i + 1 >= len(args):
        raise DebuggerError(f"{flag} needs a value")
    value = args[i + 1]
    del args[i : i + 2]
    return value


def _program_args(args: list[str], usage: str) -> ProgramArgs:
    from argparse import ArgumentTypeError

    from harness.cli import load_addr_arg  # the parsing `run` and the command lines use

    addr = _option(args, "--load-addr")
    if len(args) != 1:
        raise DebuggerError(usage)
    try:
        return ProgramArgs(args[0], None if addr is None else load_addr_arg(addr))
    except ArgumentTypeError as e:
        raise DebuggerError(f"--load-addr: {e}") from None


def _split(rest: str, cmd: str) -> list[str]:
    try:
        return shlex.split(rest)
    except ValueError as e:
        raise DebuggerError(f"{cmd}: {e}") from None


def _load_args(rest: str, fmt: str | None) -> tuple[str, str | None] | ProgramArgs:
    """(scenario name, variant) for `load scenario NAME [--variant V]`, the program for
    `load PROGRAM [--load-addr ADDR]`."""
    args = _split(rest, "load")
    if args and args[0] == "scenario":
        args = args[1:]
        variant = _option(args, "--variant")
        if len(args) != 1:
            raise DebuggerError("load scenario NAME [--variant V]")
        return args[0], variant
    return _program_args(args, "load scenario NAME [--variant V] | load PROGRAM [--load-addr ADDR]")


@COMMANDS.command("load", "load scenario NAME [--variant V] | load PROGRAM [--load-addr ADDR]", args=_load_args)
def _load(d: Debugger, what: tuple[str, str | None] | ProgramArgs) -> str:
    if isinstance(what, ProgramArgs):
        return d.remember(lambda: d.load_program(what.path, load_addr=what.load_addr))
    return d.remember(lambda: d.load_scenario(*what))


def _run_args(rest: str, fmt: str | None) -> ProgramArgs | None:
    args = _split(rest, "run")
    return _program_args(args, "run [PROGRAM [--load-addr ADDR]]") if args else None


@COMMANDS.command("run", "run [PROGRAM [--load-addr ADDR]]: start PROGRAM (.S, ELF, .bin at ADDR), or the loaded "
                  "target again from the start, and continue", args=_run_args)
def _run(d: Debugger, program: ProgramArgs | None) -> str:
    """gdb's run: start the program (PROGRAM, or the loaded target again) and continue."""
    if program is not None:
        loaded = d.remember(lambda: d.load_program(program.path, load_addr=program.load_addr))
    else:
        loaded = d.restart()
    if d.output is not None:
        d.output(f"starting {d.target}\n".encode())  # before the program's output, as gdb's "Starting program"
        return d.show_stop(d.cont())
    return loaded.split("\n", 1)[0] + "\n" + d.show_stop(d.cont())


@COMMANDS.command("source", "source FILE: run the commands in FILE", args=lambda rest, fmt: rest.strip())
def _source(d: Debugger, name: str) -> str:
    path = Path(name)
    if d.source_depth >= MAX_SOURCE_DEPTH:
        raise DebuggerError(f"source: nested more than {MAX_SOURCE_DEPTH} deep")
    if not path.is_file() or path.stat().st_size > MAX_SOURCE_BYTES:
        what = "not a file" if not path.is_file() else f"larger than {MAX_SOURCE_BYTES:,} bytes"
        raise DebuggerError(f"source: cannot read {name}: {what}")
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as e:
        raise DebuggerError(f"source: cannot read {name}: {e.strerror or e}") from None
    out = []
    d.source_depth += 1
    try:
        for n, line in enumerate(lines, 1):
            try:
                res = d.execute(line)
            except DebuggerError as e:
                raise DebuggerError(f"{path}:{n}: {e}") from None
            if res:
                out.append(res)
            if d.done:
                break
    finally:
        d.source_depth -= 1
    return "\n".join(out)


@COMMANDS.command("help", "help: this list (h)", aliases=("h",))
def _help(d: Debugger, _: None) -> str:
    return render.help_text({name: c.usage for name, c in COMMANDS.items()})


@COMMANDS.command("quit", "quit (q)", aliases=("q", "exit"))
def _quit(d: Debugger, _: None) -> str:
    d.done = True
    return ""
