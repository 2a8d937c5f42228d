"""Numbers the command line accepts: one factory, so every option states its range alike.

argparse turns the ``ArgumentTypeError`` into its usual one-line usage error
("argument --epochs: must be >= 1"), never a traceback.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable


def number(cast: Callable[[str], float], low: float | None = None, high: float | None = None,
           *, above: bool = False, note: str = "") -> Callable[[str], float]:
    """An argparse ``type`` that reads ``cast(text)`` and refuses it outside ``[low, high]``
    (``(low, ...`` with ``above``); ``note`` explains a bound, e.g. "(CLAHE off)"."""
    if high is not None:
        rule = f"must be between {low:g}{note} and {high:g}"
    else:
        rule = f"must be {'>' if above else '>='} {low:g}{note}"

    def parse(text: str) -> float:
        value = cast(text)  # a ValueError: argparse says "invalid int value: 'x'"
        below = low is not None and (value <= low if above else value < low)
        if below or (high is not None and value > high):
            raise argparse.ArgumentTypeError(rule)
        return value

    parse.__name__ = cast.__name__  # argparse names the type in "invalid int value" messages
    return parse


POSITIVE_INT = number(int, 1)
NON_NEGATIVE_INT = number(int, 0)
POSITIVE_FLOAT = number(float, 0, above=True)
