"""Reading a text file a user named (a TOML scenario file, a variant's diff): a regular file, of
bounded size, in UTF-8, or one line saying which of these it is not (with file:line:col for a
byte that is not UTF-8)."""

from __future__ import annotations

from pathlib import Path

MAX_TEXT_BYTES = 4 << 20   # far beyond any scenario file or variant diff; bounds the memory a bad one takes


class TextFileError(Exception):
    """`path[:line:col]: what is wrong`, one line."""


def read_text(path: Path | str, *, limit: int = MAX_TEXT_BYTES) -> str:
    p = Path(path)
    try:
        if not p.is_file():  # a FIFO or /dev/zero would block or never end
            what = "is a directory" if p.is_dir() else "not a regular file" if p.exists() else "no such file"
            raise TextFileError(f"{p}: {what}")
        with open(p, "rb") as f:
            data = f.read(limit + 1)
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        raise TextFileError(f"{p}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    if len(data) > limit:
        raise TextFileError(f"{p}: larger than {limit:,} bytes; not a file this tool reads")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise TextFileError(f"{p}:{line}:{col}: not UTF-8 text (byte {data[e.start]:#04x})") from None
