"""Source to a flat list of statements, each with its origin.

Two stages, as a kernel build has them: a C-preprocessor stage (`#include`,
`#define`, `#if...`, the kernel's `ALTERNATIVE(old, new, CAP)`: harness.asm.cpp), then GNU-as
macro processing (`.include`, `.macro`, `.rept`, `.irp`, `.if`, `alternative_if`,
numeric local labels: harness.asm.macros).  keystone sees only single, plain instructions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.asm.cpp import DEFINE_NAME, CPreprocessor, SourceFiles
from harness.asm.image import SourceLoc
from harness.asm.macros import MacroExpander
from harness.asm.statement import Stmt

__all__ = ["DEFINE_NAME", "Preprocessor", "Stmt"]


class Preprocessor:
    """Both stages over one set of sources: `cpp` a file, then `statements` of its lines."""

    def __init__(
        self,
        *,
        caps: frozenset[str],
        defines: Mapping[str, int | str] | None = None,
        include_dirs: list[Path] | None = None,
        overrides: Mapping[str, str] | None = None,
        display_root: Path | None = None,
    ) -> None:
        self.sources = SourceFiles(overrides, display_root)
        self.cpp_stage = CPreprocessor(self.sources, caps=caps, defines=defines, include_dirs=include_dirs)
        self.macro_stage = MacroExpander(caps)

    def cpp(self, path: Path, text: str | None = None) -> list[tuple[str, SourceLoc]]:
        """Lines after #include/#define/#if, comments removed, each with its origin."""
        return self.cpp_stage.run(path, text)

    def statements(self, lines: list[tuple[str, SourceLoc]]) -> list[Stmt]:
        return self.macro_stage.statements(lines)
