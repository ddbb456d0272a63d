"""Element values read cheaply and safely: a broken or missing element gives "" or None, never an error."""

from __future__ import annotations

import math
from collections.abc import Iterable

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

__all__ = ["ascii_value", "text_value", "finite_float", "first_number", "int_value", "us_value"]


def ascii_value(ds: Dataset | None, keyword: str) -> str:
    """An ASCII element (UI, CS, DS, IS, DA) from its raw bytes, values joined by backslashes.

    Skips pydicom's value conversion, whose DS/IS validation costs more than decoding a slice."""
    if ds is None:
        return ""
    try:
        elem = ds.get_item(tag_for_keyword(keyword) or 0)
        value = None if elem is None else elem.value
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    if isinstance(value, str):
        return value.strip(" \x00")
    if isinstance(value, Iterable):  # converted multi-value; a sequence (SQ) yields ""
        return "\\".join(str(v) for v in value if isinstance(v, str | int | float))
    return str(value)


def text_value(ds: Dataset, keyword: str) -> str:
    """A text element decoded by pydicom (honours SpecificCharacterSet); "" when absent or broken."""
    try:
        value = ds.get(keyword)
        return "" if value is None else str(value).strip()
    except Exception:
        return ""


def finite_float(text: str) -> float | None:
    try:
        return f if math.isfinite(f := float(text)) else None
    except (TypeError, ValueError):
        return None


def first_number(ds: Dataset, keyword: str) -> float | None:
    return finite_float(ascii_value(ds, keyword).split("\\")[0])


def int_value(ds: Dataset, keyword: str) -> int | None:
    f = first_number(ds, keyword)
    return int(f) if f is not None and f.is_integer() else None


def us_value(ds: Dataset, keyword: str) -> int | None:
    """An unsigned short (Rows, BitsAllocated, ...): raw 2 bytes in the dataset's byte order, else pydicom."""
    try:
        elem = ds.get_item(tag_for_keyword(keyword) or 0)
        value = None if elem is None else elem.value
        if isinstance(value, bytes) and len(value) == 2:
            return int.from_bytes(value, "big" if ds.original_encoding[1] is False else "little")
        value = ds.get(keyword)
        return None if value is None or value == "" else int(value)
    except Exception:
        return None
