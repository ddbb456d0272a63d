"""Input conventions shared by the statistics: grades, categories, patient ids, JSON output.

Grades are ordinals of the project's grading scale. A missing grade is ``MISSING`` (-1) in an integer
array, NaN in a float array, None in a list / object array, or a masked entry of a ``numpy.ma``
array. Any other value that is not in
the category list is an input error. Internally grades become category *indices* 0..q-1 (position in
the category list, which is the ordinal order) with -1 for missing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from annotator.domain.errors import InputError
from annotator.domain.scales import GradingScale

MISSING = -1
"""Marker for "this reader did not grade this slice" in integer grade arrays."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Categories = Sequence[int] | GradingScale
Grades = npt.ArrayLike | Sequence[int | float | None]
"""Grades aligned by slice (or a slices x readers matrix); -1, NaN, None or masked = missing."""


def as_categories(categories: Categories) -> tuple[int, ...]:
    """The ordinals of a scale (or a plain sequence) as a validated tuple, in ordinal order."""
    values = categories.ordinals if isinstance(categories, GradingScale) else tuple(categories)
    out: list[int] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise InputError(f"categories: {v!r} is not an integer ordinal")
        if int(v) < 0:
            raise InputError(f"categories: ordinal {int(v)} is negative (negative marks a missing grade)")
        out.append(int(v))
    if len(out) < 2:
        raise InputError(f"categories: need at least two grades, got {out}")
    if len(set(out)) != len(out):
        raise InputError(f"categories: duplicated ordinals in {out}")
    return tuple(out)


def encode(grades: Grades, categories: tuple[int, ...], name: str = "grades") -> IntArray:
    """Map grades to category indices (int64, -1 where missing); raise on values off the scale."""
    mask: npt.NDArray[np.bool_] | None = None
    if isinstance(grades, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(grades)
        raw = np.asarray(grades.filled(MISSING))
    else:
        raw = np.asarray(grades)
    if raw.ndim == 0:
        raise InputError(f"{name}: expected an array of grades, got a scalar")
    if raw.dtype == object:
        try:
            flat = [np.nan if v is None else float(v) for v in raw.ravel()]
        except (TypeError, ValueError) as exc:
            raise InputError(f"{name}: grades must be integers, None or NaN ({exc})") from exc
        raw = np.array(flat, dtype=np.float64).reshape(raw.shape)
    if raw.dtype.kind == "f":
        missing = np.isnan(raw)
        filled = np.where(missing, float(MISSING), raw)
        if not np.all(filled == np.floor(filled)):
            bad = filled[filled != np.floor(filled)][0]
            raise InputError(f"{name}: {bad!r} is not an integer grade")
        values = filled.astype(np.int64)
    elif raw.dtype.kind in "iub":
        values = raw.astype(np.int64)
    else:
        raise InputError(f"{name}: grades must be integers (dtype {raw.dtype} given)")
    if mask is not None:
        values = np.where(mask, MISSING, values)
    top = max(categories)
    lut = np.full(top + 2, -2, dtype=np.int64)  # last slot: MISSING (-1) wraps to it
    lut[list(categories)] = np.arange(len(categories))
    lut[-1] = -1
    in_range = (values >= MISSING) & (values <= top)
    if not np.all(in_range):
        bad_value = values[~in_range][0]
        raise InputError(f"{name}: grade {int(bad_value)} is not on the scale {list(categories)}")
    idx = lut[values]
    if np.any(idx == -2):
        bad_value = values[idx == -2][0]
        raise InputError(f"{name}: grade {int(bad_value)} is not on the scale {list(categories)}")
    return idx


def encode_1d(grades: Grades, categories: tuple[int, ...], name: str) -> IntArray:
    idx = encode(grades, categories, name)
    if idx.ndim != 1:
        raise InputError(f"{name}: expected a 1-D array of grades, got shape {idx.shape}")
    return idx


def same_length(**arrays: np.ndarray) -> int:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise InputError(f"arrays are not aligned by slice: lengths {lengths}")
    return next(iter(lengths.values()))


def encode_groups(ids: npt.ArrayLike, name: str = "patient_ids") -> tuple[IntArray, int]:
    """Dense 0..P-1 codes of cluster ids (patients); returns the codes and P."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.dtype == object and any(v is None for v in arr):
        raise InputError(f"{name}: missing id (None)")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise InputError(f"{name}: missing id (NaN)")
    uniq, inverse = np.unique(arr, return_inverse=True)
    return inverse.astype(np.int64).ravel(), len(uniq)


def jsonable(value: Any) -> Any:
    """Dataclasses, tuples, dicts and numpy scalars to JSON types; NaN/inf -> None; dict keys -> str."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    return value
