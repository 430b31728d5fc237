"""Text helpers shared by every command's diagnostics."""

import re

_LINE_BREAKS = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def one_line(text: str) -> str:
    """`text` with each character that would start a new line (str.splitlines) as an escape, so a
    diagnostic that quotes source, a file name or an argument stays one line."""
    return _LINE_BREAKS.sub(lambda m: repr(m.group(0))[1:-1], text)
