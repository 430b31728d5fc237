"""Forward and reverse execution of one loaded board, stopping where the session's breakpoints,
watch- and catchpoints say.

Reverse execution: checkpoints (Unicorn context plus memory, `Board.save_state`) are taken at
the start and then every CHECKPOINT_EVERY instructions of forward execution; going back to
instruction count N restores the newest checkpoint at or before N and re-runs the rest at
native speed with every stop condition off (the board is deterministic). A change made by
`set`, `inject` or a memory write cannot be replayed, so it starts a new history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.arch.pstate import PState
from harness.debugger.base import DebuggerError
from harness.debugger.points import Breakpoint, FlagWatch, Hit, Points
from harness.machine import decode
from harness.machine.board import Board, BoardError, BoardState, RunResult
from harness.trace import events as ev
from harness.trace.events import StopReason

CHECKPOINT_EVERY = 1_000_000
CHUNK = 1_000_000  # a continue runs this many instructions between checks for Ctrl-C
MAX_STEP_INSNS = 1_000_000  # `step`/`next` give up after this many
STEP_CHUNK = 10_000  # board steps between checks for Ctrl-C in a long stepi
MAX_CONTINUE = 2_000_000_000


@dataclass
class Stop:
    """Why and where execution stopped: what a stop shows."""

    reason: StopReason
    message: str = ""
    exceptions: list[ev.Event] = field(default_factory=list)  # taken or returned from since the last stop
    hit: Hit | None = None  # the watch- or catchpoint that fired (reason WATCH)
    breakpoints: list[Breakpoint] = field(default_factory=list)  # the ones at the PC (reason BREAKPOINT)


def source_line(b: Board, addr: int) -> tuple[str, int] | None:
    loc = b.image.source_at(addr) if b.image is not None else None
    return (loc.file, loc.line) if loc is not None else None


def _exceptions(b: Board, start: int) -> list[ev.Event]:
    return [e for e in b.events[start:] if isinstance(e, ev.ExceptionEntry | ev.ExceptionReturn)]


class History:
    """The checkpoints of the board's run since the history started."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.checkpoints: list[BoardState] = [board.save_state()]

    @property
    def first(self) -> int:
        return self.checkpoints[0].icount

    def restart(self) -> None:
        """A change made from outside cannot be replayed: the history starts here."""
        self.checkpoints = [self.board.save_state()]

    def room(self) -> int:
        """Instructions until the next checkpoint is due."""
        return CHECKPOINT_EVERY - (self.board.icount - self.checkpoints[-1].icount)

    def checkpoint(self) -> None:
        if self.room() <= 0:
            self.checkpoints.append(self.board.save_state())

    def goto(self, target: int, breakpoints: set[int]) -> None:
        """Put the board at instruction count `target` (within the history), re-running from
        the newest checkpoint before it with `breakpoints` lifted."""
        b = self.board
        cps = [i for i, c in enumerate(self.checkpoints) if c.icount <= target]
        if not cps:
            raise DebuggerError(f"no history before instruction {self.first}")
        k = cps[-1]
        b.restore_state(self.checkpoints[k])
        del self.checkpoints[k + 1 :]
        for a in breakpoints:
            b.remove_breakpoint(a)
        try:
            while b.icount < target:
                res = b.run(min(target - b.icount, self.room()) or target - b.icount)
                if res.status != StopReason.BUDGET:
                    raise DebuggerError(f"replay stopped at instruction {b.icount}: {res.message}")
                self.checkpoint()
        finally:
            for a in breakpoints:
                b.add_breakpoint(a)


