"""The GNU-as stage of preprocessing: `.macro`, `.rept`, `.irp`, `.irpc`, `.if` and its forms, the
kernel's `alternative_if` blocks (and what `ALTERNATIVE()` became), `.req` register aliases and
numeric local labels. What comes out is a flat list of plain statements for the layout."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from harness.asm.conditional import ConditionalStack
from harness.asm.cpp import ALT_ELSE, ALT_ENDIF, ALT_IF
from harness.asm.expr import ExprError, evaluate
from harness.asm.image import AsmError, SourceLoc
from harness.asm.statement import DATA_WIDTHS, LABEL, Stmt, number_labels, split_labels
from harness.asm.tokenizer import split_commas, split_head, split_statements, split_top

# Bounds on what a source may ask for, checked before the work is done: statements expansion
# processes (16 MiB of instructions; far beyond any model here, and it keeps an assembly under a
# couple of GB and seconds), where a macro call counts as MACRO_CALL_COST statements (binding and
# substituting its arguments costs about that much).
MAX_STATEMENTS = 1 << 22
MACRO_CALL_COST = 32
MAX_MACRO_DEPTH = 40
_ALT_OPENERS = {"alternative_if", "alternative_if_not", ALT_IF}
_ALT_ELSES = {"alternative_else", ALT_ELSE}
_ALT_CLOSERS = {"alternative_endif", "alternative_else_nop_endif", ALT_ENDIF}
_IF_OPENERS = {".if", ".ifdef", ".ifndef", ".ifc", ".ifnc", ".ifeq", ".ifne", ".ifb", ".ifnb"}
_ELSES = {".else"} | _ALT_ELSES
_ENDIFS = {".endif"} | _ALT_CLOSERS
_CONDITIONALS = _IF_OPENERS | _ALT_OPENERS | {".elseif"} | _ELSES | _ENDIFS
_LOOPS = (".rept", ".irp", ".irpc")
_ASSIGNMENT = re.compile(r"^[A-Za-z_.$][\w.$]*\s*=")
_REG_WORD = re.compile(r"(?<![\w.$\\])[A-Za-z_]\w*")
_SIZELESS = {".equ", ".set", ".type", ".size", ".global", ".globl", ".hidden", ".local", ".weak"}

Param = tuple[str, str | None, str]  # name, default (None: none), qualifier (req, vararg)


class Macro(NamedTuple):
    params: list[Param]
    body: list[Stmt]
    loc: SourceLoc  # where it is defined


@dataclass
class _Expansion:
    """One pass of `expand` over a list of statements: where it is, what it made, its open .ifs."""

    stmts: list[Stmt]
    depth: int
    symbols: dict[str, int]  # .equ/.set values known so far (for .if, .rept counts)
    i: int = 0
    out: list[Stmt] = field(default_factory=list)
    cond: ConditionalStack[Stmt] = field(default_factory=ConditionalStack)
    exited: bool = False  # .exitm left the macro body


class MacroExpander:
    """Statements in, statements out: every macro call, loop and conditional expanded."""

    def __init__(self, caps: frozenset[str]) -> None:
        self.caps = caps
        self.macros: dict[str, Macro] = {}
        self.reg_aliases: dict[str, str] = {}  # NAME .req REG
        self._macro_counter = 0
        self._budget = MAX_STATEMENTS  # statements macro/.rept expansion may still process

    def statements(self, lines: list[tuple[str, SourceLoc]]) -> list[Stmt]:
        """The cpp stage's lines as plain statements, labels on the statements they name."""
        stmts: list[Stmt] = []
        for text, loc in lines:
            start = 0
            for part in split_statements(text, loc):
                col, start = _column(loc.text, part, start)
                stmts.append(Stmt(part, replace(loc, col=col)))
        return number_labels(self.expand(split_labels(stmts), depth=0, symbols={}))

    def expand(self, stmts: list[Stmt], depth: int, symbols: dict[str, int]) -> list[Stmt]:
        if depth > MAX_MACRO_DEPTH:
            raise AsmError("macros nested too deep", stmts[0].loc if stmts else None)
        run = _Expansion(stmts, depth, symbols)
        while run.i < len(stmts) and not run.exited:
            st = stmts[run.i]
            run.i += 1
            # Every statement expansion processes costs one (output, macro recursion that emits
            # nothing, skipped .if branches alike), so time and memory stay bounded.
            self._budget -= 1
            if self._budget < 0:
                self._spend(0, st)
            head, rest = split_head(st.text)
            if head in _CONDITIONALS:
                self._conditional(run, st, head, rest)
            elif run.cond.active:
                self._statement(run, st, head, rest)
            elif head == ".macro":
                run.i = _skip_block(stmts, run.i, ".macro", ".endm", st)
            elif head in _LOOPS:
                run.i = _skip_block(stmts, run.i, _LOOPS, ".endr", st)
        if run.cond and not run.exited:  # .exitm leaves the macro body, open .ifs included
            opener = run.cond.innermost
            raise AsmError(f"{split_head(opener.text)[0]} without .endif", opener.loc, opener.via)
        return run.out

    def _spend(self, n: int, st: Stmt) -> None:
        self._budget -= n
        if self._budget < 0:
            raise AsmError(f"more than {MAX_STATEMENTS:,} statements to expand (the assembler's limit; "
                           f"a macro call counts {MACRO_CALL_COST})", st.loc, st.via)

    # ------------------------------------------------------------ conditionals

    def _conditional(self, run: _Expansion, st: Stmt, head: str, rest: str) -> None:
        cond = run.cond
        if head in _ALT_OPENERS and cond.active:
            self._alternative_block(run, st)
        elif head in _IF_OPENERS or head in _ALT_OPENERS:
            cond.open(st, lambda: self._as_condition(head, rest, st, run.symbols))
        elif head == ".elseif":
            if not cond.elif_(lambda: self._as_condition(".if", rest, st, run.symbols)):
                raise AsmError(".elseif without .if", st.loc, st.via)
        elif not (cond.else_() if head in _ELSES else cond.close()):
            raise AsmError(f"{head} without .if", st.loc, st.via)

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

    def _alternative_block(self, run: _Expansion, st: Stmt) -> None:
        """alternative_if/_if_not ... [alternative_else ...] alternative_endif (also the form
        ALTERNATIVE() becomes): keep the side the CPU's caps select; both sides must have the same
        size, as the kernel's `.org` checks in alternative_endif demand, and
        alternative_else_nop_endif pads the default side with NOPs to that size."""
        head, rest = split_head(st.text)
        sides, end_kind, run.i = _alternative_sides(run.stmts, run.i, st)
        if head == ALT_IF:
            first_taken = rest.strip() == "1"
        else:
            first_taken = self._as_condition(head, rest, st, run.symbols)
        first = self.expand(sides[0], run.depth + 1, run.symbols)
        if end_kind == "alternative_else_nop_endif":
            size = _block_size(first)
            second = [Stmt("nop", st.loc, (), st.via, calls=st.calls)] * (size // 4)
        else:
            second = self.expand(sides[1], run.depth + 1, run.symbols)
            a, b = _block_size(first), _block_size(second)
            if a != b:
                if head == ALT_IF:
                    what = f"ALTERNATIVE: old is {b} bytes, new is {a}"
                else:
                    what = f"{head}: the {head} side is {a} bytes, the alternative_else side {b}"
                raise AsmError(f"{what}; both must have the same size (the kernel build fails with "
                               "'Alternatives instruction length mismatch')", st.loc, st.via)
        run.out.extend(first if first_taken else second)

    # ------------------------------------------------------------ statements where the .ifs take them

    def _statement(self, run: _Expansion, st: Stmt, head: str, rest: str) -> None:
        handler = _DIRECTIVES.get(head)
        if handler is not None:
            handler(self, run, st, head, rest)
        elif rest.startswith(".req ") or rest.startswith(".req\t"):
            self.reg_aliases[head] = rest[4:].strip()
        elif head == ".unreq":
            self.reg_aliases.pop(rest.strip(), None)
        elif head in (".equ", ".set") or _ASSIGNMENT.match(st.text):
            name, value = _assignment(st.text, head, rest)
            try:
                run.symbols[name] = evaluate(value, run.symbols)
            except ExprError:
                pass  # refers to labels: layout evaluates it
            run.out.append(st)
        elif head in self.macros:
            self._spend(MACRO_CALL_COST, st)
            run.out.extend(self.expand(self._macro_body(head, rest, st), run.depth + 1, run.symbols))
        elif self.reg_aliases and not head.startswith("."):
            run.out.append(replace(st, text=_REG_WORD.sub(lambda m: self.reg_aliases.get(m.group(0), m.group(0)), st.text)))
        else:
            run.out.append(st)

    def _define_macro(self, run: _Expansion, st: Stmt, head: str, rest: str) -> None:
        end = _skip_block(run.stmts, run.i, ".macro", ".endm", st)
        name, params = _macro_params(rest, st)
        self.macros[name] = Macro(params, run.stmts[run.i : end - 1], st.loc)
        run.i = end

    def _purge_macro(self, run: _Expansion, st: Stmt, head: str, rest: str) -> None:
        self.macros.pop(rest.strip(), None)

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
            for part in split_statements(t, b.loc, via):
                sub.append(Stmt(part, b.loc, (), via, calls=calls))
        return split_labels(sub)

    def _loop(self, run: _Expansion, st: Stmt, head: str, rest: str) -> None:
        end = _skip_block(run.stmts, run.i, _LOOPS, ".endr", st)
        body = run.stmts[run.i : end - 1]
        run.i = end
        if head == ".rept":
            self._rept(run, st, rest, body)
            return
        var, _, vals = rest.partition(",")
        items = [v.strip() for v in vals.split(",")] if head == ".irp" else list(vals.strip())
        pat = re.compile(rf"\\{re.escape(var.strip())}(?![\w])")
        for v in items:
            sub = [replace(b, text=_unbackslash(pat.sub(lambda _m, v=v: v, b.text))) for b in body]
            run.out.extend(self.expand(split_labels(sub), run.depth + 1, run.symbols))

    def _rept(self, run: _Expansion, st: Stmt, rest: str, body: list[Stmt]) -> None:
        n = self._value(rest, st, run.symbols)
        if n > 0 and n * max(len(body), 1) > max(self._budget, 0):
            raise AsmError(f".rept {n:,} of {len(body)} statement{'s' if len(body) != 1 else ''} "
                           f"exceeds the limit of {MAX_STATEMENTS:,} statements", st.loc, st.via)
        expanded = self.expand(body, run.depth + 1, run.symbols) if n > 0 else []
        plain = len(body) == len(expanded) and all(b is e for b, e in zip(body, expanded, strict=False))
        if plain and not any(_is_assignment(b.text) for b in body):
            # nothing in the body depends on the iteration: the same statements n times
            self._spend(len(expanded) * (n - 1), st)
            run.out.extend(expanded * n)
        else:
            run.out.extend(expanded)
            for _ in range(n - 1):
                run.out.extend(self.expand(body, run.depth + 1, run.symbols))

    def _unmatched_end(self, run: _Expansion, st: Stmt, head: str, rest: str) -> None:
        raise AsmError(f"{head} without a matching block", st.loc, st.via)

    def _exit_macro(self, run: _Expansion, st: Stmt, head: str, rest: str) -> None:
        run.exited = True

    def _error(self, run: _Expansion, st: Stmt, head: str, rest: str) -> None:
        raise AsmError(f".error: {rest.strip().strip(chr(34)) or 'error'}", st.loc, st.via)


# The directives expansion acts on where they are taken (the rest are the layout's).
_DIRECTIVES = {
    ".macro": MacroExpander._define_macro, ".purgem": MacroExpander._purge_macro,
    ".rept": MacroExpander._loop, ".irp": MacroExpander._loop, ".irpc": MacroExpander._loop,
    ".endm": MacroExpander._unmatched_end, ".endr": MacroExpander._unmatched_end,
    ".exitm": MacroExpander._exit_macro, ".error": MacroExpander._error, ".err": MacroExpander._error,
}


# ------------------------------------------------------------------ helpers


def _column(raw: str, part: str, start: int) -> tuple[int, int]:
    """1-based column of statement `part` within source line `raw` (searching from `start`)."""
    tok = part.split(None, 1)[0] if part.strip() else ""
    k = raw.find(tok, start) if tok else -1
    if k < 0:
        return len(raw) - len(raw.lstrip()) + 1, start
    return k + 1, k + len(tok)


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


def _alternative_sides(stmts: list[Stmt], i: int, st: Stmt) -> tuple[list[list[Stmt]], str, int]:
    """The two sides of the alternative block opened by `st` (stmts[i] is its first statement),
    the directive that closes it and the index after that."""
    sides: list[list[Stmt]] = [[], []]
    side = nesting = 0
    while i < len(stmts):
        h = split_head(stmts[i].text)[0]
        i += 1
        if h in _ALT_OPENERS:
            nesting += 1
        elif nesting and h in _ALT_CLOSERS:
            nesting -= 1
        elif h in _ALT_ELSES and nesting == 0:
            side = 1
            continue
        elif h in _ALT_CLOSERS and nesting == 0:
            return sides, h, i
        sides[side].append(stmts[i - 1])
    raise AsmError(f"{split_head(st.text)[0]} without alternative_endif", st.loc, st.via)


def _block_size(stmts: list[Stmt]) -> int:
    """Bytes a run of expanded statements assembles to (each instruction is 4 bytes)."""
    total = 0
    for st in stmts:
        head, rest = split_head(st.text)
        if not head or LABEL.fullmatch(st.text.strip()) or _ASSIGNMENT.match(st.text):
            continue
        if head in DATA_WIDTHS or head == ".inst":
            total += DATA_WIDTHS.get(head, 4) * len(split_commas(rest))
        elif head in _SIZELESS or head.startswith(".cfi_"):
            continue
        elif head.startswith("."):
            raise AsmError(f"{head} inside an alternative: its size cannot be checked", st.loc, st.via)
        else:
            total += 4
    return total


def _skip_block(stmts: list[Stmt], i: int, opener: str | tuple[str, ...], closer: str, st: Stmt) -> int:
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


def _macro_params(rest: str, st: Stmt) -> tuple[str, list[Param]]:
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


def _bind_args(name: str, params: list[Param], rest: str, st: Stmt) -> dict[str, str]:
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
    parts = split_top(rest, ",", "([", ")]")
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
    return head in (".equ", ".set", ".equiv", ".eqv") or _ASSIGNMENT.match(text) is not None


def _assignment(text: str, head: str, rest: str) -> tuple[str, str]:
    if head in (".equ", ".set"):
        name, _, value = rest.partition(",")
        return name.strip(), value.strip()
    name, _, value = text.partition("=")
    return name.strip(), value.strip()
