"""Source to image: the preprocessor's statements laid out in Python, encoded by keystone one
statement at a time, checked by capstone.

Python knows every statement's address (each instruction is 4 bytes), so labels, literal pools,
`adrp`/`:lo12:` and the extension mnemonics keystone lacks (MSR/MRS with any system register,
`msr pan|uao, #imm`, `esb`) are resolved here; keystone only ever sees one plain instruction with a
symbol resolver, in a child process. Every emitted word is disassembled and checked against its
statement. The parts: harness.asm.preprocess (.cpp, then .macros: GNU-as macros; both read
source through .tokenizer and keep their conditionals on a .conditional stack), .layout (first
pass), .encoder with .prepare, .backend (keystone) and .check (capstone) (second pass).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from harness.arch.features import FEATURES_MAX, Features
from harness.asm.backend import KEYSTONE
from harness.asm.encoder import Encoder
from harness.asm.image import AsmError, Image, SourceLoc
from harness.asm.layout import Layout
from harness.asm.preprocess import Preprocessor
from harness.data import ASM_DIR
from harness.memmap import DEFAULT_LOAD

DEFAULT_BASE = DEFAULT_LOAD
INCLUDE_DIRS = [ASM_DIR / "include", ASM_DIR]


@contextmanager
def _no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _preprocessor(features: Features | None, defines, overrides) -> Preprocessor:
    feats = features or FEATURES_MAX
    return Preprocessor(caps=feats.caps, defines=defines, include_dirs=INCLUDE_DIRS, overrides=overrides,
                        display_root=Path.cwd())


def _assemble(pp: Preprocessor, path: Path, text: str | None, base: int,
              section_addresses: Mapping[str, int] | None) -> Image:
    KEYSTONE.start()  # the worker starts (~0.1 s) while Python preprocesses and lays out
    # The statements and items are acyclic and may number millions: without the cyclic
    # collector rescanning them over and over, a large .rept assembles twice as fast.
    with _no_gc():
        stmts = pp.statements(pp.cpp(path, text))
        layout = Layout(base, section_addresses)
        layout.run(stmts)
        image = Encoder(layout).image()
    image.source_files = list(pp.sources.files)
    image.source_texts = dict(pp.sources.texts)
    return image


def assemble_file(
    path: str | os.PathLike,
    *,
    features: Features | None = None,
    defines: Mapping[str, int | str] | None = None,
    base: int = DEFAULT_BASE,
    section_addresses: Mapping[str, int] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Image:
    p = Path(path)
    pp = _preprocessor(features, defines, overrides)
    if not pp.sources.exists(p):
        raise AsmError(f"{p}: is a directory, not a source file" if p.is_dir() else f"{p}: no such file")
    return _assemble(pp, p, None, base, section_addresses)


def assemble_text(text: str, filename: str = "<string>", **kwargs) -> Image:
    pp = _preprocessor(kwargs.pop("features", None), kwargs.pop("defines", None), kwargs.pop("overrides", None))
    return _assemble(pp, Path(filename), text, kwargs.pop("base", DEFAULT_BASE), kwargs.pop("section_addresses", None))


def expand_for_gnu_as(
    path: str | os.PathLike,
    *,
    features: Features | None = None,
    defines: Mapping[str, int | str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> tuple[str, list[SourceLoc]]:
    """The fully preprocessed source, one statement per line, that GNU as assembles to the same
    words; with the origin of each line, so the two assemblers can be compared statement by statement."""
    pp = _preprocessor(features, defines, overrides)
    stmts = pp.statements(pp.cpp(Path(path)))
    lines: list[str] = []
    locs: list[SourceLoc] = []
    for st in stmts:
        for lab in st.labels:
            lines.append(f"{lab}:")
            locs.append(st.loc)
        if st.text:
            lines.append("\t" + st.text)
            locs.append(st.loc)
    return "\n".join(lines) + "\n", locs
