"""Integer expressions of GNU as (and of #if): numbers, symbols, `.`, C operators."""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Mapping
from functools import lru_cache


class ExprError(Exception):
    pass


# A number token takes every word character after its first digit, so `08`, `0x_` or `12ab` are
# one (bad) number rather than a number followed by a symbol. A character constant is 'c' or, as
# GNU as also accepts, 'c without the closing quote.
_TOKEN = re.compile(r"\d\w*|'(?:\\.|[^\\])'?|'|[A-Za-z_.$][\w.$]*|<<|>>|&&|\|\||==|!=|<=|>=|\S")
_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "a": 7, "b": 8, "f": 12, "v": 11, "e": 27}
_BIN = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Mod: operator.mod,
    ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_, ast.BitXor: operator.xor, ast.FloorDiv: operator.floordiv,
}
_CMP = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.Gt: operator.gt,
        ast.LtE: operator.le, ast.GtE: operator.ge}
MAX_LENGTH = 4096  # characters in one expression: far beyond any real one, and parsing stays fast


def evaluate(expr: str, symbols: Mapping[str, int]) -> int:
    """Value of `expr`; unknown symbols raise ExprError naming them."""
    tree, names = _parse(expr)
    if not names:
        return _constant(expr)
    env = {}
    for sym, key in names:
        if sym not in symbols:
            raise ExprError(f"unknown symbol {sym!r}")
        env[key] = symbols[sym]
    try:
        return _eval(tree, env, expr)
    except RecursionError:
        raise ExprError(f"expression nested too deeply: {_short(expr)}") from None


@lru_cache(maxsize=16384)
def _constant(expr: str) -> int:
    """A symbol-free expression's value (macro arguments such as 3-1-1 come back often)."""
    try:
        return _eval(_parse(expr)[0], {}, expr)
    except RecursionError:
        raise ExprError(f"expression nested too deeply: {_short(expr)}") from None


def parse_number(tok: str) -> int:
    """A GNU as integer literal: 0x.., 0b.., 0-prefixed octal, decimal (with `_` separators)."""
    t = tok.replace("_", "")
    try:
        if t[:2] in ("0x", "0X"):
            return int(t[2:], 16)
        if t[:2] in ("0b", "0B"):
            return int(t[2:], 2)
        if len(t) > 1 and t[0] == "0":
            return int(t[1:], 8)  # GNU as reads 010 as eight
        if len(t) > 4300:
            raise ValueError
        return int(t, 10)
    except ValueError:
        raise ExprError(f"bad number {_short(tok)!r}") from None


def _char(tok: str, expr: str, end: int) -> int:
    body = tok[1:-1] if len(tok) > 2 and tok.endswith("'") and tok != "'\\'" else tok[1:]
    if not body:
        raise ExprError(f"missing closing quote (') in {_short(expr)!r}")
    if not tok.endswith("'") and end < len(expr) and (expr[end].isalnum() or expr[end] == "_"):
        # 'nosuchlabel: a quote opened and never closed, not a character constant
        raise ExprError(f"missing closing quote (') in {_short(expr)!r}")
    if body[0] == "\\":
        return _ESCAPES.get(body[1], ord(body[1]))
    return ord(body[0])


@lru_cache(maxsize=16384)
def _parse(expr: str) -> tuple[ast.AST, tuple[tuple[str, str], ...]]:
    if len(expr) > MAX_LENGTH:
        raise ExprError(f"expression longer than {MAX_LENGTH} characters")
    names: dict[str, str] = {}
    out = []
    for m in _TOKEN.finditer(expr):
        tok = m.group(0)
        if tok[0].isdigit():
            out.append(str(parse_number(tok)))
        elif tok.startswith("'"):
            out.append(str(_char(tok, expr, m.end())))
        elif re.match(r"[A-Za-z_.$]", tok):
            key = names.setdefault(tok, f"_s{len(names)}")
            out.append(key)
        else:
            out.append({"&&": " and ", "||": " or ", "!": " not ", "/": "//"}.get(tok, tok))
    text = " ".join(out).replace("not  =", "!=")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ExprError(f"cannot parse {_short(expr)!r}") from None
    return tree.body, tuple(names.items())


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _eval(node: ast.AST, env: dict[str, int], expr: str) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        a, b = _eval(node.left, env, expr), _eval(node.right, env, expr)
        if isinstance(node.op, (ast.FloorDiv, ast.Mod)) and b == 0:
            raise ExprError(f"division by zero in {_short(expr)!r}")
        if isinstance(node.op, (ast.LShift, ast.RShift)) and not 0 <= b <= 63:
            # GNU as computes in 64 bits and warns; an unbounded shift would allocate without end
            raise ExprError(f"shift count {b} out of range 0..63 in {_short(expr)!r}")
        r = _BIN[type(node.op)](a, b)
        if r.bit_length() > 128:  # products of products of .equ values would grow without end
            raise ExprError(f"value out of range (more than 128 bits) in {_short(expr)!r}")
        return r
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, env, expr)
        if isinstance(node.op, ast.USub):
            return -v
        if isinstance(node.op, ast.UAdd):
            return v
        if isinstance(node.op, ast.Invert):
            return ~v
        if isinstance(node.op, ast.Not):
            return int(not v)
    if isinstance(node, ast.BoolOp):
        vals = [_eval(v, env, expr) for v in node.values]
        return int(all(vals) if isinstance(node.op, ast.And) else any(vals))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP:
        return int(_CMP[type(node.ops[0])](_eval(node.left, env, expr), _eval(node.comparators[0], env, expr)))
    raise ExprError(f"unsupported expression {_short(expr)!r}")
