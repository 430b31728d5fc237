"""The run state the hooks and the run loop share, explicit: what the board is doing (a free
run, one step, or neither) and what a hook asked the loop to do when Unicorn returns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto


class Mode(Enum):
    IDLE = auto()      # outside emu_start
    RUNNING = auto()   # emu_start in free run (the native counter counts blocks)
    STEPPING = auto()  # emu_start with count=1


class Action(Enum):
    """What a code hook stopped before an instruction for (it has not executed), or, for
    OBSERVED, let run to the end of its block, where the native counter stops the run."""

    BREAKPOINT = auto()
    WFX = auto()            # WFI/WFE at EL0 in host: the Arm trap rule decides
    SUPPLY = auto()         # MSR (immediate) to a PSTATE field the board supplies
    INJECT = auto()         # an injection point reached
    OBSERVE = auto()        # ERET or PSTATE write: step it natively and check it
    OBSERVED = auto()       # ERET or PSTATE write that ends its block: runs on, checked at the next
                            # (by the native counter's call, or after it stopped there)
    ERET_BY_BOARD = auto()  # ERET to AArch32: the board performs the illegal return


@dataclass
class Emu:
    """One emu_start call: what happened inside it, for the run loop to act on after it."""

    mode: Mode = Mode.IDLE
    action: Action | None = None
    at: int = 0                       # the instruction the action stopped before
    retired: bool = True              # (stepping) the stepped instruction completed
    step_from: int = 0                # (stepping) the address the step started at
    store_at: tuple[int, int] | None = None      # (pc, icount) of a store whose watch hook runs
    resume_after: tuple[int, int] | None = None  # (pc, icount) to resume at: a watched store's next insn
    unmapped: tuple[int, int, int] | None = None  # (access, address, pc) of an unmapped access

    def request(self, action: Action, at: int) -> None:
        self.action, self.at = action, at

    def take_action(self) -> tuple[Action | None, int]:
        action, at = self.action, self.at
        self.action = None
        return action, at
