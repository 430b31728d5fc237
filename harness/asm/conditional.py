"""The conditional blocks of both preprocessor stages: cpp's `#if/#elif/#else/#endif` and GNU as's
`.if/.elseif/.else/.endif` (with `alternative_if` where it nests inside one) follow the same rules:
one branch of a block at most is taken, and nothing inside a block that is not being taken is
evaluated."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

Opener = TypeVar("Opener")


@dataclass(slots=True)
class _Block(Generic[Opener]):
    taking: bool  # the branch being read now is taken
    taken: bool  # some branch of this block has been (so no later one is)
    outer: bool  # every enclosing block is taking its branch
    opener: Opener  # what opened it, for the error when it is never closed


class ConditionalStack(Generic[Opener]):
    """Open conditional blocks, innermost last. `active` says whether a statement read now is
    kept. Conditions are callables, called only where their value matters."""

    def __init__(self) -> None:
        self._blocks: list[_Block[Opener]] = []
        self.active = True

    def __bool__(self) -> bool:
        return bool(self._blocks)

    @property
    def innermost(self) -> Opener:
        """What opened the innermost open block."""
        return self._blocks[-1].opener

    def open(self, opener: Opener, condition: Callable[[], bool]) -> None:
        """`#if`/`.if`: inside a block that is not taking, nothing is evaluated and no branch is."""
        if not self.active:
            self._blocks.append(_Block(False, True, False, opener))
            return
        value = condition()
        self._blocks.append(_Block(value, value, True, opener))
        self.active = value

    def elif_(self, condition: Callable[[], bool]) -> bool:
        """`#elif`/`.elseif`; False when no block is open."""
        if not self._blocks:
            return False
        top = self._blocks[-1]
        if top.taken or not top.outer:
            top.taking = False
        else:
            top.taking = top.taken = condition()
        self.active = top.outer and top.taking
        return True

    def else_(self) -> bool:
        """`#else`/`.else`; False when no block is open."""
        if not self._blocks:
            return False
        top = self._blocks[-1]
        top.taking, top.taken = not top.taken, True
        self.active = top.outer and top.taking
        return True

    def close(self) -> bool:
        """`#endif`/`.endif`; False when no block is open."""
        if not self._blocks:
            return False
        self._blocks.pop()
        self.active = not self._blocks or (self._blocks[-1].outer and self._blocks[-1].taking)
        return True
