"""Simulated expert readers of the phantom (numpy only).

An expert grades the latent severity plus their own noise against their own shifted stage thresholds,
so disagreements concentrate at stage boundaries as with real readers, and clicks the canal centre with
their own scatter and bias in mm. ``default_experts`` are tuned to agree on ~77.5% of slices on the
default prevalence (Won et al. 2020: 77.5%) with a median click distance of ~1.4 mm between them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from annotator.imaging.phantom import STAGE_THRESHOLDS

Spacing = float | tuple[float, float] | Mapping[str, tuple[float, float]]


class TruthLike(Protocol):
    @property
    def sop_instance_uid(self) -> str: ...
    @property
    def x_px(self) -> float: ...
    @property
    def y_px(self) -> float: ...
    @property
    def severity(self) -> float: ...


@dataclass(frozen=True, slots=True)
class ExpertProfile:
    name: str
    severity_noise_sd: float
    threshold_shifts: tuple[float, float, float]  # added to STAGE_THRESHOLDS (negative: grades more severe)
    click_error_sd_mm: float  # per axis
    click_bias_mm: tuple[float, float]  # (x along columns, y along rows)

    @property
    def thresholds(self) -> tuple[float, float, float]:
        t = tuple(b + d for b, d in zip(STAGE_THRESHOLDS, self.threshold_shifts, strict=True))
        return t  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class SimulatedRead:
    sop_instance_uid: str
    x_px: float
    y_px: float
    grade: int


def default_experts() -> tuple[ExpertProfile, ExpertProfile]:
    """Two readers: expert 2 is a little noisier and calls stenosis a little earlier than expert 1."""
    return (
        ExpertProfile("expert1", 0.087, (0.015, 0.015, 0.01), 0.75, (0.2, 0.1)),
        ExpertProfile("expert2", 0.096, (-0.02, -0.015, -0.01), 0.85, (-0.2, 0.3)),
    )


def grade_severities(profile: ExpertProfile, severities: Sequence[float] | np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """The stage (0..3) the expert reads for each latent severity."""
    s = np.asarray(severities, dtype=np.float64)
    seen = s + rng.normal(0.0, profile.severity_noise_sd, s.shape)
    return (seen[..., None] >= np.asarray(profile.thresholds)).sum(axis=-1).astype(np.int64)


def _spacings(rows: Sequence[TruthLike], spacing: Spacing) -> np.ndarray:
    if isinstance(spacing, Mapping):
        try:
            return np.array([spacing[r.sop_instance_uid] for r in rows], dtype=np.float64).reshape(-1, 2)
        except KeyError as e:
            raise ValueError(f"no pixel spacing for SOP instance {e.args[0]}") from e
    if isinstance(spacing, int | float):
        pair = (float(spacing), float(spacing))
    else:
        pair = (float(spacing[0]), float(spacing[1]))
    if not all(p > 0 for p in pair):
        raise ValueError(f"pixel spacing must be positive, got {spacing!r}")
    return np.tile(np.array(pair, dtype=np.float64), (len(rows), 1))


def simulate_reads(profile: ExpertProfile, truth_rows: Sequence[TruthLike], spacing: Spacing,
                   rng: np.random.Generator) -> list[SimulatedRead]:
    """One read (click + grade) per truth row, in the same order.

    ``spacing`` is the PixelSpacing (row, column) in mm: one pair (or one float) for every slice, or a
    mapping from SOPInstanceUID to its pair (see ``phantom_dicom.pixel_spacing_by_uid``).
    """
    rows = list(truth_rows)
    if not rows:
        return []
    sp = _spacings(rows, spacing)
    grades = grade_severities(profile, [r.severity for r in rows], rng)
    err = rng.normal(0.0, profile.click_error_sd_mm, (len(rows), 2)) + np.asarray(profile.click_bias_mm)
    out = []
    for i, r in enumerate(rows):
        x = r.x_px + err[i, 0] / sp[i, 1]  # columns move by the column spacing
        y = r.y_px + err[i, 1] / sp[i, 0]
        out.append(SimulatedRead(r.sop_instance_uid, round(float(x), 3), round(float(y), 3), int(grades[i])))
    return out
