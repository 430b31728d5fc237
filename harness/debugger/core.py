"""The debugger session: a Board, the targets it came from, and the operations front ends use
(the command line, harness/debugger/commands.py, and the GDB stub), each declaring what it needs.

Collaborators: points.py (breakpoints, watch- and catchpoints), execution.py (forward and
reverse execution, checkpoints), render.py (what is shown, side-effect free), commands.py
(the command table and its dispatcher).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rich.markup import escape

from harness.arch.exceptions import ExceptionType, async_masked, route_async
from harness.arch.pstate import PState
from harness.debugger import render
from harness.debugger.base import MASK64, NOTHING_LOADED, DebuggerError, Needs, parse_int
from harness.debugger.execution import MAX_CONTINUE, MAX_STEP_INSNS, Execution, Stop
from harness.debugger.points import CatchException, Points, SysregWatch, Watch, catch, watch_pstate
from harness.machine.board import Board, BoardError
from harness.trace import events as ev
from harness.trace.events import StopReason

__all__ = ["Debugger", "DebuggerError", "Needs", "Stop"]

F = TypeVar("F", bound=Callable)


def requires(needs: Needs) -> Callable[[F], F]:
    """Declares what an operation needs (pwndbg's OnlyWhenRunning): checked before it runs."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def checked(self: Debugger, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.require(needs)
            return fn(self, *args, **kwargs)

        return checked  # type: ignore[return-value]

    return wrap


class Debugger:
    """One debugging session over a Board."""

    def __init__(self) -> None:
        self.board: Board | None = None
        self.target = ""
        self.points = Points()
        self.execution: Execution | None = None  # the loaded board's
        self.interrupt: Callable[[], bool] = lambda: False  # polled between chunks of a continue
        self.done = False
        # The program's UART output, passed on as it is produced (REPL, --batch, the stub's O packets).
        self.output: Callable[[bytes], None] | None = None
        self.shown_pstate: PState | None = None  # at the last stop shown: the next highlights changes against it
        self.list_next: tuple[str, int] | None = None  # where `list` with no argument goes on
        self.source_depth = 0  # `source` inside `source`
        self._shown = 0  # UART bytes already passed on (replays after reverse steps are not repeated)
        self._reload: Callable[[], str] | None = None  # how the target was loaded: `run` starts it again

    # ------------------------------------------------------------------ targets

    def load_scenario(self, name: str, variant: str | None = None) -> str:
        """A scenario as `scenarios` knows it: built-in, a user variant's, or a user scenario."""
        from harness.scenarios.catalog import find_scenario
        from harness.scenarios.runner import ScenarioError, load_scenario_board

        try:
            scenario = find_scenario(name, variant)
            board = load_scenario_board(scenario)
        except (ValueError, ScenarioError) as e:   # catalog.SelectionError is a ValueError
            raise DebuggerError(str(e)) from None
        return self._attach(board, f"scenario {scenario.id}")

    def load_program(self, path: str, cpu: str = "max", load_addr: int | None = None) -> str:
        """A .S (placed at load_addr, when given), an ELF, or a flat .bin loaded at load_addr."""
        from harness.asm import AsmError, load_program

        p = Path(path)
        if p.is_dir():
            raise DebuggerError(f"{path}: is a directory, not a program")
        if not p.is_file():
            raise DebuggerError(f"{path}: no such file")
        try:
            board = Board(cpu)
            board.load(load_program(p, load_addr=load_addr, features=board.features), el=2)
        except (AsmError, BoardError) as e:
            raise DebuggerError(str(e).splitlines()[0]) from None
        except OSError as e:
            raise DebuggerError(f"{path}: {e.strerror or e}") from None
        return self._attach(board, f"program {path}")

    def load(self, target: str, variant: str | None = None, load_addr: int | None = None) -> str:
        """A scenario id, or a program path (.S, ELF, or flat binary at load_addr); `run` loads
        it again."""
        if Path(target).exists():
            return self.remember(lambda: self.load_program(target, load_addr=load_addr))
        if load_addr is not None:
            raise DebuggerError(f"{target}: no such file (a load address applies to a .S or .bin program, "
                                "not a scenario)")
        return self.remember(lambda: self.load_scenario(target, variant))

    def remember(self, loader: Callable[[], str]) -> str:
        """Load with `loader`, and keep it for `run` (restart)."""
        out = loader()
        self._reload = loader
        return out

    def restart(self) -> str:
        """Load the target again from the start (after it ended, or to begin again)."""
        if self._reload is None:
            raise DebuggerError(NOTHING_LOADED)
        return self._reload()

    def _attach(self, board: Board, what: str) -> str:
        # Close the old board now: its Unicorn instance keeps ~330 MB of address space until then.
        old, self.board, self.execution = self.board, None, None
        self.points.attach(None)
        if old is not None:
            old.close()
        self.board, self.target = board, what
        self.points.attach(board)
        self.execution = Execution(board, self.points, lambda: self.interrupt(), self.flush_output)
        self.shown_pstate = board.pstate()
        self._shown = 0
        return f"loaded {escape(what)}\n" + render.where(board, self.shown_pstate)

    def require(self, needs: Needs) -> Board:
        """The board, if it meets `needs` (LOADED or RUNNING); else the one line that says why."""
        b = self.board
        if b is None:
            raise DebuggerError(NOTHING_LOADED)
        if needs is Needs.RUNNING and b.off is not None:
            raise DebuggerError(f"the program has ended ({b.off}): `run` or `load` to start again")
        return b

    # for operations that declared what they need (so there is a board)
    @property
    def _b(self) -> Board:
        assert self.board is not None
        return self.board

    @property
    def _run(self) -> Execution:
        assert self.execution is not None
        return self.execution

    def flush_output(self) -> None:
        """Pass on the UART output produced since the last call."""
        b = self.board
        if b is None or len(b.uart) <= self._shown:
            return
        data = bytes(b.uart[self._shown :])
        self._shown = len(b.uart)
        if self.output is not None:
            self.output(data)

    # ------------------------------------------------------------------ locations and values

    @requires(Needs.LOADED)
    def resolve(self, loc: str) -> int:
        """A label, label+off, an address, file:line, or a core register +/- an offset."""
        loc = loc.strip()
        if loc.startswith("*"):
            loc = loc[1:]
        m = re.fullmatch(r"(?i)\$?(x\d+|sp|pc|lr)(?:\s*([+-])\s*(\w+))?", loc)
        if m:
            base = self.core_reg(m.group(1))
            try:
                off = parse_int(m.group(3)) if m.group(3) else 0
            except ValueError:
                raise DebuggerError(f"not a number: {m.group(3)}") from None
            # address arithmetic on a register wraps at 64 bits, as the CPU's does
            return (base - off if m.group(2) == "-" else base + off) & MASK64
        try:
            return self._b.resolve(loc)
        except (KeyError, ValueError, BoardError) as e:
            raise DebuggerError(f"no location {loc}: {str(e).strip(chr(39))}") from None

    @requires(Needs.LOADED)
    def core_reg(self, name: str) -> int:
        """x0..x30, w0..w30, sp, pc, lr (with or without $)."""
        b = self._b
        reg = name.lower().lstrip("$")
        if reg in ("pc", "sp", "lr"):
            return b.pc if reg == "pc" else b.sp if reg == "sp" else b.reg(30)
        m = re.fullmatch(r"([xw])(\d+)", reg)
        if not m or int(m.group(2)) > 30:
            raise DebuggerError(f"no register {name} (x0..x30, w0..w30, sp, pc, lr)")
        v = b.reg(int(m.group(2)))
        return v & 0xFFFFFFFF if m.group(1) == "w" else v

    def eval(self, expr: str) -> int:
        """A number, a core register, or a location."""
        expr = expr.strip()
        try:
            return parse_int(expr)
        except ValueError:
            pass
        if re.fullmatch(r"(?i)\$?[xw]\d+", expr):
            return self.core_reg(expr)
        return self.resolve(expr)

    # ------------------------------------------------------------------ execution

    @requires(Needs.RUNNING)
    def stepi(self, n: int = 1) -> Stop:
        return self._run.stepi(n)

    @requires(Needs.RUNNING)
    def cont(self, limit: int = MAX_CONTINUE) -> Stop:
        return self._run.cont(limit)

    @requires(Needs.RUNNING)
    def step_line(self, limit: int = MAX_STEP_INSNS) -> Stop:
        return self._run.step_line(limit)

    @requires(Needs.RUNNING)
    def next_line(self, limit: int = MAX_STEP_INSNS) -> Stop:
        return self._run.next_line(limit)

    @requires(Needs.RUNNING)
    def finish(self) -> Stop:
        return self._run.finish()

    @requires(Needs.RUNNING)
    def until(self, loc: str) -> Stop:
        return self._run.run_to(self.resolve(loc), StopReason.UNTIL)

    @requires(Needs.LOADED)
    def reverse_stepi(self, n: int = 1) -> Stop:
        return self._run.reverse_stepi(n)

    @requires(Needs.LOADED)
    def reverse_continue(self) -> Stop:
        return self._run.reverse_continue()

    @requires(Needs.LOADED)
    def show_stop(self, st: Stop) -> str:
        """A stop as it is shown; the next one highlights the PSTATE fields changed since."""
        b = self._b
        text = render.stop(b, st, self.shown_pstate)
        self.shown_pstate = b.pstate()
        return text

    @requires(Needs.RUNNING)
    def inject(self, kind: str) -> str:
        """Make an interrupt pending now; say where routing and masking will take it."""
        b = self._b
        if kind not in ("irq", "fiq", "serror"):
            raise DebuggerError("inject irq|fiq|serror")
        b.inject(kind, at_icount=b.icount)
        self.new_history()
        # what the routing and masking rules say now (the board applies the same ones)
        etype = ExceptionType[kind.upper()]
        ps, ctx = b.pstate(), b.sysctx()
        target = route_async(etype, ps.el, ctx)
        if not async_masked(etype, target, ps, ctx):
            return f"{kind} pending, routed to EL{target}: taken before the next instruction"
        mask = {"irq": "I", "fiq": "F", "serror": "A"}[kind]
        why = f"its target EL{target} is below EL{ps.el}" if target < ps.el else f"PSTATE.{mask}=1"
        return (f"{kind} pending, routed to EL{target} and masked ({why}): taken at the first instruction "
                "boundary where it is not")

    @requires(Needs.RUNNING)
    def inject_at(self, kind: str, icount: int) -> str:
        """Run to instruction boundary `icount`, make `kind` pending there and continue until it
        is taken: at once (before instruction icount+1) when unmasked, else where the rules first
        let it (`debug --inject KIND@ICOUNT`, the replay of an explore point)."""
        b = self._b
        kind = kind.lower()
        if kind not in ("irq", "fiq", "serror"):
            raise DebuggerError(f"cannot inject {kind!r}: choose irq, fiq or serror")
        if icount < b.icount:
            raise DebuggerError(f"instruction {icount:,} lies before the start of the program ({b.icount:,})")
        if icount > b.icount:
            res = b.run(icount - b.icount)
            self.flush_output()
            if res.status != StopReason.BUDGET or b.icount != icount:
                raise DebuggerError(f"the program stopped before instruction {icount:,}: {res.status}: {res.message} "
                                    f"at {b.location(res.pc)}")
        here = b.location(b.pc)
        note = f"debug --inject {kind}@{icount}"   # tells ours from the program's own interrupts
        b.inject(kind, at_icount=icount, note=note)
        self.new_history()
        st, taken = self._run_until_taken(CatchException(self.points.next_num, what=kind), note)
        if taken is None:
            head = f"{kind} pending from instruction {icount:,} ({escape(here)}): not taken before the program ended"
        elif taken.icount == icount:
            head = f"{kind} made pending at instruction {icount:,} ({escape(here)}): taken there"
        else:
            head = (f"{kind} made pending at instruction {icount:,} ({escape(here)}): masked, "
                    f"taken at instruction {taken.icount:,}")
        st.message = ""
        return f"[bold]{head}[/]\n" + self.show_stop(st)

    def _run_until_taken(self, catch: CatchException, note: str) -> tuple[Stop, ev.ExceptionEntry | None]:
        """Continue, with `catch` (not numbered) stopping at each entry of its kind, until the
        injection whose ExceptionEntry carries `note` is taken or the program stops otherwise."""
        self.points.watches[catch.num] = catch
        taken = None
        try:
            while taken is None:
                st = self.cont()
                taken = next((e for e in st.exceptions if isinstance(e, ev.ExceptionEntry) and e.note == note), None)
                if taken is None and (st.reason != StopReason.WATCH or self._b.off is not None):
                    break
        finally:
            self.points.watches.pop(catch.num, None)
        return st, taken

    @requires(Needs.LOADED)
    def new_history(self) -> None:
        """A change made from outside cannot be replayed: the history starts here."""
        self._run.history.restart()
        self._shown = min(self._shown, len(self._b.uart))  # output from here on is new

    # ------------------------------------------------------------------ breakpoints and watches

    @requires(Needs.LOADED)
    def add_breakpoint(self, loc: str, temporary: bool = False) -> str:
        bp = self.points.add_breakpoint(self._b, self.resolve(loc), temporary)
        return f"{'temporary ' if temporary else ''}breakpoint {bp.num} at {bp.addr:#x}: {escape(bp.where)}"

    def delete(self, nums: list[int]) -> str:
        """Delete these breakpoints/watchpoints (all of them if none is named)."""
        nums = nums or list(self.points.breakpoints) + list(self.points.watches)
        self.points.delete(nums)
        return f"deleted {', '.join(map(str, nums))}" if nums else "nothing to delete"

    @requires(Needs.LOADED)
    def gdb_insert(self, addr: int, kind: str, length: int = 4) -> None:
        """gdb's breakpoint (kind "break") or write watch ("mem") at addr: it takes no number
        (gdb numbers and reports its own: points.py)."""
        if kind == "break":
            self.points.add_breakpoint(self._b, addr, by_gdb=True)
        else:
            self.points.mem_watch(self._b, addr, length, by_gdb=True)

    def gdb_remove(self, addr: int, kind: str) -> None:
        """Remove gdb's breakpoint (kind "break") or write watch ("mem") at addr."""
        self.points.remove_gdb(addr, kind)

    @requires(Needs.LOADED)
    def add_watch(self, spec: str) -> str:
        """pstate.FIELD, *ADDR [LEN] or SYSREG."""
        b = self._b
        spec = spec.strip()
        num = self.points.next_num
        m = re.fullmatch(r"(?i)pstate\.(\w+)", spec)
        w: Watch
        if m:
            w = watch_pstate(num, m.group(1))
        elif spec.startswith("*"):
            parts = spec[1:].split()
            if not parts or len(parts) > 2:
                raise DebuggerError("watch *ADDR [LEN]")
            addr = self.resolve(parts[0])
            try:
                length = parse_int(parts[1]) if len(parts) > 1 else 8
            except ValueError:
                raise DebuggerError(f"watch: not a length: {parts[1]}") from None
            w = self.points.mem_watch(b, addr, length)
        else:
            try:
                b.read_sysreg(spec.upper())
            except (KeyError, ValueError, BoardError):
                raise DebuggerError(f"no system register {spec} (or use pstate.FIELD, *ADDR)") from None
            w = SysregWatch(num, name=spec.upper())
        self.points.add(w)
        return f"watchpoint {num}: {escape(w.describe())}"

    @requires(Needs.LOADED)
    def add_catch(self, args: list[str]) -> str:
        w = catch(self.points.next_num, args)
        self.points.add(w)
        return f"catchpoint {w.num}: {w.describe()}"

    # ------------------------------------------------------------------ commands

    def execute(self, line: str) -> str:
        """Run one command line; returns what to print (rich markup). Any failure is a
        DebuggerError of one line, and the session goes on."""
        from harness.debugger.commands import execute

        try:
            return execute(self, line)
        except DebuggerError as e:
            raise DebuggerError(" ".join(str(e).split("\n")[0].split())) from None
        except BoardError as e:
            raise DebuggerError(str(e).splitlines()[0] if str(e) else "the board refused") from None
        except RecursionError:
            raise DebuggerError("too deeply nested") from None
        except Exception as e:  # a bug: say so in one line and keep the session
            raise DebuggerError(f"internal error ({type(e).__name__}: {e}); the session goes on") from e
