"""The debugger core: a Board, breakpoints, watch- and catchpoints, reverse execution, and a
command dispatcher that returns text (rich markup), independent of any terminal.

Reverse execution: checkpoints (Unicorn context plus memory, `Board.save_state`) are taken at
the start and then every CHECKPOINT_EVERY instructions of forward execution; going back to
instruction count N restores the newest checkpoint at or before N and re-runs the rest at
native speed with every stop condition off (the board is deterministic). A change made by
`set`, `inject` or a memory write cannot be replayed, so it starts a new history.
"""

from __future__ import annotations

import gc
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.markup import escape

from harness.arch.exceptions import ExceptionType, async_masked, route_async
from harness.arch.pstate import PState, field_max
from harness.arch.syndrome import decode_esr
from harness.data import source_path
from harness.machine import decode
from harness.machine.board import Board, BoardError, BoardState
from harness.trace import events as ev

MASK64 = (1 << 64) - 1
CHECKPOINT_EVERY = 1_000_000
CHUNK = 1_000_000  # a continue runs this many instructions between checks for Ctrl-C
MAX_STEP_INSNS = 1_000_000  # `step`/`next` give up after this many
MAX_COUNT = 1_000_000  # the largest N of `stepi N`, `step N`, ... (longer runs: continue, until)
STEP_CHUNK = 10_000  # board steps between checks for Ctrl-C in a long stepi
MAX_CONTINUE = 2_000_000_000
MAX_EXAMINE = 0x10000  # bytes `x` shows at once
MAX_DISASSEMBLE = 4096  # instructions `disassemble` shows at once
MAX_SOURCE_DEPTH = 8  # `source` inside `source`
MAX_SOURCE_BYTES = 1 << 20
PSTATE_FIELDS = ("el", "sp", "n", "z", "c", "v", "d", "a", "i", "f", "pan", "uao", "ss", "il")
SYSREG_GROUPS = {
    "el2": ("HCR_EL2", "SCTLR_EL2", "VBAR_EL2", "ELR_EL2", "SPSR_EL2", "ESR_EL2", "FAR_EL2", "TCR_EL2",
            "TTBR0_EL2", "TTBR1_EL2", "MAIR_EL2", "VTTBR_EL2", "VTCR_EL2", "CPTR_EL2", "MDCR_EL2", "TPIDR_EL2",
            "SP_EL2"),
    "el1": ("SCTLR_EL1", "VBAR_EL1", "ELR_EL1", "SPSR_EL1", "ESR_EL1", "FAR_EL1", "TCR_EL1", "TTBR0_EL1",
            "TTBR1_EL1", "MAIR_EL1", "CPACR_EL1", "TPIDR_EL1", "SP_EL1", "SP_EL0"),
    "el3": ("SCR_EL3", "SCTLR_EL3", "VBAR_EL3", "ELR_EL3", "SPSR_EL3", "ESR_EL3"),
}
SYSREG_GROUPS["vhe"] = ("HCR_EL2", "SCTLR_EL2", "SCTLR_EL1", "TCR_EL2", "TTBR0_EL2", "TTBR1_EL2", "VBAR_EL2",
                        "SPSR_EL2", "ELR_EL2", "SP_EL0")
EXCEPTION_CAUSES = ("svc", "hvc", "smc", "brk", "undefined", "wfx", "sysreg", "abort", "data_abort", "inst_abort",
                    "illegal_state", "irq", "fiq", "serror")


class DebuggerError(Exception):
    """Bad command or argument: one line for the user."""


@dataclass
class Breakpoint:
    num: int
    addr: int
    where: str
    temporary: bool = False
    hits: int = 0


@dataclass
class Watchpoint:
    num: int
    kind: str  # pstate | sysreg | mem | catch-exception | catch-eret
    what: str  # field, register name, address text, or cause filter
    addr: int = 0
    length: int = 0
    el: int | None = None
    handle: int | None = None
    hits: int = 0

    def describe(self) -> str:
        if self.kind == "mem":
            return f"watch *{self.addr:#x} {self.length}"
        if self.kind == "catch-exception":
            return "catch exception" + (f" {self.what}" if self.what else "") + (f" el{self.el}" if self.el is not None else "")
        if self.kind == "catch-eret":
            return "catch eret"
        return f"watch pstate.{self.what}" if self.kind == "pstate" else f"watch {self.what}"


@dataclass
class Stop:
    """Why and where execution stopped: what a stop shows."""

    reason: str
    message: str = ""
    exceptions: list[ev.Event] = field(default_factory=list)  # taken or returned from since the last stop


