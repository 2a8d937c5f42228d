"""Strict readers for the annotation tables the adapters consume.

Every problem (unreadable file, wrong encoding, missing column) becomes a
:class:`~core.errors.ManifestError` naming the file, so the command line and
the UI show one line instead of a pandas traceback.
"""
from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import MammoError, ManifestError


def read_csv_strict(path: str | Path, required: Iterable[str] = ()) -> pd.DataFrame:
    """Read a UTF-8 CSV as text columns (no NaN guessing) and check its columns.

    Everything is read as ``str`` so identifiers such as ``007`` keep their
    zeros and empty cells stay empty strings.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ManifestError(f"cannot read ({err.strerror})", path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ManifestError(f"not UTF-8 text (byte {err.start})", path) from None
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ManifestError(f"not a readable CSV ({str(err).splitlines()[0]})", path) from None
    df.columns = [str(c).strip() for c in df.columns]
    require_columns(df, required, path)
    return df


def require_columns(df: pd.DataFrame, required: Iterable[str], path: str | Path) -> None:
    """Name every missing column at once, not just the first."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ManifestError(f"missing columns: {', '.join(missing)}", path)


def lookup(keys: pd.Series, table: Mapping[Any, Any], what: str, expected: str,
           source: str | Path | None, shown: pd.Series | None = None,
           error: type[MammoError] = ManifestError) -> pd.Series:
    """``table[key]`` per row; a key not in ``table`` is refused, every such value named at once.

    One rule for every coded column a table may hold (labels, BI-RADS, pathology,
    splits, views), so an unknown value is never read as a default.  ``shown``
    holds the values as the file wrote them, when ``keys`` were derived from them.
    """
    known = keys.isin(list(table))
    if not known.all():
        bad = sorted(set((keys if shown is None else shown)[~known].astype(str)))
        raise error(f"unknown {what} value(s) {', '.join(map(repr, bad[:10]))}; expected {expected}",
                    source)
    return keys.map(table)


def column_key(name: object) -> str:
    """Case-, space- and punctuation-blind key, e.g. ``Pathology Classification/ Follow up``
    and ``pathology classification / follow-up`` both → ``pathologyclassificationfollowup``."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def list_missing_files(paths: Iterable[Path], source: str | Path) -> None:
    """Raise one error listing every missing file (first five shown, then a count)."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        shown = "; ".join(missing[:5])
        more = f"; … {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ManifestError(f"{len(missing)} listed file(s) missing: {shown}{more}", source)
