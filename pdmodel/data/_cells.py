"""Cell parsing: a table cell as stripped text or a finite number, and typed columns."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd

__all__ = ["cell_number", "cell_text", "float_column", "int_column"]


def cell_text(v: Any) -> str:
    """Cell as stripped text; None/NaN/NA → ``""``; integral floats lose their ``.0``."""
    if v is None:
        return ""
    try:
        if pd.isna(v):
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return str(int(v))
    return str(v).strip()


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""A number cell: ASCII digits, one optional ``.`` and sign, an optional exponent (as
spreadsheets write small numbers). Not ``1_000``, ``1,5``, ``٣`` or ``nan``, which Python's
``float``/``Decimal`` would read."""


def cell_number(s: str) -> float | None:
    """Finite float of ``s``, or None (non-numeric, ``_``, non-ASCII digits, nan, inf)."""
    if not isinstance(s, str) or not _NUMBER.fullmatch(s.strip()):
        return None
    try:
        x = float(Decimal(s.strip()))
    except (InvalidOperation, ValueError):
        return None
    return x if math.isfinite(x) else None


def float_column(col: pd.Series) -> pd.Series:
    """``col`` as Float64 (a cell that is not a finite number → <NA>)."""
    vals = [cell_number(cell_text(v)) for v in col]
    return pd.Series(pd.array([pd.NA if v is None else v for v in vals], dtype="Float64"),
                     index=col.index, name=col.name)


def int_column(col: pd.Series) -> pd.Series:
    """``col`` as Int64 (a cell that is not a whole number → <NA>)."""
    vals = [cell_number(cell_text(v)) for v in col]
    return pd.Series(pd.array([int(v) if v is not None and v.is_integer() else pd.NA
                               for v in vals], dtype="Int64"), index=col.index, name=col.name)