class Execution:
    """stepi, continue, step, next, finish, until and their reverse, on one board."""

    def __init__(self, board: Board, points: Points, interrupt: Callable[[], bool], flush: Callable[[], None]) -> None:
        self.board = board
        self.points = points
        self.history = History(board)
        self.interrupt = interrupt  # polled between chunks (Ctrl-C)
        self.flush = flush  # passes on the program's output
        self._hit: Hit | None = None  # what Board.stop_on_event last stopped for

    # ---------------------------------------------------------------- stops

    def _stop(self, reason: StopReason, message: str, start: int, hit: Hit | None = None) -> Stop:
        self.flush()
        return Stop(reason, message, _exceptions(self.board, start), hit)

    def _result(self, res: RunResult, start: int) -> Stop:
        return self._stop(res.status, res.message, start, self._hit if res.status == StopReason.WATCH else None)

    def _stop_condition(self, e: ev.Event) -> str | None:
        """Board.stop_on_event: the first watch- or catchpoint the event triggers."""
        self._hit = self.points.first_hit(e)
        return self._hit.message if self._hit else None

    def _flag_stop(self, flags: list[FlagWatch], before: PState, start: int) -> Stop | None:
        """An NZCV watch whose flag the last instruction changed."""
        hit = Points.flag_change(flags, before, self.board.pstate())
        if hit is None:
            return None
        hit.watch.hits += 1
        return self._stop(StopReason.WATCH, hit.message, start, hit)

    def _breakpoint_stop(self, start: int) -> Stop:
        hit = self.points.at(self.board.pc)
        for bp in hit:
            bp.hits += 1
        # "" at an internal (finish/until) one and at gdb's, which gdb reports itself
        msg = ", ".join(bp.title for bp in hit if bp.num)
        self.points.delete([bp.num for bp in hit if bp.temporary and bp.num])
        st = self._stop(StopReason.BREAKPOINT, msg, start)
        st.breakpoints = hit
        return st

    # ---------------------------------------------------------------- forward

    def stepi(self, n: int = 1) -> Stop:
        b = self.board
        start = len(b.events)
        flags = self.points.flags()
        b.stop_on_event = self._stop_condition
        try:
            left = n
            while left > 0:
                self.history.checkpoint()
                # NZCV watches compare after every instruction; otherwise the board steps in chunks
                k = 1 if flags else max(1, min(left, STEP_CHUNK, self.history.room()))
                before = b.pstate()
                res = b.step(k)
                left -= k
                if res is not None:
                    return self._result(res, start)
                st = self._flag_stop(flags, before, start)
                if st is not None:
                    return st
                if self.interrupt():
                    return self._stop(StopReason.INTERRUPT, "interrupted", start)
        finally:
            b.stop_on_event = None
        return self._stop(StopReason.STEP, "", start)

    def cont(self, limit: int = MAX_CONTINUE) -> Stop:
        b = self.board
        if self.points.flags():
            # every instruction single-stepped: a shorter limit keeps the command bounded
            return self.step_until(lambda: False, min(limit, MAX_STEP_INSNS), "continue")
        start = len(b.events)
        end = b.icount + limit
        # a stop at a breakpoint is before its instruction: step off it first
        if b.pc in self.points.addrs():
            st = self.stepi(1)
            if st.reason != StopReason.STEP:
                return st
        b.stop_on_event = self._stop_condition
        try:
            while True:
                self.history.checkpoint()
                res = b.run(max(1, min(CHUNK, end - b.icount, self.history.room())))
                self.flush()
                if res.status == StopReason.BUDGET:
                    if b.icount >= end:
                        return self._stop(StopReason.LIMIT, f"stopped after {limit:,} instructions", start)
                    if self.interrupt():
                        return self._stop(StopReason.INTERRUPT, "interrupted", start)
                    continue
                if res.status == StopReason.BREAKPOINT:
                    return self._breakpoint_stop(start)
                return self._result(res, start)
        finally:
            b.stop_on_event = None

    def step_until(self, done: Callable[[], bool], limit: int, what: str,
                   reason: StopReason = StopReason.STEP) -> Stop:
        """Single-step until done() (then a stop for `reason`) or a stop condition; `what`
        names the command."""
        b = self.board
        start = len(b.events)
        bps = self.points.addrs()
        flags = self.points.flags()
        b.stop_on_event = self._stop_condition
        try:
            for k in range(limit):
                self.history.checkpoint()
                before = b.pstate() if flags else None
                res = b.step(1)
                if res is not None:
                    return self._result(res, start)
                st = self._flag_stop(flags, before, start) if before is not None else None
                if st is not None:
                    return st
                if done():
                    return self._stop(reason, "", start)
                if k and b.pc in bps:
                    return self._breakpoint_stop(start)
                if k % 256 == 255 and self.interrupt():
                    return self._stop(StopReason.INTERRUPT, "interrupted", start)
        finally:
            b.stop_on_event = None
        return self._stop(StopReason.LIMIT, f"{what}: no stop within {limit:,} instructions", start)

    def run_to(self, addr: int, reason: StopReason, el: int | None = None) -> Stop:
        """Continue with a temporary internal breakpoint at addr (at EL el, if given)."""
        b = self.board
        start = len(b.events)
        end = b.icount + MAX_CONTINUE
        internal = addr not in self.points.addrs()
        if internal:
            b.add_breakpoint(addr)
        try:
            while True:
                st = self.cont(max(1, end - b.icount))
                if st.reason == StopReason.BREAKPOINT and b.pc == addr and not st.message:
                    if el is not None and b.pstate().el != el:
                        # the address at another EL: step off the internal breakpoint, go on
                        st = self.stepi(1)
                        if st.reason != StopReason.STEP:
                            return st
                        continue
                    st = self._stop(reason, "", start)
                st.exceptions = _exceptions(b, start)
                return st
        finally:
            if internal:
                b.remove_breakpoint(addr)

    def step_line(self, limit: int = MAX_STEP_INSNS) -> Stop:
        b = self.board
        here = source_line(b, b.pc)
        if here is None:
            return self.stepi(1)
        return self.step_until(lambda: (source_line(b, b.pc) or here) != here, limit, "step")

    def next_line(self, limit: int = MAX_STEP_INSNS) -> Stop:
        """Like step, but a BL/BLR runs to its return."""
        b = self.board
        here = source_line(b, b.pc)
        start = len(b.events)
        for _ in range(limit):
            try:
                text = decode.disasm_text(b.word_at(b.pc), b.pc)
            except BoardError:
                text = "?"  # no memory at the PC: the step reports the fetch
            if text.split()[0] in ("bl", "blr"):
                st = self.run_to(b.pc + 4, StopReason.NEXT, b.pstate().el)
            else:
                st = self.stepi(1)
            if st.reason not in (StopReason.STEP, StopReason.NEXT):
                return st
            if here is None or (source_line(b, b.pc) or here) != here:
                return self._stop(StopReason.NEXT, "", start)
        return self._stop(StopReason.LIMIT, "next: no new line", start)

    def finish(self) -> Stop:
        b = self.board
        lr = b.reg(30)
        if not lr:
            raise DebuggerError("finish: x30 is 0, no caller to return to")
        return self.run_to(lr, StopReason.FINISH, b.pstate().el)

    # ---------------------------------------------------------------- reverse

    def _at_history_start(self, prefix: str = "") -> Stop:
        return Stop(StopReason.HISTORY_START, f"{prefix}at the start of the history (instruction {self.history.first})")

    def reverse_stepi(self, n: int = 1) -> Stop:
        b = self.board
        first = self.history.first
        if b.icount <= first:
            return self._at_history_start()
        target = max(first, b.icount - n)
        start = len(b.events)
        self.history.goto(target, self.points.addrs())
        msg = "" if target > first else self._at_history_start().message
        return self._stop(StopReason.REVERSE_STEP, msg, min(start, len(b.events)))

    def reverse_continue(self) -> Stop:
        """Back to the latest earlier instruction where a break/watch/catchpoint would stop."""
        b = self.board
        now, first = b.icount, self.history.first
        if now <= first:
            return self._at_history_start()
        hits = self._scan_stops(first, now)
        self.history.goto(hits[-1][0] if hits else first, self.points.addrs())
        if not hits:
            return self._stop(StopReason.HISTORY_START, self._at_history_start("no earlier stop: ").message,
                              len(b.events))
        return self._stop(StopReason.REVERSE_CONTINUE, hits[-1][1], len(b.events), hits[-1][2])

    def _scan_stops(self, first: int, end: int) -> list[tuple[int, str, Hit | None]]:
        """Replay [first, end) and list (icount, why, the watch hit) of every stop a forward run
        would make."""
        b = self.board
        self.history.goto(first, self.points.addrs())
        hits: list[tuple[int, str, Hit | None]] = []
        flags = self.points.flags()
        bps = self.points.addrs()

        def record(e: ev.Event) -> None:
            hit = self.points.first_hit(e, count=False)
            if hit:
                # a forward run stops after the write (MSR or store), or where the event leaves it
                at = e.icount + 1 if isinstance(e, ev.MemoryWrite | ev.SysregWrite) else b.icount
                hits.append((at, hit.message, hit))

        b.stop_on_event = record
        try:
            while b.icount < end:
                self.history.checkpoint()
                if b.pc in bps and b.icount > first:
                    hits.append((b.icount, f"breakpoint at {b.location(b.pc)}", None))
                if flags or b.pc in bps:
                    before = b.pstate()
                    res = b.step(1)
                    changed = Points.flag_change(flags, before, b.pstate())
                    if changed is not None:
                        hits.append((b.icount, changed.message, changed))
                    if res is not None:
                        break
                    continue
                res = b.run(max(1, min(end - b.icount, self.history.room())))
                if res.status not in (StopReason.BUDGET, StopReason.BREAKPOINT):
                    break
        finally:
            b.stop_on_event = None
        return [h for h in hits if first < h[0] < end]
