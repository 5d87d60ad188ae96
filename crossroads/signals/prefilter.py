"""What every match of a pattern contains, so a text without it is settled without a search.

A regex search tries a match at every position of the text (a few hundred instructions a
character with IGNORECASE), and most prompts match no pattern. The top level of a pattern is
a sequence every match goes through: its literal runs (``integral`` in ``\\bintegral\\b``) must
occur in the text, and a character of its first required class (``\\d`` in ``\\d+\\s*[-+*/]``)
too. :func:`absence_test` reads them from the parsed pattern; what it does not understand
requires nothing, so the test only ever says "cannot match" when no match exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

_CATEGORIES = {
    sre.CATEGORY_DIGIT: r"\d",
    sre.CATEGORY_NOT_DIGIT: r"\D",
    sre.CATEGORY_SPACE: r"\s",
    sre.CATEGORY_NOT_SPACE: r"\S",
    sre.CATEGORY_WORD: r"\w",
    sre.CATEGORY_NOT_WORD: r"\W",
}
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT))


def absence_test(pattern: re.Pattern[str]) -> Callable[[str], bool] | None:
    """A test that is True for a text ``pattern`` cannot match (False: search it), or None
    when the pattern requires nothing it can check."""
    try:
        runs, classes = _required(pattern)
    except Exception:  # a construct of another Python's parser: require nothing
        return None
    caseless = bool(pattern.flags & re.IGNORECASE)
    if runs:
        needles = tuple(r.lower() for r in runs) if caseless else tuple(runs)
        if caseless and not all(n.isascii() for n in needles):
            return None

        def lacks_a_run(text: str) -> bool:
            if caseless:
                if not text.isascii():  # IGNORECASE folds more than lower() does
                    return False
                text = text.lower()
            for needle in needles:  # noqa: SIM110 (any() would build a generator)
                if needle not in text:
                    return True
            return False

        return lacks_a_run
    if classes:
        search = re.compile(classes[0], pattern.flags & (re.IGNORECASE | re.ASCII)).search
        return lambda text: search(text) is None
    return None


def _required(pattern: re.Pattern[str]) -> tuple[list[str], list[str]]:
    """The literal runs and the character classes (as patterns) of ``pattern``'s top level."""
    runs: list[str] = []
    classes: list[str] = []
    run: list[str] = []
    for op, av in _parser.parse(pattern.pattern, pattern.flags):
        if op is sre.LITERAL:
            run.append(chr(av))
            continue
        if run:
            runs.append("".join(run))
            run = []
        if op is sre.IN:
            source = _class_source(av)
        elif op in _REPEATS and av[0] >= 1 and len(av[2]) == 1:
            item_op, item = av[2][0]
            if item_op is sre.IN:
                source = _class_source(item)
            elif item_op is sre.LITERAL:
                source = f"[{re.escape(chr(item))}]"
            else:
                source = None
        else:
            source = None  # zero width, optional or not modelled: requires nothing here
        if source is not None:
            classes.append(source)
    if run:
        runs.append("".join(run))
    return runs, classes


def _class_source(items: list[tuple[Any, Any]]) -> str | None:
    out: list[str] = []
    for op, av in items:
        if op is sre.NEGATE and not out:
            out.append("^")
        elif op is sre.LITERAL:
            out.append(re.escape(chr(av)))
        elif op is sre.RANGE:
            low, high = av
            out.append(f"{re.escape(chr(low))}-{re.escape(chr(high))}")
        elif op is sre.CATEGORY and av in _CATEGORIES:
            out.append(_CATEGORIES[av])
        else:
            return None
    return f"[{''.join(out)}]"
