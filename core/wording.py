"""Words shared by every message the app and the command line show."""
from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 image"``, ``"3 images"``: counts small enough to be 1 appear on every page
    (a one-view study, a tiny test split), and "1 images" reads as a bug."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
