"""Source to image: preprocessing, keystone, capstone check; ELF and flat loading.

The names are loaded on first use (PEP 562), so `from harness.asm import Image` or loading an
ELF does not import the assembler (and capstone), nor loading a .S pyelftools."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_WHERE = {
    "assemble_file": "assembler", "assemble_text": "assembler", "expand_for_gnu_as": "assembler",
    "AsmError": "image", "Image": "image", "Segment": "image", "SourceLoc": "image",
    "load_elf": "loader", "load_flat": "loader", "load_program": "loader",
}

__all__ = [
    "AsmError", "Image", "Segment", "SourceLoc", "assemble_file", "assemble_text",
    "expand_for_gnu_as", "load_elf", "load_flat", "load_program",
]
assert sorted(__all__) == sorted(_WHERE)

if TYPE_CHECKING:
    from harness.asm.assembler import assemble_file, assemble_text, expand_for_gnu_as
    from harness.asm.image import AsmError, Image, Segment, SourceLoc
    from harness.asm.loader import load_elf, load_flat, load_program


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
