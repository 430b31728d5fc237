"""The C-preprocessor stage, as a kernel build runs it on a .S file: `#include`, `#define` (object-
and function-like), `#if/#ifdef/#elif/#else/#endif`, `#error`, and the kernel's
`ALTERNATIVE(old, new, CAP[, CONFIG])`; and where the sources come from."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.asm.conditional import ConditionalStack
from harness.asm.expr import ExprError, evaluate
from harness.asm.image import AsmError, SourceLoc
from harness.asm.tokenizer import IDENT, call_args, next_word, strip_comments
from harness.data import source_name

DEFINE_NAME = IDENT  # what -D NAME and #define accept
# The size of one source file a source may be.
MAX_SOURCE_BYTES = 64 << 20
MAX_INCLUDE_DEPTH = 32
_MAX_EXPANSION = 200
# ALTERNATIVE(old, new, CAP) becomes this block, resolved with the asm-macro forms.
ALT_IF, ALT_ELSE, ALT_ENDIF = ".harness_alt_if", ".harness_alt_else", ".harness_alt_endif"
_DIRECTIVE = re.compile(r"#\s*(\w+)\s*(.*)$")
_DIRECTIVES = {"if", "ifdef", "ifndef", "elif", "else", "endif", "include", "define", "undef", "error", "warning",
               "pragma", "line"}
_AS_INCLUDE = re.compile(r'\s*\.include\s+"([^"]+)"')


class SourceFiles:
    """The sources of one assembly: files on disk, or texts given in their place (a variant's
    patched files); the names messages show for them; which were read, in order."""

    def __init__(self, overrides: Mapping[str, str] | None = None, display_root: Path | None = None) -> None:
        self.overrides = {str(Path(k).resolve()): v for k, v in (overrides or {}).items()}
        self.display_root = display_root
        self.files: list[str] = []
        self.texts: dict[str, str] = {}  # shown name -> text, for sources not read from disk (overrides, given text)

    def exists(self, path: Path) -> bool:
        return str(path.resolve()) in self.overrides or path.is_file()

    def load(self, path: Path, text: str | None = None) -> tuple[str, str]:
        """The name a source is shown by and its text (`text`, when given, stands for the file)."""
        name = self.shown(path)
        if text is None:
            text = self.read(path)
            if str(path.resolve()) in self.overrides:
                self.texts[name] = text
        else:
            self.texts[name] = text
        if name not in self.files:
            self.files.append(name)
        return name, text

    def read(self, path: Path, loc: SourceLoc | None = None) -> str:
        key = str(path.resolve())
        if key in self.overrides:
            return self.overrides[key]
        try:
            if path.is_dir():
                raise AsmError(f"{path}: is a directory, not a source file", loc)
            if not path.is_file():  # a FIFO or a device would block or never end
                raise AsmError(f"{path}: not a regular file", loc)
            if path.stat().st_size > MAX_SOURCE_BYTES:
                raise AsmError(f"{path}: larger than {MAX_SOURCE_BYTES >> 20} MiB, too big for a source file", loc)
            data = path.read_bytes()
        except OSError as e:
            raise AsmError(f"cannot read {path}: {e.strerror}", loc) from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            col = e.start - data.rfind(b"\n", 0, e.start)
            raise AsmError(f"not UTF-8 text (byte {data[e.start]:#04x}); sources must be UTF-8",
                           SourceLoc(self.shown(path), line, "", col)) from None

    def shown(self, path: Path) -> str:
        # The project's own sources read `asm/...` wherever the package is installed.
        name = source_name(path)
        if name is not None:
            return name
        if self.display_root is not None:
            try:
                return str(path.resolve().relative_to(self.display_root))
            except ValueError:
                pass
        return str(path)


@dataclass
class _Define:
    params: list[str] | None  # None: object-like
    body: str


class CPreprocessor:
    """Source lines to the lines GNU as reads: directives done, comments gone, macros expanded."""

    def __init__(self, sources: SourceFiles, *, caps: frozenset[str], defines: Mapping[str, int | str] | None = None,
                 include_dirs: list[Path] | None = None) -> None:
        self.sources = sources
        self.caps = caps
        self.include_dirs = include_dirs or []
        self.defines: dict[str, _Define] = {}
        for k, v in (defines or {}).items():
            if not isinstance(k, str) or not DEFINE_NAME.fullmatch(k):
                raise AsmError(f"bad macro name {k!r} in a define (NAME[=VALUE], NAME an identifier)")
            if any(c in str(v) for c in "\n\r\0"):
                raise AsmError(f"the value of define {k} is not one line")
            self.defines[k] = _Define(None, str(v))

    def run(self, path: Path, text: str | None = None, depth: int = 0) -> list[tuple[str, SourceLoc]]:
        """Lines after #include/#define/#if, comments removed, each with its origin."""
        if depth > MAX_INCLUDE_DEPTH:
            raise AsmError(f"#include nested too deep at {path}")
        name, text = self.sources.load(path, text)
        out: list[tuple[str, SourceLoc]] = []
        cond: ConditionalStack[SourceLoc] = ConditionalStack()
        for line, loc in _logical_lines(text, name):
            stripped = line.strip()
            m = _DIRECTIVE.match(stripped)
            if m and m.group(1) in _DIRECTIVES:
                out.extend(self._directive(m.group(1), m.group(2).strip(), loc, cond, path, depth))
            elif not cond.active or not stripped or stripped.startswith("#"):
                continue  # a '#' line is a comment, as GNU as treats it at line start
            elif inc := _AS_INCLUDE.match(line):
                out.extend(self._include(path, f'"{inc.group(1)}"', loc, depth))
            else:
                out.append((self.substitute(line, loc), loc))
        if cond:
            raise AsmError("unterminated #if (no #endif in this file)", cond.innermost)
        return out

    def _directive(self, word: str, rest: str, loc: SourceLoc, cond: ConditionalStack[SourceLoc], path: Path,
                   depth: int) -> list[tuple[str, SourceLoc]]:
        """One `#word rest` line; the lines an #include brings in."""
        if word in ("if", "ifdef", "ifndef"):
            cond.open(loc, lambda: self._if(word, rest, loc))
        elif word == "elif":
            if not cond.elif_(lambda: self._condition(rest, loc)):
                raise AsmError("#elif without #if", loc)
        elif word in ("else", "endif"):
            if not (cond.else_() if word == "else" else cond.close()):
                raise AsmError(f"#{word} without #if", loc)
        elif not cond.active:
            pass
        elif word == "include":
            return self._include(path, rest, loc, depth)
        elif word == "define":
            self._define(rest, loc)
        elif word == "undef":
            self.defines.pop(rest.split()[0] if rest else "", None)
        elif word == "error":
            raise AsmError(f"#error {rest}", loc)
        return []

    def _if(self, word: str, rest: str, loc: SourceLoc) -> bool:
        if word == "if":
            return self._condition(rest, loc)
        return (rest.split()[0] in self.defines) == (word == "ifdef") if rest else False

    def _include(self, path: Path, spec: str, loc: SourceLoc, depth: int) -> list[tuple[str, SourceLoc]]:
        m = re.match(r'["<]([^">]+)[">]', spec)
        if not m:
            raise AsmError(f"bad #include {spec!r}", loc)
        target = m.group(1)
        for base in [path.parent, *self.include_dirs]:
            cand = base / target
            if self.sources.exists(cand):
                return self.run(cand, None, depth + 1)
        raise AsmError(f"include file {target!r} not found", loc)

    def _define(self, rest: str, loc: SourceLoc) -> None:
        m = re.match(r"([A-Za-z_]\w*)(\(([^)]*)\))?\s*(.*)$", rest)
        if not m:
            raise AsmError(f"bad #define {rest!r}", loc)
        params = [p.strip() for p in m.group(3).split(",")] if m.group(2) is not None else None
        if params == [""]:
            params = []
        self.defines[m.group(1)] = _Define(params, m.group(4).strip())

    def _condition(self, expr: str, loc: SourceLoc) -> bool:
        expr = re.sub(r"defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)",
                      lambda m: "1" if (m.group(1) or m.group(2)) in self.defines else "0", expr)
        expr = self.substitute(expr, loc)
        # Identifiers left after substitution are 0, as in cpp.
        expr = IDENT.sub(lambda m: "0", expr)
        try:
            return bool(evaluate(expr, {}))
        except ExprError as e:
            raise AsmError(f"bad #if expression: {e}", loc) from None

    def substitute(self, line: str, loc: SourceLoc) -> str:
        """Expand #defines (object- and function-like) and ALTERNATIVE(old, new, CAP)."""
        for _ in range(_MAX_EXPANSION):
            new = self._substitute_once(line, loc)
            if new == line:
                return new
            line = new
        raise AsmError("macro expansion does not terminate", loc)

    def _substitute_once(self, line: str, loc: SourceLoc) -> str:
        out = []
        pos = 0
        while (m := next_word(line, pos)) is not None:
            start, word = m.start(), m.group()
            out.append(line[pos:start])
            pos = m.end()
            if start and (line[start - 1].isalnum() or line[start - 1] in "_\\."):
                out.append(word)  # part of a longer name, a number or a macro argument (\name)
                continue
            text, pos = self._expansion(word, line, pos, loc)
            out.append(text)
        out.append(line[pos:])
        return "".join(out)

    def _expansion(self, word: str, line: str, pos: int, loc: SourceLoc) -> tuple[str, int]:
        """What the name `word` ending at line[pos] becomes, and where the line goes on after it."""
        d = self.defines.get(word)
        if d is None and word != "ALTERNATIVE":
            return word, pos
        if d is not None and d.params is None:
            return d.body, pos
        call = call_args(line, pos, loc)
        if call is None:
            return word, pos
        args, end = call
        if d is None:
            return self._alternative(args, loc), end
        if len(args) != len(d.params) and not (d.params == [] and args == [""]):
            raise AsmError(f"macro {word} takes {len(d.params)} arguments, got {len(args)}", loc)
        body = d.body
        for p, a in zip(d.params, args, strict=False):
            body = re.sub(rf"(?<![\w]){re.escape(p)}(?![\w])", a.strip().replace("\\", "\\\\"), body)
        return body, end

    def _alternative(self, args: list[str], loc: SourceLoc) -> str:
        if len(args) not in (3, 4):
            raise AsmError("ALTERNATIVE(old, new, CAP[, CONFIG]) takes 3 or 4 arguments", loc)
        old, new, cap = (a.strip() for a in args[:3])
        enabled = cap in self.caps
        if len(args) == 4:
            cfg = args[3].strip()
            # IS_ENABLED(CONFIG_X): only a CONFIG_X defined to non-zero enables the new side
            enabled = enabled and cfg in self.defines and self.defines[cfg].body.strip() not in ("0", "")
        # Sized after macro expansion (stage 2), where the kernel's `.org` checks act too.
        return f"{ALT_IF} {int(enabled)} ; {new} ; {ALT_ELSE} ; {old} ; {ALT_ENDIF}"


def _logical_lines(text: str, name: str) -> Iterator[tuple[str, SourceLoc]]:
    """Each line without comments, a backslash at its end joining the next to it (#define
    bodies, long macros), with where it starts."""
    raw_lines = text.split("\n")
    lines = strip_comments(raw_lines)
    i = 0
    while i < len(lines):
        line = lines[i]
        lineno = i + 1
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i]
        raw = raw_lines[lineno - 1]
        yield line, SourceLoc(name, lineno, raw, len(raw) - len(raw.lstrip()) + 1)
        i += 1
