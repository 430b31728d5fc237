"""The emulated board: the one package that talks to Unicorn."""

from harness.machine.board import (
    DEFAULT_MAX_INSNS,
    Board,
    BoardError,
    BoardState,
    RunResult,
    run_program,
)

__all__ = ["DEFAULT_MAX_INSNS", "Board", "BoardError", "BoardState", "RunResult", "run_program"]
