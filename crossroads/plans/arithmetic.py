"""Written calculations in an answer, checked: ``16 - 3 = 13`` and GSM8K-style
``<<9*2=18>>``. A wrong one is a cheap, strong sign the answer is wrong.

>>> calculations("16 - 3 = 13, so 13 * 2 = 27")
(2, 1)
"""

from __future__ import annotations

import ast
import operator
import re

# A written calculation: "<<9*2=18>>" or "16 - 3 = 13" (numbers, operators, parentheses).
_CLAIM = re.compile(
    r"<<([\d.+\-*/() ]+)=\s*(-?[\d.]+)>>"
    r"|((?:\(?\$?-?\d[\d,]*(?:\.\d+)?%?\)?\s*[-+*/x×]\s*)+\(?\$?-?\d[\d,]*(?:\.\d+)?%?\)?)\s*=\s*\$?(-?\d[\d,]*(?:\.\d+)?(?:/\d+)?)"
)

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def calculations(text: str) -> tuple[int, int]:
    """How many calculations the answer writes out, and how many of them are wrong."""
    claims = wrong = 0
    for tagged, tagged_value, plain, plain_value in _CLAIM.findall(text):
        expr, value = (tagged, tagged_value) if tagged else (plain, plain_value)
        expr = expr.replace("$", "").replace(",", "").replace("×", "*").replace("x", "*")
        expr = expr.replace("%", "/100")
        try:
            got = _evaluate(ast.parse(expr.strip(), mode="eval").body)
            want = _evaluate(ast.parse(value.replace(",", ""), mode="eval").body)
        except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
            continue
        claims += 1
        if abs(got - want) > 1e-6 * max(1.0, abs(want)) and round(got, 2) != round(want, 2):
            wrong += 1
    return claims, wrong


def _evaluate(node: object) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))  # type: ignore[no-any-return]
    raise ValueError("not a calculation")
