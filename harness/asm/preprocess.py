"""Source to a flat list of statements, each with its origin.

Two stages, as a kernel build has them: a C-preprocessor stage (`#include`,
`#define`, `#if...`, the kernel's `ALTERNATIVE(old, new, CAP)`), then GNU-as
macro processing (`.include`, `.macro`, `.rept`, `.irp`, `.if`, `alternative_if`,
numeric local labels).  keystone sees only single, plain instructions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from harness.asm.expr import ExprError, evaluate
from harness.asm.image import AsmError, SourceLoc
from harness.data import source_name

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFINE_NAME = _IDENT  # what -D NAME and #define accept
# Bounds on what a source may ask for, checked before the work is done: statements expansion
# processes (16 MiB of instructions; far beyond any model here, and it keeps an assembly under a
# couple of GB and seconds), where a macro call counts as MACRO_CALL_COST statements (binding and
# substituting its arguments costs about that much), and the size of one source file.
MAX_STATEMENTS = 1 << 22
MACRO_CALL_COST = 32
MAX_SOURCE_BYTES = 64 << 20
_LABEL = re.compile(r"^\s*([A-Za-z_.$][\w.$]*|\d+)\s*:(?!:)")
_MAX_EXPANSION = 200
# ALTERNATIVE(old, new, CAP) becomes this block, resolved with the asm-macro forms.
_ALT_IF, _ALT_ELSE, _ALT_ENDIF = ".harness_alt_if", ".harness_alt_else", ".harness_alt_endif"
_ALT_OPENERS = {"alternative_if", "alternative_if_not", _ALT_IF}
_ALT_CLOSERS = {"alternative_endif", "alternative_else_nop_endif", _ALT_ENDIF}
_IF_OPENERS = {".if", ".ifdef", ".ifndef", ".ifc", ".ifnc", ".ifeq", ".ifne", ".ifb", ".ifnb"}
_REG_WORD = re.compile(r"(?<![\w.$\\])[A-Za-z_]\w*")
_DATA_WIDTH = {
    ".byte": 1, ".hword": 2, ".short": 2, ".2byte": 2, ".word": 4, ".long": 4, ".int": 4, ".4byte": 4,
    ".inst": 4, ".quad": 8, ".xword": 8, ".8byte": 8, ".dword": 8,
}
_SIZELESS = {".equ", ".set", ".type", ".size", ".global", ".globl", ".hidden", ".local", ".weak"}


@dataclass(frozen=True)
class Stmt:
    text: str  # one statement, comments removed, no label
    loc: SourceLoc
    labels: tuple[str, ...] = ()
    via: str = ""  # "from macro 'NAME' used at file:line" when produced by an expansion
    label_locs: tuple[SourceLoc, ...] = ()  # where each of `labels` is defined
    calls: tuple[tuple[str, SourceLoc], ...] = ()  # macro expansions it came from: (name, call site), innermost first


@dataclass
class _Define:
    params: list[str] | None  # None: object-like
    body: str


class Preprocessor:
    def __init__(
        self,
        *,
        caps: frozenset[str],
        defines: Mapping[str, int | str] | None = None,
        include_dirs: list[Path] | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.caps = caps
        self.defines: dict[str, _Define] = {}
        for k, v in (defines or {}).items():
            if not isinstance(k, str) or not DEFINE_NAME.fullmatch(k):
                raise AsmError(f"bad macro name {k!r} in a define (NAME[=VALUE], NAME an identifier)")
            if any(c in str(v) for c in "\n\r\0"):
                raise AsmError(f"the value of define {k} is not one line")
            self.defines[k] = _Define(None, str(v))
        self.include_dirs = include_dirs or []
        self.overrides = {str(Path(k).resolve()): v for k, v in (overrides or {}).items()}
        self.files: list[str] = []
        self.texts: dict[str, str] = {}  # shown name -> text, for sources not read from disk (overrides, given text)
        self.display_root: Path | None = None
        self.macros = {}
        self.reg_aliases: dict[str, str] = {}  # NAME .req REG
        self._macro_counter = 0
        self._budget = MAX_STATEMENTS  # statements macro/.rept expansion may still process

    # ------------------------------------------------------------ stage 1: C preprocessor

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

    def cpp(self, path: Path, text: str | None = None, depth: int = 0) -> list[tuple[str, SourceLoc]]:
        """Lines after #include/#define/#if, comments removed, each with its origin."""
        if depth > 32:
            raise AsmError(f"#include nested too deep at {path}")
        name = self.shown(path)
        if text is None:
            text = self.read(path)
            if str(path.resolve()) in self.overrides:
                self.texts[name] = text
        else:
            self.texts[name] = text
        if name not in self.files:
            self.files.append(name)
        out: list[tuple[str, SourceLoc]] = []
        raw_lines = text.split("\n")
        lines = _strip_comments(raw_lines, name)
        cond: list[list] = []  # per #if: [taking now, some branch taken, where it opened]
        i = 0
        while i < len(lines):
            line = lines[i]
            lineno = i + 1
            # Backslash continuation joins lines (#define bodies, long macros).
            while line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1] + " " + lines[i]
            raw = raw_lines[lineno - 1]
            loc = SourceLoc(name, lineno, raw, len(raw) - len(raw.lstrip()) + 1)
            i += 1
            stripped = line.strip()
            active = all(c[0] for c in cond)
            m = re.match(r"#\s*(\w+)\s*(.*)$", stripped)
            if m and m.group(1) in ("if", "ifdef", "ifndef", "elif", "else", "endif", "include",
                                   "define", "undef", "error", "warning", "pragma", "line"):
                word, rest = m.group(1), m.group(2).strip()
                if word in ("if", "ifdef", "ifndef"):
                    if not active:
                        cond.append([False, True, loc])
                        continue
                    if word == "if":
                        val = self._cpp_condition(rest, loc)
                    else:
                        val = (rest.split()[0] in self.defines) == (word == "ifdef") if rest else False
                    cond.append([val, val, loc])
                elif word == "elif":
                    if not cond:
                        raise AsmError("#elif without #if", loc)
                    top = cond[-1]
                    outer = all(c[0] for c in cond[:-1])
                    if top[1] or not outer:
                        top[0] = False
                    else:
                        top[0] = self._cpp_condition(rest, loc)
                        top[1] = top[0]
                elif word == "else":
                    if not cond:
                        raise AsmError("#else without #if", loc)
                    top = cond[-1]
                    top[0] = not top[1]
                    top[1] = True
                elif word == "endif":
                    if not cond:
                        raise AsmError("#endif without #if", loc)
                    cond.pop()
                elif not active:
                    continue
                elif word == "include":
                    out.extend(self._include(path, rest, loc, depth))
                elif word == "define":
                    self._define(rest, loc)
                elif word == "undef":
                    self.defines.pop(rest.split()[0] if rest else "", None)
                elif word == "error":
                    raise AsmError(f"#error {rest}", loc)
                continue
            if not active:
                continue
            if stripped.startswith("#"):
                continue  # a '#' line comment, as GNU as treats it at line start
            if not stripped:
                continue
            inc = re.match(r'\s*\.include\s+"([^"]+)"', line)
            if inc:
                out.extend(self._include(path, f'"{inc.group(1)}"', loc, depth))
                continue
            out.append((self.substitute(line, loc), loc))
        if cond:
            raise AsmError("unterminated #if (no #endif in this file)", cond[-1][2])
        return out

    def _include(self, path: Path, spec: str, loc: SourceLoc, depth: int) -> list[tuple[str, SourceLoc]]:
        m = re.match(r'["<]([^">]+)[">]', spec)
        if not m:
            raise AsmError(f"bad #include {spec!r}", loc)
        target = m.group(1)
        for base in [path.parent, *self.include_dirs]:
            cand = base / target
            if str(cand.resolve()) in self.overrides or cand.is_file():
                return self.cpp(cand, None, depth + 1)
        raise AsmError(f"include file {target!r} not found", loc)

    def _define(self, rest: str, loc: SourceLoc) -> None:
        m = re.match(r"([A-Za-z_]\w*)(\(([^)]*)\))?\s*(.*)$", rest)
        if not m:
            raise AsmError(f"bad #define {rest!r}", loc)
        params = [p.strip() for p in m.group(3).split(",")] if m.group(2) is not None else None
        if params == [""]:
            params = []
        self.defines[m.group(1)] = _Define(params, m.group(4).strip())

    def _cpp_condition(self, expr: str, loc: SourceLoc) -> bool:
        expr = re.sub(r"defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)",
                      lambda m: "1" if (m.group(1) or m.group(2)) in self.defines else "0", expr)
        expr = self.substitute(expr, loc)
        # Identifiers left after substitution are 0, as in cpp.
        expr = _IDENT.sub(lambda m: "0", expr)
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
        in_str = False
        while pos < len(line):
            ch = line[pos]
            if ch == '"':
                in_str = not in_str
                out.append(ch)
                pos += 1
                continue
            if in_str:
                out.append(ch)
                pos += 1
                continue
            m = _IDENT.match(line, pos)
            if not m or (pos > 0 and (line[pos - 1].isalnum() or line[pos - 1] in "_\\.")):
                if m:
                    out.append(m.group(0))
                    pos = m.end()
                else:
                    out.append(ch)
                    pos += 1
                continue
            word = m.group(0)
            if word == "ALTERNATIVE" and word not in self.defines:
                args, end = _call_args(line, m.end(), loc)
                if args is None:
                    out.append(word)
                    pos = m.end()
                    continue
                out.append(self._alternative(args, loc))
                pos = end
                continue
            d = self.defines.get(word)
            if d is None:
                out.append(word)
                pos = m.end()
                continue
            if d.params is None:
                out.append(d.body)
                pos = m.end()
                continue
            args, end = _call_args(line, m.end(), loc)
            if args is None:
                out.append(word)
                pos = m.end()
                continue
            if len(args) != len(d.params) and not (d.params == [] and args == [""]):
                raise AsmError(f"macro {word} takes {len(d.params)} arguments, got {len(args)}", loc)
            body = d.body
            for p, a in zip(d.params, args, strict=False):
                body = re.sub(rf"(?<![\w]){re.escape(p)}(?![\w])", a.strip().replace("\\", "\\\\"), body)
            out.append(body)
            pos = end
        return "".join(out)

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
        return f"{_ALT_IF} {int(enabled)} ; {new} ; {_ALT_ELSE} ; {old} ; {_ALT_ENDIF}"

    # ------------------------------------------------------------ stage 2: GNU as macros

    def statements(self, lines: list[tuple[str, SourceLoc]]) -> list[Stmt]:
        stmts: list[Stmt] = []
        for text, loc in lines:
            start = 0
            for part in _split_statements(text, loc):
                col, start = _column(loc.text, part, start)
                stmts.append(Stmt(part, replace(loc, col=col)))
        stmts = self._expand(_split_labels(stmts), depth=0, symbols={})
        return _number_labels(stmts)

    def _expand(self, stmts: list[Stmt], depth: int, symbols: dict[str, int]) -> list[Stmt]:
        if depth > 40:
            raise AsmError("macros nested too deep", stmts[0].loc if stmts else None)
        out: list[Stmt] = []
        i = 0
        cond: list[list] = []  # per .if: [taking now, some branch taken, the opening Stmt]
        while i < len(stmts):
            st = stmts[i]
            i += 1
            # Every statement expansion processes costs one (output, macro recursion that emits
            # nothing, skipped .if branches alike), so time and memory stay bounded.
            self._budget -= 1
            if self._budget < 0:
                self._spend(0, st)
            text = st.text
            head, rest = split_head(text)
            active = all(c[0] for c in cond)
            if head in _ALT_OPENERS and active:
                i = self._alternative_block(stmts, i, st, depth, symbols, out)
                continue
            if head in _IF_OPENERS or head in _ALT_OPENERS:
                if not active:
                    cond.append([False, True, st])
                    continue
                val = self._as_condition(head, rest, st, symbols)
                cond.append([val, val, st])
                continue
            if head == ".elseif":
                top = cond[-1] if cond else None
                if top is None:
                    raise AsmError(".elseif without .if", st.loc, st.via)
                if top[1] or not all(c[0] for c in cond[:-1]):
                    top[0] = False
                else:
                    top[0] = self._as_condition(".if", rest, st, symbols)
                    top[1] = top[0]
                continue
            if head in (".else", "alternative_else", _ALT_ELSE):
                if not cond:
                    raise AsmError(f"{head} without .if", st.loc, st.via)
                cond[-1][0] = not cond[-1][1]
                cond[-1][1] = True
                continue
            if head in (".endif", "alternative_endif", "alternative_else_nop_endif", _ALT_ENDIF):
                if not cond:
                    raise AsmError(f"{head} without .if", st.loc, st.via)
                cond.pop()
                continue
            if not active:
                if head == ".macro":
                    i = _skip_block(stmts, i, ".macro", ".endm", st)
                elif head in (".rept", ".irp", ".irpc"):
                    i = _skip_block(stmts, i, (".rept", ".irp", ".irpc"), ".endr", st)
                continue
            if head == ".macro":
                end = _skip_block(stmts, i, ".macro", ".endm", st)
                name, params = _macro_params(rest, st)
                self.macros[name] = (params, stmts[i : end - 1], st.loc)
                i = end
                continue
            if head == ".purgem":
                self.macros.pop(rest.strip(), None)
                continue
            if head in (".rept", ".irp", ".irpc"):
                end = _skip_block(stmts, i, (".rept", ".irp", ".irpc"), ".endr", st)
                body = stmts[i : end - 1]
                i = end
                if head == ".rept":
                    n = self._value(rest, st, symbols)
                    if n > 0 and n * max(len(body), 1) > max(self._budget, 0):
                        raise AsmError(f".rept {n:,} of {len(body)} statement{'s' if len(body) != 1 else ''} "
                                       f"exceeds the limit of {MAX_STATEMENTS:,} statements", st.loc, st.via)
                    expanded = self._expand(body, depth + 1, symbols) if n > 0 else []
                    plain = len(body) == len(expanded) and all(b is e for b, e in zip(body, expanded, strict=False))
                    if plain and not any(_is_assignment(b.text) for b in body):
                        # nothing in the body depends on the iteration: the same statements n times
                        self._spend(len(expanded) * (n - 1), st)
                        out.extend(expanded * n)
                    else:
                        out.extend(expanded)
                        for _ in range(n - 1):
                            out.extend(self._expand(body, depth + 1, symbols))
                else:
                    var, _, vals = rest.partition(",")
                    items = [v.strip() for v in vals.split(",")] if head == ".irp" else list(vals.strip())
                    pat = re.compile(rf"\\{re.escape(var.strip())}(?![\w])")
                    for v in items:
                        sub = [replace(b, text=_unbackslash(pat.sub(lambda _m, v=v: v, b.text))) for b in body]
                        out.extend(self._expand(_split_labels(sub), depth + 1, symbols))
                continue
            if head in (".endm", ".endr"):
                raise AsmError(f"{head} without a matching block", st.loc, st.via)
            if head == ".exitm":
                return out  # leaves the macro body being expanded, open .ifs included
            if head in (".error", ".err"):
                raise AsmError(f".error: {rest.strip().strip(chr(34)) or 'error'}", st.loc, st.via)
            if rest.startswith(".req ") or rest.startswith(".req\t"):
                self.reg_aliases[head] = rest[4:].strip()
                continue
            if head == ".unreq":
                self.reg_aliases.pop(rest.strip(), None)
                continue
            if head in (".equ", ".set") or re.match(r"^[A-Za-z_.$][\w.$]*\s*=", text):
                name, value = _assignment(text, head, rest)
                try:
                    symbols[name] = evaluate(value, symbols)
                except ExprError:
                    pass  # refers to labels: layout evaluates it
                out.append(st)
                continue
            if head in self.macros:
                self._spend(MACRO_CALL_COST, st)
                out.extend(self._expand(self._macro_body(head, rest, st), depth + 1, symbols))
                continue
            if self.reg_aliases and not head.startswith("."):
                text = _REG_WORD.sub(lambda m: self.reg_aliases.get(m.group(0), m.group(0)), text)
                st = replace(st, text=text)
            out.append(st)
        if cond:
            raise AsmError(f"{split_head(cond[-1][2].text)[0]} without .endif", cond[-1][2].loc, cond[-1][2].via)
        return out

    def _spend(self, n: int, st: Stmt) -> None:
        self._budget -= n
        if self._budget < 0:
            raise AsmError(f"more than {MAX_STATEMENTS:,} statements to expand (the assembler's limit; "
                           f"a macro call counts {MACRO_CALL_COST})", st.loc, st.via)

    def _macro_body(self, name: str, rest: str, st: Stmt) -> list[Stmt]:
        params, body, _where = self.macros[name]
        self._macro_counter += 1
        args = _bind_args(name, params, rest, st)
        pats = [(re.compile(rf"\\{re.escape(p)}(?![\w])"), a) for p, a in args.items()]
        via = _via(name, st)
        calls = ((name, st.loc), *st.calls)
        sub = []
        for b in body:
            t = b.text
            for pat, a in pats:
                t = pat.sub(lambda _m, a=a: a, t)
            t = _unbackslash(t.replace("\\@", str(self._macro_counter)))
            for part in _split_statements(t, b.loc, via):
                sub.append(Stmt(part, b.loc, (), via, calls=calls))
        return _split_labels(sub)

    def _alternative_block(self, stmts: list[Stmt], i: int, st: Stmt, depth: int, symbols: dict[str, int],
                           out: list[Stmt]) -> int:
        """alternative_if/_if_not ... [alternative_else ...] alternative_endif (also the form
        ALTERNATIVE() becomes): keep the side the CPU's caps select; both sides must have the same
        size, as the kernel's `.org` checks in alternative_endif demand, and
        alternative_else_nop_endif pads the default side with NOPs to that size."""
        head, rest = split_head(st.text)
        sides: list[list[Stmt]] = [[], []]
        side, nesting, end_kind = 0, 0, None
        while i < len(stmts):
            h = split_head(stmts[i].text)[0]
            i += 1
            if h in _ALT_OPENERS:
                nesting += 1
            elif nesting and h in _ALT_CLOSERS:
                nesting -= 1
            elif h in ("alternative_else", _ALT_ELSE) and nesting == 0:
                side = 1
                continue
            elif h in _ALT_CLOSERS and nesting == 0:
                end_kind = h
                break
            sides[side].append(stmts[i - 1])
        if end_kind is None:
            raise AsmError(f"{head} without alternative_endif", st.loc, st.via)
        if head == _ALT_IF:
            first_taken = rest.strip() == "1"
        else:
            first_taken = self._as_condition(head, rest, st, symbols)
        first = self._expand(sides[0], depth + 1, symbols)
        if end_kind == "alternative_else_nop_endif":
            size = _block_size(first)
            second = [Stmt("nop", st.loc, (), st.via, calls=st.calls)] * (size // 4)
        else:
            second = self._expand(sides[1], depth + 1, symbols)
            a, b = _block_size(first), _block_size(second)
            if a != b:
                if head == _ALT_IF:
                    what = f"ALTERNATIVE: old is {b} bytes, new is {a}"
                else:
                    what = f"{head}: the {head} side is {a} bytes, the alternative_else side {b}"
                raise AsmError(f"{what}; both must have the same size (the kernel build fails with "
                               "'Alternatives instruction length mismatch')", st.loc, st.via)
        out.extend(first if first_taken else second)
        return i

    macros: dict[str, tuple[list[tuple[str, str | None, str]], list[Stmt], SourceLoc]]

    def _as_condition(self, head: str, rest: str, st: Stmt, symbols: dict[str, int]) -> bool:
        if head == "alternative_if":
            return rest.split()[0] in self.caps if rest else False
        if head == "alternative_if_not":
            return rest.split()[0] not in self.caps if rest else True
        if head in (".ifdef", ".ifndef"):
            return (rest in symbols) == (head == ".ifdef")
        if head in (".ifc", ".ifnc"):
            a, _, b = rest.partition(",")
            return (a.strip() == b.strip()) == (head == ".ifc")
        if head in (".ifb", ".ifnb"):
            return (rest.strip() == "") == (head == ".ifb")
        v = self._value(rest, st, symbols)
        if head == ".ifeq":
            return v == 0
        return v != 0

    def _value(self, expr: str, st: Stmt, symbols: dict[str, int]) -> int:
        try:
            return evaluate(expr, symbols)
        except ExprError as e:
            raise AsmError(f"cannot evaluate {expr!r}: {e}", st.loc, st.via) from None


# ------------------------------------------------------------------ helpers


def _strip_comments(lines: list[str], name: str) -> list[str]:
    """Remove /* */ (keeping line numbers) and // comments, outside strings."""
    out = []
    in_block = False
    for line in lines:
        res = []
        i = 0
        in_str = False
        while i < len(line):
            if in_block:
                j = line.find("*/", i)
                if j < 0:
                    i = len(line)
                    break
                in_block = False
                i = j + 2
                continue
            ch = line[i]
            if in_str:
                res.append(ch)
                if ch == "\\" and i + 1 < len(line):
                    res.append(line[i + 1])
                    i += 2
                    continue
                if ch == '"':
                    in_str = False
                i += 1
                continue
            if ch == '"':
                in_str = True
                res.append(ch)
                i += 1
                continue
            if line.startswith("/*", i):
                in_block = True
                i += 2
                continue
            if line.startswith("//", i):
                break
            res.append(ch)
            i += 1
        out.append("".join(res).rstrip())
    return out


def _call_args(line: str, pos: int, loc: SourceLoc) -> tuple[list[str] | None, int]:
    """Arguments of NAME( ... ) starting at pos (just after NAME), split on top-level commas."""
    j = pos
    while j < len(line) and line[j] in " \t":
        j += 1
    if j >= len(line) or line[j] != "(":
        return None, pos
    depth = 0
    args = []
    cur = []
    in_str = False
    for k in range(j, len(line)):
        ch = line[k]
        if ch == '"':
            in_str = not in_str
        if not in_str:
            if ch == "(":
                depth += 1
                if depth == 1:
                    continue
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    args.append("".join(cur))
                    return args, k + 1
            elif ch == "," and depth == 1:
                args.append("".join(cur))
                cur = []
                continue
        cur.append(ch)
    raise AsmError("unterminated macro arguments", loc)


def _split_statements(text: str, loc: SourceLoc | None = None, via: str = "") -> list[str]:
    """Split on ';' outside strings and character constants: GNU as for AArch64 separates
    statements with it. With `loc`, a quote left open is an error there."""
    if ";" not in text and '"' not in text and "'" not in text:
        text = text.strip()
        return [text] if text else []
    parts: list[str] = []
    cur: list[str] = []
    i, n = 0, len(text)
    opened = -1  # where the open string started
    while i < n:
        ch = text[i]
        if opened >= 0:
            cur.append(ch)
            if ch == "\\" and i + 1 < n:
                cur.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                opened = -1
            i += 1
            continue
        if ch == '"':
            opened = i
        elif ch == "'" and i + 1 < n:
            # 'c (GNU as needs no closing quote) or 'c': the character may be ';' or '"'
            j = i + (3 if text[i + 1] == "\\" else 2)
            if j < n and text[j] == "'":
                j += 1
            elif loc is not None and j < n and (text[j].isalnum() or text[j] == "_"):
                raise AsmError("missing closing quote (')", _quote_loc(loc, "'"), via)
            cur.append(text[i:j])
            i = j
            continue
        elif ch == ";":
            parts.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    if opened >= 0 and loc is not None:
        raise AsmError('missing closing quote (")', _quote_loc(loc, '"'), via)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _quote_loc(loc: SourceLoc, quote: str) -> SourceLoc:
    k = loc.text.rfind(quote)
    return replace(loc, col=k + 1) if k >= 0 else loc


def split_head(text: str) -> tuple[str, str]:
    """`mnemonic-or-directive`, `operands` of one statement (any blanks between them)."""
    parts = text.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


def _column(raw: str, part: str, start: int) -> tuple[int, int]:
    """1-based column of statement `part` within source line `raw` (searching from `start`)."""
    tok = part.split(None, 1)[0] if part.strip() else ""
    k = raw.find(tok, start) if tok else -1
    if k < 0:
        return len(raw) - len(raw.lstrip()) + 1, start
    return k + 1, k + len(tok)


def _split_labels(stmts: list[Stmt]) -> list[Stmt]:
    """`lab: stmt` becomes `lab:` and `stmt`, so the statement may be a macro call or a directive."""
    out = []
    for st in stmts:
        text = st.text
        m = _LABEL.match(text)
        if m is None:
            out.append(st)
            continue
        while m is not None and text[m.end():].strip():
            out.append(replace(st, text=text[: m.end()].strip()))
            text = text[m.end():].strip()
            m = _LABEL.match(text)
        out.append(replace(st, text=text))
    return out


def _via(name: str, st: Stmt) -> str:
    """`from macro NAME used at FILE:LINE` and the calls around it; deep chains keep the innermost
    calls and the outermost one, so the text stays short however deep the recursion."""
    here = f"from macro '{name}' used at {st.loc.file}:{st.loc.line}"
    if not st.via:
        return here
    if len(st.via) > 160:
        inner = st.via.split(", from macro ", 1)[0]
        outer = st.via.rsplit(", from macro ", 1)
        if len(outer) == 2:
            return f"{here}, {inner}, ..., from macro {outer[1]}"
    return f"{here}, {st.via}"


def _unbackslash(text: str) -> str:
    return text.replace("\\()", "")


def _block_size(stmts: list[Stmt]) -> int:
    """Bytes a run of expanded statements assembles to (each instruction is 4 bytes)."""
    total = 0
    for st in stmts:
        head, rest = split_head(st.text)
        if not head or _LABEL.fullmatch(st.text.strip()) or re.match(r"^[A-Za-z_.$][\w.$]*\s*=", st.text):
            continue
        if head in _DATA_WIDTH:
            total += _DATA_WIDTH[head] * len(_split_top_commas(rest))
        elif head in _SIZELESS or head.startswith(".cfi_"):
            continue
        elif head.startswith("."):
            raise AsmError(f"{head} inside an alternative: its size cannot be checked", st.loc, st.via)
        else:
            total += 4
    return total


def _split_top_commas(text: str) -> list[str]:
    parts, cur, depth = [], [], 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def _skip_block(stmts: list[Stmt], i: int, opener, closer: str, st: Stmt) -> int:
    openers = (opener,) if isinstance(opener, str) else opener
    depth = 1
    while i < len(stmts):
        head = stmts[i].text.split(None, 1)[0] if stmts[i].text else ""
        if head in openers:
            depth += 1
        elif head == closer:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise AsmError(f"{st.text.split()[0]} without {closer}", st.loc)


def _macro_params(rest: str, st: Stmt) -> tuple[str, list[tuple[str, str | None, str]]]:
    """`.macro NAME a, b=1, c:req, d:vararg` -> NAME, [(param, default, qualifier)]."""
    rest = re.sub(r"\s*=\s*", "=", rest.strip())
    parts = [p for p in re.split(r"[\s,]+", rest) if p]
    if not parts:
        raise AsmError(".macro needs a name", st.loc, st.via)
    params = []
    for p in parts[1:]:
        name, eq, default = p.partition("=")
        name, _, qual = name.partition(":")
        params.append((name, default if eq else None, qual))
    return parts[0], params


def _bind_args(name: str, params: list[tuple[str, str | None, str]], rest: str, st: Stmt) -> dict[str, str]:
    args = _split_macro_args(rest) if rest.strip() else []
    names = [p for p, _d, _q in params]
    bound: dict[str, str] = {}
    positional = []
    for a in args:
        m = re.match(r"^([A-Za-z_]\w*)\s*=(.*)$", a)
        if m and m.group(1) in names:
            bound[m.group(1)] = m.group(2).strip()
        else:
            positional.append(a)
    if params and params[-1][2] == "vararg" and len(positional) >= len(params):
        positional[len(params) - 1 :] = [", ".join(positional[len(params) - 1 :])]
    for p, a in zip(names, positional, strict=False):
        bound.setdefault(p, a)
    if len(positional) > len(params):
        raise AsmError(f"macro '{name}' takes {len(params)} arguments, got {len(positional)}", st.loc, st.via)
    for p, default, qual in params:
        if qual == "req" and not bound.get(p):
            raise AsmError(f"macro '{name}': missing value for required parameter '{p}'", st.loc, st.via)
        bound.setdefault(p, default or "")
    return bound


def _split_macro_args(rest: str) -> list[str]:
    """Commas separate macro arguments; without commas, blanks do (GNU as)."""
    depth = 0
    in_str = False
    parts, cur = [], []
    for ch in rest:
        if ch == '"':
            in_str = not in_str
        elif not in_str and ch in "([":
            depth += 1
        elif not in_str and ch in ")]":
            depth -= 1
        if ch == "," and depth == 0 and not in_str:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    if len(parts) == 1 and "[" not in rest and "(" not in rest and '"' not in rest:
        parts = rest.split()
    # GNU as drops the quotes around a quoted argument and keeps what is inside as is.
    out = []
    for p in parts:
        q = p.strip()
        out.append(q[1:-1] if len(q) > 1 and q[0] == q[-1] == '"' else q)
    return out


def _is_assignment(text: str) -> bool:
    head = split_head(text)[0].lower()
    return head in (".equ", ".set", ".equiv", ".eqv") or re.match(r"^[A-Za-z_.$][\w.$]*\s*=", text) is not None


def _assignment(text: str, head: str, rest: str) -> tuple[str, str]:
    if head in (".equ", ".set"):
        name, _, value = rest.partition(",")
        return name.strip(), value.strip()
    name, _, value = text.partition("=")
    return name.strip(), value.strip()


_NUMREF = re.compile(r"(?<![\w.$])(\d+)([fb])(?![\w])")


def _number_labels(stmts: list[Stmt]) -> list[Stmt]:
    """Split leading labels off statements; rename numeric labels N: and their Nf/Nb uses
    (definition k of label N becomes __num_N_k)."""
    out: list[Stmt] = []
    counts: dict[str, int] = {}
    pending: list[str] = []
    pending_locs: list[SourceLoc] = []
    defs_seen: dict[str, int] = {}
    for st in stmts:
        text = st.text
        if ":" in text:
            m = _LABEL.match(text)
            while m:
                lab = m.group(1)
                if lab.isdigit():
                    k = defs_seen.get(lab, 0)
                    defs_seen[lab] = k + 1
                    lab = f"__num_{lab}_{k}"
                pending.append(lab)
                pending_locs.append(st.loc)
                text = text[m.end():].strip()
                m = _LABEL.match(text)
        if not text:
            continue
        if "f" in text or "b" in text:
            text = _NUMREF.sub(lambda m: _numref(m, defs_seen, counts), text)
        if pending:
            out.append(Stmt(text, st.loc, tuple(pending), st.via, tuple(pending_locs), st.calls))
            pending, pending_locs = [], []
        else:
            out.append(st if text == st.text and not st.labels else Stmt(text, st.loc, (), st.via, calls=st.calls))
    if pending:
        out.append(Stmt("", pending_locs[-1], tuple(pending), "", tuple(pending_locs)))
    return out


def _numref(m: re.Match, defs_seen: dict[str, int], counts: dict[str, int]) -> str:
    n, d = m.group(1), m.group(2)
    k = defs_seen.get(n, 0)  # definitions of N seen so far
    return f"__num_{n}_{k - 1}" if d == "b" else f"__num_{n}_{k}"
