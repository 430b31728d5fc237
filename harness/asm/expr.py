"""Integer expressions of GNU as (and of #if): numbers, symbols, `.`, C operators."""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Mapping
from functools import lru_cache


class ExprError(Exception):
    pass


_TOKEN = re.compile(r"0[xX][0-9a-fA-F_]+|0[bB][01_]+|\d[\d_]*|'(?:\\.|[^'])'|[A-Za-z_.$][\w.$]*|<<|>>|&&|\|\||==|!=|<=|>=|\S")
_BIN = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Mod: operator.mod,
    ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_, ast.BitXor: operator.xor, ast.FloorDiv: operator.floordiv,
}
_CMP = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.Gt: operator.gt,
        ast.LtE: operator.le, ast.GtE: operator.ge}


def evaluate(expr: str, symbols: Mapping[str, int]) -> int:
    """Value of `expr`; unknown symbols raise ExprError naming them."""
    tree, names = _parse(expr)
    env = {}
    for sym, key in names:
        if sym not in symbols:
            raise ExprError(f"unknown symbol {sym!r}")
        env[key] = symbols[sym]
    return _eval(tree, env, expr)


@lru_cache(maxsize=16384)
def _parse(expr: str) -> tuple[ast.AST, tuple[tuple[str, str], ...]]:
    names: dict[str, str] = {}
    out = []
    for tok in _TOKEN.findall(expr):
        if tok[0].isdigit():
            out.append(str(int(tok.replace("_", ""), 0)))
        elif tok.startswith("'"):
            out.append(str(ord(ast.literal_eval(tok))))
        elif re.match(r"[A-Za-z_.$]", tok):
            key = names.setdefault(tok, f"_s{len(names)}")
            out.append(key)
        else:
            out.append({"&&": " and ", "||": " or ", "!": " not ", "/": "//"}.get(tok, tok))
    text = " ".join(out).replace("not  =", "!=")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ExprError(f"cannot parse {expr!r}") from None
    return tree.body, tuple(names.items())


def _eval(node: ast.AST, env: dict[str, int], expr: str) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        a, b = _eval(node.left, env, expr), _eval(node.right, env, expr)
        if isinstance(node.op, (ast.FloorDiv, ast.Mod)) and b == 0:
            raise ExprError(f"division by zero in {expr!r}")
        return _BIN[type(node.op)](a, b)
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
    raise ExprError(f"unsupported expression {expr!r}")
