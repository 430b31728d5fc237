"""A minimal ELF64 writer for tests: an image the harness assembled, as an executable (or, with
e_type=1, a file claiming to be a relocatable object), one PT_LOAD per segment, no sections."""

from __future__ import annotations

import struct

ET_REL, ET_EXEC = 1, 2
EM_AARCH64 = 183


def elf_from_image(image, e_type: int = ET_EXEC) -> bytes:
    ehdr_size, phdr_size = 64, 56
    phoff = ehdr_size
    data_off = phoff + phdr_size * len(image.segments)
    body, phdrs = b"", b""
    for seg in image.segments:
        off = data_off + len(body)
        flags = 4 | (2 if "w" in seg.flags else 0) | (1 if "x" in seg.flags else 0)
        phdrs += struct.pack("<IIQQQQQQ", 1, flags, off, seg.addr, seg.addr, len(seg.data), len(seg.data), 0x1000)
        body += seg.data
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", e_type, EM_AARCH64, 1, image.entry, phoff, 0, 0, ehdr_size,
                               phdr_size, len(image.segments), 64, 0, 0)
    return ehdr + phdrs + body