class Debugger:
    """One debugging session over a Board."""

    def __init__(self) -> None:
        self.board: Board | None = None
        self.target = ""
        self._breakpoints: dict[int, Breakpoint] = {}
        self._watches: dict[int, Watchpoint] = {}
        self._next_num = 1
        self._checkpoints: list[BoardState] = []
        self._last_pstate: PState | None = None
        self._list_line: tuple[str, int] | None = None
        self.interrupt: Callable[[], bool] = lambda: False  # polled between chunks of a continue
        self.done = False
        # The program's UART output, passed on as it is produced (REPL, --batch, the stub's O packets).
        self.output: Callable[[bytes], None] | None = None
        self._shown = 0  # UART bytes already passed on (replays after reverse steps are not repeated)
        self._reload: Callable[[], str] | None = None  # how the target was loaded: `run` starts it again
        self._source_depth = 0

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

    def load_program(self, path: str, cpu: str = "max") -> str:
        from harness.asm import AsmError, load_program

        p = Path(path)
        if p.is_dir():
            raise DebuggerError(f"{path}: is a directory, not a program")
        if not p.is_file():
            raise DebuggerError(f"{path}: no such file")
        try:
            board = Board(cpu)
            board.load(load_program(p, features=board.features), el=2)
        except (AsmError, BoardError) as e:
            raise DebuggerError(str(e).splitlines()[0]) from None
        except OSError as e:
            raise DebuggerError(f"{path}: {e.strerror or e}") from None
        return self._attach(board, f"program {path}")

    def load(self, target: str, variant: str | None = None) -> str:
        """A scenario id, or a program path (.S, ELF or flat binary); `run` loads it again."""
        if Path(target).exists():
            return self._remember(lambda: self.load_program(target))
        return self._remember(lambda: self.load_scenario(target, variant))

    def _remember(self, loader: Callable[[], str]) -> str:
        out = loader()
        self._reload = loader
        return out

    def restart(self) -> str:
        """Load the target again from the start (after it ended, or to begin again)."""
        if self._reload is None:
            raise DebuggerError("nothing loaded: load scenario NAME [--variant V] or run PROGRAM")
        return self._reload()

    def _attach(self, board: Board, what: str) -> str:
        old, self.board = self.board, board
        if old is not None:
            # Board and Unicorn hooks form a cycle: collect it now, or each load keeps ~1.4 GB
            # of address space reserved until Python's collector happens to run.
            del old
            gc.collect()
        self.target = what
        for bp in self._breakpoints.values():
            board.add_breakpoint(bp.addr)
        self._watches.clear()
        self._checkpoints = [board.save_state()]
        self._last_pstate = board.pstate()
        self._shown = 0
        return f"loaded {escape(what)}\n" + self.where()

    def _need(self) -> Board:
        if self.board is None:
            raise DebuggerError("nothing loaded: load scenario NAME [--variant V] or run PROGRAM")
        return self.board

    def _need_running(self) -> Board:
        """The board, if it can execute: a board that powered off refuses (forward execution)."""
        b = self._need()
        if b.off is not None:
            raise DebuggerError(f"the program has ended ({b.off}): `run` or `load` to start again")
        return b

    def _flush_output(self) -> None:
        """Pass on the UART output produced since the last call."""
        b = self.board
        if b is None or len(b.uart) <= self._shown:
            return
        data = bytes(b.uart[self._shown :])
        self._shown = len(b.uart)
        if self.output is not None:
            self.output(data)

    # ------------------------------------------------------------------ locations

    def resolve(self, loc: str) -> int:
        """A label, label+off, an address, or file:line."""
        b = self._need()
        loc = loc.strip()
        if loc.startswith("*"):
            loc = loc[1:]
        m = re.fullmatch(r"(?i)\$?(x\d+|sp|pc|lr)(?:\s*([+-])\s*(\w+))?", loc)
        if m:
            base = self._core_reg(m.group(1))
            try:
                off = _int(m.group(3)) if m.group(3) else 0
            except ValueError:
                raise DebuggerError(f"not a number: {m.group(3)}") from None
            # address arithmetic on a register wraps at 64 bits, as the CPU's does
            return (base - off if m.group(2) == "-" else base + off) & MASK64
        try:
            return b.resolve(loc)
        except (KeyError, ValueError, BoardError) as e:
            raise DebuggerError(f"no location {loc}: {str(e).strip(chr(39))}") from None

    def _core_reg(self, name: str) -> int:
        """x0..x30, w0..w30, sp, pc, lr (with or without $)."""
        b = self._need()
        reg = name.lower().lstrip("$")
        if reg in ("pc", "sp", "lr"):
            return b.pc if reg == "pc" else b.sp if reg == "sp" else b.reg(30)
        m = re.fullmatch(r"([xw])(\d+)", reg)
        if not m or int(m.group(2)) > 30:
            raise DebuggerError(f"no register {name} (x0..x30, w0..w30, sp, pc, lr)")
        v = b.reg(int(m.group(2)))
        return v & 0xFFFFFFFF if m.group(1) == "w" else v

    # ------------------------------------------------------------------ forward execution

    def _checkpoint(self) -> None:
        b = self._need()
        if b.icount - self._checkpoints[-1].icount >= CHECKPOINT_EVERY:
            self._checkpoints.append(b.save_state())

    def _stop_condition(self, event: ev.Event) -> str | None:
        """Board.stop_on_event: the first watch- or catchpoint the event triggers (counted)."""
        return self._watch_reason(event, count=True)

    def _watch_reason(self, e: ev.Event, count: bool = False) -> str | None:
        for w in self._watches.values():
            why = self._watch_hit(w, e)
            if why:
                w.hits += count
                return why
        return None

    def _watch_hit(self, w: Watchpoint, e: ev.Event) -> str | None:
        if w.kind == "pstate" and w.what not in ("n", "z", "c", "v"):
            if isinstance(e, ev.ExceptionEntry | ev.ExceptionReturn | ev.PStateChange):
                old = getattr(PState.from_bits(e.pstate_before), w.what)
                new = getattr(PState.from_bits(e.pstate_after), w.what)
                if old != new:
                    return f"watchpoint {w.num}: pstate.{w.what} {old} -> {new}"
        elif w.kind == "sysreg" and isinstance(e, ev.SysregWrite):
            if w.what in (e.name, e.redirected_to):
                return f"watchpoint {w.num}: {w.what} written with {e.value:#x} by {e.name}"
        elif w.kind == "sysreg" and isinstance(e, ev.ExceptionEntry):
            regs = {f"SPSR_EL{e.to_el}": e.spsr, f"ELR_EL{e.to_el}": e.elr, f"ESR_EL{e.to_el}": e.esr,
                    f"FAR_EL{e.to_el}": e.far}
            if regs.get(w.what) is not None:
                return f"watchpoint {w.num}: {w.what} = {regs[w.what]:#x} by exception entry"
        elif w.kind == "mem" and isinstance(e, ev.MemoryWrite):
            return f"watchpoint {w.num}: *{e.addr:#x} = {e.value:#x} ({e.size} bytes) at {self._need().location(e.pc)}"
        elif w.kind == "catch-exception" and isinstance(e, ev.ExceptionEntry):
            if (not w.what or w.what in (e.cause, e.exc_type) or (w.what == "abort" and "abort" in e.cause)
                    or e.cause.startswith(w.what)) and (w.el is None or w.el == e.to_el):
                return f"catchpoint {w.num}: {e.cause} EL{e.from_el} -> EL{e.to_el}"
        elif w.kind == "catch-eret" and isinstance(e, ev.ExceptionReturn):
            return f"catchpoint {w.num}: eret EL{e.from_el} -> EL{e.to_el}" + (" (illegal)" if e.illegal else "")
        return None

    def _flag_watch(self) -> list[Watchpoint]:
        """Watches on NZCV: any instruction may set them, so they need single steps."""
        return [w for w in self._watches.values() if w.kind == "pstate" and w.what in ("n", "z", "c", "v")]

    @staticmethod
    def _flag_change(flags: list[Watchpoint], before: PState, after: PState) -> tuple[Watchpoint, str] | None:
        for w in flags:
            old, new = getattr(before, w.what), getattr(after, w.what)
            if old != new:
                return w, f"watchpoint {w.num}: pstate.{w.what} {old} -> {new}"
        return None

    def stepi(self, n: int = 1) -> Stop:
        b = self._need_running()
        start = len(b.events)
        flags = self._flag_watch()
        b.stop_on_event = self._stop_condition
        try:
            left = n
            while left > 0:
                self._checkpoint()
                # NZCV watches compare after every instruction; otherwise the board steps in chunks
                k = 1 if flags else max(1, min(left, STEP_CHUNK,
                                               CHECKPOINT_EVERY - (b.icount - self._checkpoints[-1].icount)))
                before = b.pstate()
                res = b.step(k)
                left -= k
                if res is not None:
                    return self._stop_from(res.status, res.message, start)
                changed = self._flag_change(flags, before, b.pstate())
                if changed is not None:
                    changed[0].hits += 1
                    return self._stop_from("watch", changed[1], start)
                if self.interrupt():
                    return self._stop_from("interrupt", "interrupted", start)
        finally:
            b.stop_on_event = None
        return self._stop_from("step", "", start)

    def cont(self, limit: int = MAX_CONTINUE) -> Stop:
        b = self._need_running()
        if self._flag_watch():
            # every instruction single-stepped: a shorter limit keeps the command bounded
            return self._step_until(lambda: False, min(limit, MAX_STEP_INSNS), "continue")
        start = len(b.events)
        end = b.icount + limit
        # a stop at a breakpoint is before its instruction: step off it first
        if b.pc in self._bp_addrs():
            st = self.stepi(1)
            if st.reason != "step":
                return st
        b.stop_on_event = self._stop_condition
        try:
            while True:
                self._checkpoint()
                nxt = self._checkpoints[-1].icount + CHECKPOINT_EVERY
                chunk = max(1, min(CHUNK, end - b.icount, nxt - b.icount))
                res = b.run(chunk)
                self._flush_output()
                if res.status == "budget":
                    if b.icount >= end:
                        return self._stop_from("limit", f"stopped after {limit:,} instructions", start)
                    if self.interrupt():
                        return self._stop_from("interrupt", "interrupted", start)
                    continue
                if res.status == "breakpoint":
                    return self._breakpoint_stop(start)
                return self._stop_from(res.status, res.message, start)
        finally:
            b.stop_on_event = None

    def _bp_addrs(self) -> set[int]:
        return {bp.addr for bp in self._breakpoints.values()}

    def _breakpoint_stop(self, start: int) -> Stop:
        b = self._need()
        hit = [bp for bp in self._breakpoints.values() if bp.addr == b.pc]
        for bp in hit:
            bp.hits += 1
        msg = ", ".join(f"{'temporary ' if bp.temporary else ''}breakpoint {bp.num}" for bp in hit)
        for bp in [bp for bp in hit if bp.temporary]:
            self._delete_bp(bp.num)
        return self._stop_from("breakpoint", msg, start)  # "" at an internal (finish/until) one

    def _step_until(self, done: Callable[[], bool], limit: int, what: str) -> Stop:
        """Single-step until done() (or a stop condition); `what` names the command."""
        b = self._need_running()
        start = len(b.events)
        bps = self._bp_addrs()
        flags = self._flag_watch()
        b.stop_on_event = self._stop_condition
        try:
            for k in range(limit):
                self._checkpoint()
                before = b.pstate() if flags else None
                res = b.step(1)
                if res is not None:
                    return self._stop_from(res.status, res.message, start)
                if before is not None:
                    changed = self._flag_change(flags, before, b.pstate())
                    if changed is not None:
                        changed[0].hits += 1
                        return self._stop_from("watch", changed[1], start)
                if done():
                    return self._stop_from(what, "", start)
                if k and b.pc in bps:
                    return self._breakpoint_stop(start)
                if k % 256 == 255 and self.interrupt():
                    return self._stop_from("interrupt", "interrupted", start)
        finally:
            b.stop_on_event = None
        return self._stop_from("limit", f"{what}: no stop within {limit:,} instructions", start)

    def _run_to(self, addr: int, what: str, el: int | None = None) -> Stop:
        """Continue with a temporary internal breakpoint at addr (at EL el, if given)."""
        b = self._need_running()
        start = len(b.events)
        end = b.icount + MAX_CONTINUE
        internal = addr not in self._bp_addrs()
        if internal:
            b.add_breakpoint(addr)
        try:
            while True:
                st = self.cont(max(1, end - b.icount))
                if st.reason == "breakpoint" and b.pc == addr and not st.message:
                    if el is not None and b.pstate().el != el:
                        # the address at another EL: step off the internal breakpoint, go on
                        st = self.stepi(1)
                        if st.reason != "step":
                            return st
                        continue
                    st = self._stop_from(what, "", start)
                st.exceptions = [e for e in b.events[start:] if isinstance(e, ev.ExceptionEntry | ev.ExceptionReturn)]
                return st
        finally:
            if internal:
                b.remove_breakpoint(addr)

    def step_line(self, limit: int = MAX_STEP_INSNS) -> Stop:
        b = self._need_running()
        here = self._line(b.pc)
        if here is None:
            return self.stepi(1)
        return self._step_until(lambda: (self._line(b.pc) or here) != here, limit, "step")

    def next_line(self, limit: int = MAX_STEP_INSNS) -> Stop:
        """Like step, but a BL/BLR runs to its return."""
        b = self._need_running()
        here = self._line(b.pc)
        start = len(b.events)
        for _ in range(limit):
            try:
                text = decode.disasm_text(b.word_at(b.pc), b.pc)
            except BoardError:
                text = "?"  # no memory at the PC: the step reports the fetch
            if text.split()[0] in ("bl", "blr"):
                el = b.pstate().el
                st = self._run_to(b.pc + 4, "next", el)
            else:
                st = self.stepi(1)
            if st.reason not in ("step", "next"):
                return st
            if here is None or (self._line(b.pc) or here) != here:
                return self._stop_from("next", "", start)
        return self._stop_from("limit", "next: no new line", start)

    def finish(self) -> Stop:
        b = self._need_running()
        lr = b.reg(30)
        if not lr:
            raise DebuggerError("finish: x30 is 0, no caller to return to")
        return self._run_to(lr, "finish", b.pstate().el)

    def until(self, loc: str) -> Stop:
        self._need_running()
        return self._run_to(self.resolve(loc), "until")

    def _line(self, addr: int) -> tuple[str, int] | None:
        img = self._need().image
        loc = img.source_at(addr) if img is not None else None
        return (loc.file, loc.line) if loc is not None else None

    # ------------------------------------------------------------------ reverse execution

    def _goto(self, target: int) -> None:
        """Put the board at instruction count `target` (within the history)."""
        b = self._need()
        cps = [i for i, c in enumerate(self._checkpoints) if c.icount <= target]
        if not cps:
            raise DebuggerError(f"no history before instruction {self._checkpoints[0].icount}")
        k = cps[-1]
        b.restore_state(self._checkpoints[k])
        del self._checkpoints[k + 1 :]
        left = target - b.icount
        saved_bps = self._bp_addrs()
        for a in saved_bps:
            b.remove_breakpoint(a)
        try:
            while left > 0:
                chunk = min(left, CHECKPOINT_EVERY - (b.icount - self._checkpoints[-1].icount)) or left
                res = b.run(chunk)
                if res.status != "budget":
                    raise DebuggerError(f"replay stopped at instruction {b.icount}: {res.message}")
                left = target - b.icount
                self._checkpoint()
        finally:
            for a in saved_bps:
                b.add_breakpoint(a)

    def reverse_stepi(self, n: int = 1) -> Stop:
        b = self._need()
        first = self._checkpoints[0].icount
        if b.icount <= first:
            return Stop("history-start", f"at the start of the history (instruction {first})")
        target = max(first, b.icount - n)
        start = len(b.events)
        self._goto(target)
        msg = "" if target > first else f"at the start of the history (instruction {first})"
        return self._stop_from("reverse-step", msg, min(start, len(b.events)))

    def reverse_continue(self) -> Stop:
        """Back to the latest earlier instruction where a break/watch/catchpoint would stop."""
        b = self._need()
        now = b.icount
        first = self._checkpoints[0].icount
        if now <= first:
            return Stop("history-start", f"at the start of the history (instruction {first})")
        hits = self._scan_stops(first, now)
        target = hits[-1][0] if hits else first
        self._goto(target)
        if not hits:
            return self._stop_from("history-start", f"no earlier stop: at the start of the history (instruction {first})",
                                   len(b.events))
        return self._stop_from("reverse-continue", hits[-1][1], len(b.events))

    def _scan_stops(self, first: int, end: int) -> list[tuple[int, str]]:
        """Replay [first, end) and list (icount, why) of every stop a forward run would make."""
        b = self._need()
        self._goto(first)
        hits: list[tuple[int, str]] = []
        flags = self._flag_watch()
        bps = self._bp_addrs()

        def record(e: ev.Event) -> None:
            why = self._watch_reason(e)
            if why:
                # a forward run stops after the write (MSR or store), or where the event leaves it
                at = e.icount + 1 if isinstance(e, ev.MemoryWrite | ev.SysregWrite) else b.icount
                hits.append((at, why))

        b.stop_on_event = record
        try:
            while b.icount < end:
                self._checkpoint()
                if b.pc in bps and b.icount > first:
                    hits.append((b.icount, f"breakpoint at {b.location(b.pc)}"))
                if flags or b.pc in bps:
                    before = b.pstate()
                    res = b.step(1)
                    changed = self._flag_change(flags, before, b.pstate())
                    if changed is not None:
                        hits.append((b.icount, changed[1]))
                    if res is not None:
                        break
                    continue
                nxt = self._checkpoints[-1].icount + CHECKPOINT_EVERY
                res = b.run(max(1, min(end, nxt) - b.icount))
                if res.status not in ("budget", "breakpoint"):
                    break
        finally:
            b.stop_on_event = None
        return [h for h in hits if first < h[0] < end]

    # ------------------------------------------------------------------ stop display

    def _stop_from(self, reason: str, message: str, start: int) -> Stop:
        b = self._need()
        self._flush_output()
        exc = [e for e in b.events[start:] if isinstance(e, ev.ExceptionEntry | ev.ExceptionReturn)]
        return Stop(reason, message, exc)

    def show_stop(self, st: Stop) -> str:
        lines = []
        if st.message:
            lines.append(f"[bold]{escape(st.message)}[/]")
        for e in st.exceptions[-3:]:
            lines.append(self.describe_exception(e))
        lines.append(self.where())
        return "\n".join(lines)

    def describe_exception(self, e: ev.Event) -> str:
        b = self._need()
        if isinstance(e, ev.ExceptionEntry):
            esr = f" ESR {e.esr:#010x} ({escape(decode_esr(e.esr))})" if e.esr is not None else ""
            far = f" FAR {e.far:#x}" if e.far is not None else ""
            return (f"[magenta]exception[/] {e.exc_type} {escape(e.cause)} EL{e.from_el} -> EL{e.to_el} at "
                    f"{escape(b.location(e.pc))}, vector +{e.vector_offset:#x}{esr}{far}")
        assert isinstance(e, ev.ExceptionReturn)
        ill = " [red]illegal return (PSTATE.IL set)[/]" if e.illegal else ""
        return (f"[magenta]eret[/] EL{e.from_el} -> EL{e.to_el} to {escape(b.location(e.elr))}, "
                f"SPSR {e.spsr:#x}{ill}")

    def where(self) -> str:
        """Location, instruction, and PSTATE with the fields changed since the last stop highlighted."""
        b = self._need()
        pc = b.pc
        try:
            word = b.word_at(pc)
            insn = decode.disasm_text(word, pc)
        except Exception:
            word, insn = 0, "(no memory here)"
        ps = b.pstate()
        text = f"[cyan]{pc:#018x}[/] {escape(b.location(pc))}\n    {word:08x}  {escape(insn)}\n" \
               f"    {self.pstate_line(ps, self._last_pstate)}   icount {b.icount:,}"
        self._last_pstate = ps
        return text

    @staticmethod
    def pstate_line(ps: PState, before: PState | None) -> str:
        parts = []
        for name, val in (("EL", ps.el), ("SPSel", ps.sp), ("N", ps.n), ("Z", ps.z), ("C", ps.c), ("V", ps.v),
                          ("D", ps.d), ("A", ps.a), ("I", ps.i), ("F", ps.f), ("PAN", ps.pan), ("UAO", ps.uao),
                          ("SS", ps.ss), ("IL", ps.il)):
            attr = {"EL": "el", "SPSel": "sp"}.get(name, name.lower())
            changed = before is not None and getattr(before, attr) != val
            parts.append(f"[bold reverse yellow]{name}={val}[/]" if changed else f"{name}={val}")
        return "PSTATE " + " ".join(parts)

    # ------------------------------------------------------------------ breakpoints and watches

    def add_breakpoint(self, loc: str, temporary: bool = False) -> str:
        b = self._need()
        addr = self.resolve(loc)
        try:
            b.add_breakpoint(addr)  # checks the address first
        except BoardError as e:
            raise DebuggerError(str(e)) from None
        bp = Breakpoint(self._next_num, addr, b.location(addr), temporary)
        self._next_num += 1
        self._breakpoints[bp.num] = bp
        return f"{'temporary ' if temporary else ''}breakpoint {bp.num} at {addr:#x}: {escape(bp.where)}"

    def _delete_bp(self, num: int) -> None:
        bp = self._breakpoints.pop(num)
        if self.board is not None and bp.addr not in self._bp_addrs():
            self.board.remove_breakpoint(bp.addr)

    def delete_at(self, addr: int, kind: str) -> None:
        """Delete the first breakpoint (kind "break") or memory watch ("mem") at addr."""
        nums = [n for n, bp in self._breakpoints.items() if bp.addr == addr] if kind == "break" else \
            [n for n, w in self._watches.items() if w.kind == "mem" and w.addr == addr]
        if nums:
            self.delete(nums[:1])

    def delete(self, nums: list[int]) -> str:
        if not nums:
            nums = list(self._breakpoints) + list(self._watches)
        for n in nums:
            if n in self._breakpoints:
                self._delete_bp(n)
            elif n in self._watches:
                w = self._watches.pop(n)
                if w.handle is not None and self.board is not None:
                    self.board.remove_mem_watch(w.handle)
            else:
                raise DebuggerError(f"no breakpoint or watchpoint {n}")
        return f"deleted {', '.join(map(str, nums))}" if nums else "nothing to delete"

    def add_watch(self, spec: str) -> str:
        b = self._need()
        spec = spec.strip()
        num = self._next_num
        m = re.fullmatch(r"(?i)pstate\.(\w+)", spec)
        if m:
            fld = {"spsel": "sp"}.get(m.group(1).lower(), m.group(1).lower())
            if fld not in PSTATE_FIELDS:
                raise DebuggerError(f"no PSTATE field {m.group(1)} (fields: {', '.join(PSTATE_FIELDS)})")
            w = Watchpoint(num, "pstate", fld)
        elif spec.startswith("*"):
            parts = spec[1:].split()
            if not parts or len(parts) > 2:
                raise DebuggerError("watch *ADDR [LEN]")
            addr = self.resolve(parts[0])
            try:
                length = _int(parts[1]) if len(parts) > 1 else 8
            except ValueError:
                raise DebuggerError(f"watch: not a length: {parts[1]}") from None
            w = Watchpoint(num, "mem", parts[0], addr, length)
            try:
                w.handle = b.add_mem_watch(addr, length)
            except BoardError as e:
                raise DebuggerError(f"watch: {e}") from None
        else:
            name = spec.upper()
            try:
                b.read_sysreg(name)
            except (KeyError, ValueError, BoardError):
                raise DebuggerError(f"no system register {spec} (or use pstate.FIELD, *ADDR)") from None
            w = Watchpoint(num, "sysreg", name)
        self._next_num += 1
        self._watches[num] = w
        return f"watchpoint {num}: {escape(w.describe())}"

    def add_catch(self, args: list[str]) -> str:
        self._need()
        if not args:
            raise DebuggerError("catch exception [CAUSE] [elN] | catch eret")
        num = self._next_num
        if args[0] == "eret":
            w = Watchpoint(num, "catch-eret", "")
        elif args[0] == "exception":
            cause, el = "", None
            for a in args[1:]:
                if re.fullmatch(r"(?i)el[0-3]", a):
                    el = int(a[2])
                elif a.lower() in EXCEPTION_CAUSES or a.lower() == "sync":
                    cause = a.lower()
                else:
                    raise DebuggerError(f"catch exception: unknown {a} (causes: {', '.join(EXCEPTION_CAUSES)}; elN)")
            w = Watchpoint(num, "catch-exception", cause, el=el)
        else:
            raise DebuggerError(f"catch {args[0]}: only exception and eret")
        self._next_num += 1
        self._watches[num] = w
        return f"catchpoint {num}: {w.describe()}"

    def info_breakpoints(self) -> str:
        rows = [f"{bp.num:<4} {'tbreak' if bp.temporary else 'break':<8} {bp.addr:#x} {escape(bp.where)}  hits {bp.hits}"
                for bp in self._breakpoints.values()]
        rows += [f"{w.num:<4} {w.kind:<8} {escape(w.describe())}  hits {w.hits}" for w in self._watches.values()]
        return "\n".join(["Num  Type     What"] + rows) if rows else "no breakpoints, watchpoints or catchpoints"

    # ------------------------------------------------------------------ state

    def info_registers(self) -> str:
        b = self._need()
        rows = []
        for n in range(0, 31, 2):
            cells = [f"x{k:<2} {b.reg(k):#018x}" for k in (n, n + 1) if k < 31]
            rows.append("   ".join(cells))
        rows.append(f"sp  {b.sp:#018x}   pc  {b.pc:#018x} {escape(b.location(b.pc))}")
        rows.append(self.pstate_line(b.pstate(), None))
        return "\n".join(rows)

    def info_register(self, name: str) -> str:
        """One register by name, as gdb's `info registers NAME`: a core register, cpsr/pstate,
        or a system register or group."""
        low = name.lower().lstrip("$")
        if low in ("pstate", "cpsr"):
            return self.info_pstate()
        if re.fullmatch(r"[xw]\d+|sp|pc|lr", low):
            v = self._core_reg(low)
            where = f" {escape(self._need().location(v))}" if low == "pc" else ""
            return f"{low:<4} {v:#018x} {v}{where}"
        return self.info_sysregs(name)

    def info_pstate(self) -> str:
        b = self._need()
        ps = b.pstate()
        return (f"PSTATE {ps.to_bits():#010x}: EL{ps.el}{'h' if ps.sp else 't'}  "
                + self.pstate_line(ps, self._last_pstate)[7:])

    def info_sysregs(self, group: str | None) -> str:
        b = self._need()
        if group is None:
            names = [n for g in ("el2", "el1") for n in SYSREG_GROUPS[g]]
        elif group.lower() in SYSREG_GROUPS:
            names = list(SYSREG_GROUPS[group.lower()])
        else:
            names = [group.upper()]
        rows = []
        for name in names:
            try:
                v = b.read_sysreg(name)
            except (KeyError, ValueError, BoardError):
                if group is not None and group.lower() not in SYSREG_GROUPS:
                    raise DebuggerError(f"no register, system register or group {group} "
                                        f"(x0..x30, sp, pc, cpsr; groups: {', '.join(SYSREG_GROUPS)})") from None
                continue
            rows.append(f"{name:<12} {v:#018x}{_sysreg_note(name, v)}")
        return "\n".join(rows)

    def info_exceptions(self, n: int = 20) -> str:
        b = self._need()
        evs = [e for e in b.events if isinstance(e, ev.ExceptionEntry | ev.ExceptionReturn)]
        if not evs:
            return "no exceptions taken yet"
        return "\n".join(f"#{e.icount:<10} " + self.describe_exception(e) for e in evs[-n:])

    def examine(self, fmt: str, loc: str) -> str:
        b = self._need()
        m = re.fullmatch(r"(\d*)([xdui]?)([bhwg]?)([xdui]?)", fmt)
        if not m or (m.group(2) and m.group(4)):
            raise DebuggerError(f"x/{fmt}: use x/NFU, e.g. x/4gx, x/8wx, x/2i")
        count = int(m.group(1) or 1)
        if count < 1:
            raise DebuggerError(f"x/{fmt}: the count must be >= 1")
        form = m.group(2) or m.group(4) or "x"
        if form == "i":
            return self.disassemble(loc, count)
        size = {"b": 1, "h": 2, "w": 4, "g": 8, "": 8}[m.group(3)]
        if count * size > MAX_EXAMINE:
            raise DebuggerError(f"x/{fmt}: at most {MAX_EXAMINE:#x} bytes at a time")
        addr = self.resolve(loc)
        try:
            data = b.read_mem(addr, count * size)
        except BoardError as e:
            raise DebuggerError(f"cannot read {count * size} bytes at {addr:#x}: {e}") from None
        vals = [int.from_bytes(data[k : k + size], "little") for k in range(0, len(data), size)]
        per = max(1, 16 // size)
        rows = []
        for k in range(0, len(vals), per):
            a = addr + k * size
            cells = " ".join(f"{v:#0{2 * size + 2}x}" if form == "x" else str(v) for v in vals[k : k + per])
            rows.append(f"{a:#x} <{escape(b.location(a))}>: {cells}")
        return "\n".join(rows)

    def disassemble(self, loc: str | None, count: int = 10) -> str:
        b = self._need()
        addr = self.resolve(loc) if loc else b.pc
        if count > MAX_DISASSEMBLE:
            raise DebuggerError(f"disassemble: at most {MAX_DISASSEMBLE} instructions at a time")
        rows = []
        last_src = None
        for k in range(count):
            a = addr + 4 * k
            try:
                word = b.word_at(a)
            except BoardError as e:
                if not rows:
                    raise DebuggerError(f"nothing to disassemble: {e}") from None
                rows.append(f"   {a:#x}: (no memory here)")
                break
            sym = b.image.symbol_at(a) if b.image is not None else None
            src = b.image.source_at(a) if b.image is not None else None
            if src is not None and (src.file, src.line) != last_src:
                rows.append(f"[dim]{escape(str(src))}: {escape(src.text.strip())}[/]")
                last_src = (src.file, src.line)
            mark = "=>" if a == b.pc else "  "
            rows.append(f"{mark} {a:#x} <{escape(sym or '')}>: {word:08x}  {escape(decode.disasm_text(word, a))}")
        return "\n".join(rows)

    def list_source(self, loc: str | None) -> str:
        b = self._need()
        if loc:
            addr = self.resolve(loc)
            here = self._line(addr)
        elif self._list_line is not None:
            here = (self._list_line[0], self._list_line[1] + 10)
        else:
            here = self._line(b.pc)
        if here is None:
            raise DebuggerError("no source line for this location")
        path = source_path(here[0])
        try:
            text = path.read_text().splitlines()
        except OSError:
            raise DebuggerError(f"cannot read {here[0]}") from None
        first = max(1, here[1] - 5 if not (loc is None and self._list_line) else here[1])
        cur = self._line(b.pc)
        rows = []
        for n in range(first, min(len(text), first + 9) + 1):
            mark = "=>" if cur == (here[0], n) else "  "
            rows.append(f"{mark} {n:>5}  {escape(text[n - 1])}")
        self._list_line = (here[0], first)
        return "\n".join(rows)

    def set_value(self, lhs: str, rhs: str) -> str:
        b = self._need()
        value = self._eval(rhs)
        lhs = lhs.strip()
        m = re.fullmatch(r"(?i)\$?(x(\d+)|w(\d+)|sp|pc|cpsr)", lhs)
        if m:
            name = m.group(1).lower()
            if name == "cpsr":
                ps = self.checked_pstate(PState.from_bits(_fit(value, 32, lhs)))
                b.set_pstate(ps)
                value = ps.to_bits()
            elif name in ("pc", "sp"):
                value = _fit(value, 64, lhs)
                if name == "pc":
                    b.pc = value
                else:
                    b.sp = value
            else:
                n = int(m.group(2) or m.group(3))
                if n > 30:
                    raise DebuggerError(f"no register {lhs} (x0..x30, w0..w30)")
                value = _fit(value, 32 if m.group(3) else 64, lhs)
                b.set_reg(n, value)  # a W register write clears the upper half, as in AArch64
        elif re.fullmatch(r"(?i)pstate\.\w+", lhs):
            fld = {"spsel": "sp"}.get(lhs.split(".")[1].lower(), lhs.split(".")[1].lower())
            if fld not in PSTATE_FIELDS:
                raise DebuggerError(f"no PSTATE field {lhs.split('.')[1]} (fields: {', '.join(PSTATE_FIELDS)})")
            if not 0 <= value <= field_max(fld):
                raise DebuggerError(f"pstate.{fld} holds 0..{field_max(fld)}, not {value}")
            b.set_pstate(self.checked_pstate(b.pstate().replace(**{fld: value})))
        elif lhs.startswith("*") or lhs.startswith("{"):
            m2 = re.fullmatch(r"(?:\{(\w+)\}\s*)?\*?(.+)", lhs, re.S)
            ctype = m2.group(1) if m2 else None
            sizes = {"char": 1, "short": 2, "int": 4, "long": 8, None: 8}
            if ctype not in sizes:
                raise DebuggerError(f"set {{{ctype}}}: the types are char, short, int and long")
            size = sizes[ctype]
            addr = self.resolve(m2.group(2).lstrip("*") if m2 else lhs[1:])
            value = _fit(value, 8 * size, f"a {size}-byte store")
            b.write_mem(addr, value.to_bytes(size, "little"))
            self._flush_output()  # a store to the UART data register is output
        else:
            try:
                value = _fit(value, 64, lhs)
                b.write_sysreg(lhs.upper().lstrip("$"), value)
            except (KeyError, ValueError, BoardError):
                raise DebuggerError(f"cannot set {lhs}: not a register, pstate.FIELD, SYSREG or *ADDR") from None
        self.new_history()
        return f"{escape(lhs)} = {value:#x}"

    @staticmethod
    def checked_pstate(ps: PState) -> PState:
        """A PSTATE the user may set: an AArch64 mode the board models."""
        if ps.nrw:
            raise DebuggerError("PSTATE.nRW=1 is AArch32 state, which the board does not model")
        if ps.el == 0 and ps.sp:
            raise DebuggerError("EL0 has only SP_EL0: PSTATE.SP must be 0 at EL0 (M[3:0]=0b0001 is reserved)")
        return ps

    def inject(self, kind: str) -> str:
        b = self._need_running()
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

    def inject_at(self, kind: str, icount: int) -> str:
        """Run to instruction boundary `icount`, make `kind` pending there and continue until it
        is taken: at once (before instruction icount+1) when unmasked, else where the rules first
        let it (`debug --inject KIND@ICOUNT`, the replay of an explore point)."""
        b = self._need_running()
        kind = kind.lower()
        if kind not in ("irq", "fiq", "serror"):
            raise DebuggerError(f"cannot inject {kind!r}: choose irq, fiq or serror")
        if icount < b.icount:
            raise DebuggerError(f"instruction {icount:,} lies before the start of the program ({b.icount:,})")
        if icount > b.icount:
            res = b.run(icount - b.icount)
            self._flush_output()
            if res.status != "budget" or b.icount != icount:
                raise DebuggerError(f"the program stopped before instruction {icount:,}: {res.status}: {res.message} "
                                    f"at {b.location(res.pc)}")
        here = b.location(b.pc)
        note = f"debug --inject {kind}@{icount}"   # tells ours from the program's own interrupts
        b.inject(kind, at_icount=icount, note=note)
        self.new_history()
        catch = Watchpoint(self._next_num, "catch-exception", kind)
        self._watches[catch.num] = catch
        taken = None
        try:
            while taken is None:
                st = self.cont()
                taken = next((e for e in st.exceptions if isinstance(e, ev.ExceptionEntry) and e.note == note), None)
                if taken is None and (st.reason != "watch" or b.off is not None):
                    break
        finally:
            self._watches.pop(catch.num, None)
        if taken is None:
            head = f"{kind} pending from instruction {icount:,} ({escape(here)}): not taken before the program ended"
        elif taken.icount == icount:
            head = f"{kind} made pending at instruction {icount:,} ({escape(here)}): taken there"
        else:
            head = (f"{kind} made pending at instruction {icount:,} ({escape(here)}): masked, "
                    f"taken at instruction {taken.icount:,}")
        st.message = ""
        return f"[bold]{head}[/]\n" + self.show_stop(st)

    def new_history(self) -> None:
        """A change made from outside cannot be replayed: the history starts here."""
        b = self._need()
        self._checkpoints = [b.save_state()]
        self._shown = min(self._shown, len(b.uart))  # output from here on is new

    def _eval(self, expr: str) -> int:
        expr = expr.strip()
        try:
            return _int(expr)
        except ValueError:
            pass
        if re.fullmatch(r"(?i)\$?[xw]\d+", expr):
            return self._core_reg(expr)
        return self.resolve(expr)

    # ------------------------------------------------------------------ the dispatcher

    def execute(self, line: str) -> str:
        """Run one command line; returns what to print (rich markup). Any failure is a
        DebuggerError of one line, and the session goes on."""
        try:
            return self._execute(line)
        except DebuggerError as e:
            raise DebuggerError(" ".join(str(e).split("\n")[0].split())) from None
        except BoardError as e:
            raise DebuggerError(str(e).splitlines()[0] if str(e) else "the board refused") from None
        except RecursionError:
            raise DebuggerError("too deeply nested") from None
        except Exception as e:  # a bug: say so in one line and keep the session
            raise DebuggerError(f"internal error ({type(e).__name__}: {e}); the session goes on") from e

    def _execute(self, line: str) -> str:
        line = line.strip()
        if not line or line.startswith("#"):
            return ""
        m = re.fullmatch(r"(\S+?)(/\S+)?(?:\s+(.*))?", line, re.S)
        assert m is not None
        word, fmt, rest = m.group(1), m.group(2), (m.group(3) or "").strip()
        cmd = ALIASES.get(word, word)
        if cmd not in COMMANDS:
            cands = [c for c in COMMANDS if c.startswith(word)]
            if len(cands) == 1:
                cmd = cands[0]
            else:
                raise DebuggerError(f"unknown command {word}" + (f" (ambiguous: {', '.join(cands)})" if cands else "; try help"))
        if cmd == "x":
            return self.examine((fmt or "/1gx")[1:], rest or hex(self._need().pc))
        return getattr(self, "_cmd_" + cmd.replace("-", "_"))(rest)

    def _count(self, rest: str) -> int:
        if not rest:
            return 1
        try:
            n = _int(rest)
        except ValueError:
            raise DebuggerError(f"not a count: {rest}") from None
        if not 1 <= n <= MAX_COUNT:
            raise DebuggerError(f"count must be 1..{MAX_COUNT:,} (continue or until run further)")
        return n

    def _cmd_stepi(self, rest: str) -> str:
        return self.show_stop(self.stepi(self._count(rest)))

    def _cmd_step(self, rest: str) -> str:
        return self._lines(rest, self.step_line, "step")

    def _cmd_next(self, rest: str) -> str:
        return self._lines(rest, self.next_line, "next")

    def _lines(self, rest: str, one: Callable[[int], Stop], what: str) -> str:
        """`step N` / `next N`: N lines within MAX_STEP_INSNS instructions in all."""
        n = self._count(rest)
        b = self._need_running()
        end = b.icount + MAX_STEP_INSNS
        st = None
        for _ in range(n):
            if b.icount >= end:
                st = Stop("limit", f"{what}: no stop within {MAX_STEP_INSNS:,} instructions")
                break
            st = one(end - b.icount)
            if st.reason != what:
                break
        return self.show_stop(st)

    def _cmd_finish(self, rest: str) -> str:
        return self.show_stop(self.finish())

    def _cmd_continue(self, rest: str) -> str:
        return self.show_stop(self.cont())

    def _cmd_until(self, rest: str) -> str:
        if not rest:
            return self._cmd_next("")
        return self.show_stop(self.until(rest))

    def _cmd_break(self, rest: str) -> str:
        return self.add_breakpoint(rest or hex(self._need().pc))

    def _cmd_tbreak(self, rest: str) -> str:
        return self.add_breakpoint(rest or hex(self._need().pc), temporary=True)

    def _cmd_delete(self, rest: str) -> str:
        try:
            nums = [int(x) for x in rest.split()]
        except ValueError:
            raise DebuggerError(f"delete: numbers, not {rest}") from None
        return self.delete(nums)

    def _cmd_watch(self, rest: str) -> str:
        if not rest:
            raise DebuggerError("watch pstate.FIELD | SYSREG | *ADDR [LEN]")
        return self.add_watch(rest)

    def _cmd_catch(self, rest: str) -> str:
        return self.add_catch(rest.split())

    def _cmd_info(self, rest: str) -> str:
        parts = rest.split()
        if not parts:
            raise DebuggerError("info registers|pstate|sysregs [GROUP]|exceptions|breakpoints")
        what = {"r": "registers", "reg": "registers", "b": "breakpoints", "break": "breakpoints",
                "watchpoints": "breakpoints"}.get(parts[0], parts[0])
        if "registers".startswith(what):
            if len(parts) > 1:
                return "\n".join(self.info_register(name) for name in parts[1:])
            return self.info_registers()
        if "pstate".startswith(what):
            return self.info_pstate()
        if "sysregs".startswith(what):
            return self.info_sysregs(parts[1] if len(parts) > 1 else None)
        if "exceptions".startswith(what):
            return self.info_exceptions(self._count(parts[1]) if len(parts) > 1 else 20)
        if "breakpoints".startswith(what):
            return self.info_breakpoints()
        raise DebuggerError(f"info {parts[0]}: registers, pstate, sysregs, exceptions or breakpoints")

    def _cmd_disassemble(self, rest: str) -> str:
        parts = rest.split()
        loc = parts[0] if parts else None
        return self.disassemble(loc, self._count(parts[1]) if len(parts) > 1 else 10)

    def _cmd_list(self, rest: str) -> str:
        return self.list_source(rest or None)

    def _cmd_set(self, rest: str) -> str:
        rest = re.sub(r"^var\s+", "", rest)
        if "=" not in rest:
            raise DebuggerError("set $xN=V | set pstate.pan=1 | set HCR_EL2=V | set *ADDR=V")
        lhs, rhs = rest.split("=", 1)
        return self.set_value(lhs, rhs)

    def _cmd_inject(self, rest: str) -> str:
        return self.inject(rest.strip().lower())

    def _cmd_reverse_stepi(self, rest: str) -> str:
        return self.show_stop(self.reverse_stepi(self._count(rest)))

    def _cmd_reverse_continue(self, rest: str) -> str:
        return self.show_stop(self.reverse_continue())

    def _cmd_load(self, rest: str) -> str:
        try:
            args = shlex.split(rest)
        except ValueError as e:
            raise DebuggerError(f"load: {e}") from None
        if args and args[0] == "scenario":
            args = args[1:]
            variant = None
            if "--variant" in args:
                i = args.index("--variant")
                if i + 1 >= len(args):
                    raise DebuggerError("--variant needs a name")
                variant = args[i + 1]
                del args[i : i + 2]
            if len(args) != 1:
                raise DebuggerError("load scenario NAME [--variant V]")
            name = args[0]
            return self._remember(lambda: self.load_scenario(name, variant))
        if len(args) == 1:
            path = args[0]
            return self._remember(lambda: self.load_program(path))
        raise DebuggerError("load scenario NAME [--variant V] | load PROGRAM")

    def _cmd_run(self, rest: str) -> str:
        """gdb's run: start the program (PROGRAM, or the loaded target again) and continue."""
        path = rest.strip()
        loaded = self._remember(lambda: self.load_program(path)) if path else self.restart()
        started = f"starting {self.target}"
        if self.output is not None:
            self.output(f"{started}\n".encode())  # before the program's output, as gdb's "Starting program"
            return self.show_stop(self.cont())
        return loaded.split("\n", 1)[0] + "\n" + self.show_stop(self.cont())

    def _cmd_source(self, rest: str) -> str:
        path = Path(rest.strip())
        if self._source_depth >= MAX_SOURCE_DEPTH:
            raise DebuggerError(f"source: nested more than {MAX_SOURCE_DEPTH} deep")
        if not path.is_file() or path.stat().st_size > MAX_SOURCE_BYTES:
            what = "not a file" if not path.is_file() else f"larger than {MAX_SOURCE_BYTES:,} bytes"
            raise DebuggerError(f"source: cannot read {rest.strip()}: {what}")
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError as e:
            raise DebuggerError(f"source: cannot read {rest.strip()}: {e.strerror or e}") from None
        out = []
        self._source_depth += 1
        try:
            for n, line in enumerate(lines, 1):
                try:
                    res = self.execute(line)
                except DebuggerError as e:
                    raise DebuggerError(f"{path}:{n}: {e}") from None
                if res:
                    out.append(res)
                if self.done:
                    break
        finally:
            self._source_depth -= 1
        return "\n".join(out)

    def _cmd_help(self, rest: str) -> str:
        return "\n".join(f"{name:<18} {escape(text)}" for name, text in COMMANDS.items())

    def _cmd_quit(self, rest: str) -> str:
        self.done = True
        return ""


def _int(text: str) -> int:
    text = text.strip().replace("_", "")
    return int(text, 0)


def _fit(value: int, bits: int, what: str) -> int:
    """`value` as `bits` bits (a negative one in two's complement); refused if it does not fit."""
    if not -(1 << (bits - 1)) <= value < 1 << bits:
        raise DebuggerError(f"{value:#x} does not fit in the {bits} bits of {what}")
    return value & ((1 << bits) - 1)


def _sysreg_note(name: str, v: int) -> str:
    """A few decoded bits where they matter to PAN/UAO/VHE questions."""
    if name == "HCR_EL2":
        bits = [n for n, b in (("E2H", 34), ("TGE", 27), ("RW", 31), ("TWI", 13), ("IMO", 4), ("FMO", 3),
                               ("AMO", 5), ("VM", 0), ("TSC", 19)) if v >> b & 1]
        return "  " + " ".join(bits)
    if name.startswith("SCTLR_EL"):
        bits = [n for n, b in (("M", 0), ("SPAN", 23), ("nTWI", 16), ("WXN", 19), ("EE", 25)) if v >> b & 1]
        return "  " + " ".join(bits)
    if name.startswith("ESR_EL") and v:
        return f"  {decode_esr(v)}"
    if name.startswith("SPSR_EL"):
        ps = PState.from_bits(v)
        return f"  EL{ps.el}{'h' if ps.sp else 't'} PAN={ps.pan} UAO={ps.uao} DAIF={ps.d}{ps.a}{ps.i}{ps.f}"
    return ""


ALIASES = {"si": "stepi", "s": "step", "n": "next", "c": "continue", "cont": "continue", "fin": "finish",
           "u": "until", "b": "break", "tb": "tbreak", "d": "delete", "i": "info", "disas": "disassemble",
           "l": "list", "rsi": "reverse-stepi", "rc": "reverse-continue", "q": "quit", "exit": "quit", "h": "help"}
COMMANDS = {
    "stepi": "stepi [N]: execute N instructions (si)",
    "step": "step [N]: to the next source line (s)",
    "next": "next [N]: next source line, over bl/blr (n)",
    "finish": "finish: run until the current function returns to x30 (fin)",
    "continue": "continue: until a breakpoint, watchpoint, catchpoint or the end (c); Ctrl-C interrupts",
    "until": "until LOC: run to LOC (u)",
    "break": "break LOC: LOC is a label, label+off, an address or file:line (b)",
    "tbreak": "tbreak LOC: a breakpoint that is deleted when hit",
    "delete": "delete [N...]: delete breakpoints/watchpoints (all without N) (d)",
    "watch": "watch pstate.FIELD | SYSREG | *ADDR [LEN]: stop when it changes / is written",
    "catch": "catch exception [svc|hvc|brk|undefined|wfx|abort|data_abort|inst_abort|irq|fiq|serror|...] [elN] | catch eret",
    "info": "info registers | pstate | sysregs [el1|el2|el3|vhe|NAME] | exceptions [N] | breakpoints (i)",
    "x": "x/NFU ADDR: examine memory (F: x d u i; U: b h w g), e.g. x/4gx sp",
    "disassemble": "disassemble [LOC] [N]: capstone, with labels and source lines (disas)",
    "list": "list [LOC]: source around LOC or the PC (l)",
    "set": "set $xN=V | set pstate.pan=1 | set SYSREG=V | set *ADDR=V (starts a new reverse history)",
    "inject": "inject irq|fiq|serror: make an interrupt pending now",
    "reverse-stepi": "reverse-stepi [N]: back N instructions (rsi)",
    "reverse-continue": "reverse-continue: back to the previous stop of a breakpoint/watchpoint/catchpoint (rc)",
    "load": "load scenario NAME [--variant V] | load PROGRAM",
    "run": "run [PROGRAM]: start PROGRAM (.S, ELF, binary), or the loaded target again from the start, and continue",
    "source": "source FILE: run the commands in FILE",
    "help": "help: this list (h)",
    "quit": "quit (q)",
}
