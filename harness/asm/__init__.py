"""Source to image: preprocessing, keystone, capstone check; ELF and flat loading."""

from harness.asm.assembler import assemble_file, assemble_text, expand_for_gnu_as
from harness.asm.image import AsmError, Image, Segment, SourceLoc
from harness.asm.loader import load_elf, load_flat, load_program

__all__ = [
    "AsmError", "Image", "Segment", "SourceLoc", "assemble_file", "assemble_text",
    "expand_for_gnu_as", "load_elf", "load_flat", "load_program",
]
