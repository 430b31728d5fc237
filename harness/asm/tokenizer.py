"""The one tokenizer of GNU-as source text, shared by both preprocessor stages and the layout.

GNU as's lexical rules live here and nowhere else: a string is `"..."` with backslash escapes (left
open, it runs to the end of the line); a character constant is `'c`, `'c'`, `'\\c` or `'\\c'`;
comments are `/* ... */` (across lines) and `//` to the end of the line. Every function that splits
or rewrites a line goes through these tokens, so a `;`, `,`, `(` or `//` inside a string or a
character constant is never taken for syntax.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import cache

from harness.asm.image import AsmError, SourceLoc

# The quoted tokens; `sc`/`cc` say whether the closing quote is there.
_STRING = r'"(?:[^"\\]|\\.?)*(?P<sc>")?'
_CHAR = r"'(?:\\.?|[^\\])(?P<cc>')?"
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUOTED = re.compile(rf"(?P<s>{_STRING})|(?P<c>{_CHAR})", re.S)
_COMMENT_SCAN = re.compile(rf"{_STRING}|{_CHAR}|/\*|//", re.S)
_STATEMENT_SCAN = re.compile(rf"(?P<s>{_STRING})|(?P<c>{_CHAR})|;", re.S)
_WORD_SCAN = re.compile(rf"{_STRING}|{_CHAR}|[A-Za-z_][A-Za-z0-9_]*", re.S)


@cache
def _separators(sep: str, opens: str, closes: str) -> re.Pattern[str]:
    return re.compile(rf"{_STRING}|{_CHAR}|[{re.escape(sep + opens + closes)}]", re.S)


def strip_comments(lines: list[str]) -> list[str]:
    """The lines without `/* */` (a line per line, so numbers stay) and `//` comments, trailing
    blanks removed."""
    out = []
    in_block = False
    for line in lines:
        i = 0
        if in_block:
            j = line.find("*/")
            if j < 0:
                out.append("")
                continue
            in_block, i = False, j + 2
        res = []
        while True:
            m = _COMMENT_SCAN.search(line, i)
            if m is None:
                res.append(line[i:])
                break
            tok = m.group()
            if tok == "//":
                res.append(line[i : m.start()])
                break
            if tok == "/*":
                res.append(line[i : m.start()])
                j = line.find("*/", m.end())
                if j < 0:
                    in_block = True
                    break
                i = j + 2
                continue
            res.append(line[i : m.end()])
            i = m.end()
        out.append("".join(res).rstrip())
    return out


def split_statements(text: str, loc: SourceLoc | None = None, via: str = "") -> list[str]:
    """The statements of a line (GNU as for AArch64 separates them with `;`), stripped, empty ones
    left out. With `loc`, a quote left open is an error there."""
    if ";" not in text and '"' not in text and "'" not in text:
        text = text.strip()
        return [text] if text else []
    parts: list[str] = []
    start = 0
    for m in _STATEMENT_SCAN.finditer(text):
        if m.group("s") is not None:
            if m.group("sc") is None and loc is not None:
                raise AsmError('missing closing quote (")', _quote_loc(loc, '"'), via)
        elif m.group("c") is not None:
            # 'c needs no closing quote in GNU as, but 'nosuchlabel is one left open
            end = m.end()
            if m.group("cc") is None and loc is not None and end < len(text) and (text[end].isalnum() or text[end] == "_"):
                raise AsmError("missing closing quote (')", _quote_loc(loc, "'"), via)
        else:
            parts.append(text[start : m.start()])
            start = m.end()
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _quote_loc(loc: SourceLoc, quote: str) -> SourceLoc:
    k = loc.text.rfind(quote)
    return replace(loc, col=k + 1) if k >= 0 else loc


def split_top(text: str, sep: str = ",", opens: str = "(", closes: str = ")") -> list[str]:
    """The pieces of `text` between the `sep`s outside strings, character constants and brackets
    (as they are: not stripped, empty ones kept)."""
    parts: list[str] = []
    depth = start = 0
    for m in _separators(sep, opens, closes).finditer(text):
        ch = m.group()
        if ch in opens:
            depth += 1
        elif ch in closes:
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start : m.start()])
            start = m.end()
    parts.append(text[start:])
    return parts


def split_commas(text: str) -> list[str]:
    """Operands of a directive: the comma-separated pieces, stripped, empty ones left out."""
    return [p for p in (q.strip() for q in split_top(text)) if p]


def call_args(line: str, pos: int, loc: SourceLoc) -> tuple[list[str], int] | None:
    """The arguments of `NAME( ... )` with pos just after NAME, split on the commas outside
    nested parentheses, and the position after the `)`; None when no `(` follows."""
    j = pos
    while j < len(line) and line[j] in " \t":
        j += 1
    if j >= len(line) or line[j] != "(":
        return None
    depth = 0
    args: list[str] = []
    start = j + 1
    for m in _separators(",", "(", ")").finditer(line, j):
        ch = m.group()
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(line[start : m.start()])
                return args, m.end()
        elif ch == "," and depth == 1:
            args.append(line[start : m.start()])
            start = m.end()
    raise AsmError("unterminated macro arguments", loc)


def next_word(line: str, pos: int) -> re.Match[str] | None:
    """The first identifier at or after pos outside strings and character constants."""
    while True:
        m = _WORD_SCAN.search(line, pos)
        if m is None or m.group()[0] not in "\"'":
            return m
        pos = m.end()


def outside_quotes(text: str, rewrite) -> str:
    """`text` with `rewrite` applied to each run between strings and character constants."""
    if '"' not in text and "'" not in text:
        return rewrite(text)
    out = []
    pos = 0
    for m in _QUOTED.finditer(text):
        out.append(rewrite(text[pos : m.start()]))
        out.append(m.group())
        pos = m.end()
    out.append(rewrite(text[pos:]))
    return "".join(out)


def split_head(text: str) -> tuple[str, str]:
    """`mnemonic-or-directive`, `operands` of one statement (any blanks between them)."""
    parts = text.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")
