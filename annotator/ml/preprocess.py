"""Pixels to network inputs, numpy/scipy only: mm-true resampling and robust intensity scaling.

Every network input has a fixed size in mm per pixel whatever the acquisition (PixelSpacing is
(row spacing, column spacing) in mm, as in DICOM), so a model trained on 0.5 mm pixels reads 0.7 mm
pixels correctly. Intensities of 12-bit (or any) data are mapped by percentiles, which ignores the
scanner's arbitrary gain and the odd hot pixel. Pixel convention: ``x`` is the column, ``y`` the row,
pixel centres at integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from annotator.ml.config import Preset

Spacing = tuple[float, float]  # (row spacing, column spacing), mm


@dataclass(frozen=True, slots=True)
class SliceInput:
    """One slice to read: its pixels (any dtype) and geometry; ``key`` is the caller's id (image id)."""

    key: int
    pixels: np.ndarray
    spacing: Spacing


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled slice, prepared once per training run.

    ``overview`` is the localizer's square view (``LocalizerConfig.grid_px``, centred on the image
    centre); ``overview_point`` the label there in overview pixels. ``context`` is a square around the
    labelled point at the classifier's resolution, larger than the crop so that jitter, rotation and
    scale augmentations stay inside real pixels.
    """

    key: int
    patient: str
    overview: np.ndarray
    overview_point: tuple[float, float]
    context: np.ndarray
    grade: int  # class index 0..K-1
    point: tuple[float, float]  # image pixels (x, y)
    spacing: Spacing


def normalise(pixels: np.ndarray, low_pct: float, high_pct: float) -> np.ndarray:
    """float32 with the ``low_pct`` percentile at 0 and ``high_pct`` at 1 (subsampled for speed)."""
    img = np.asarray(pixels, dtype=np.float32)
    sample = img[::2, ::2] if img.size > 65536 else img
    lo, hi = np.percentile(sample, [low_pct, high_pct])
    scale = float(hi - lo) if hi > lo else 1.0
    return (img - np.float32(lo)) * np.float32(1.0 / scale)


def resample(img: np.ndarray, spacing: Spacing, centre_xy: tuple[float, float], size_px: int,
             mm_per_px: float) -> np.ndarray:
    """A ``size_px`` square at ``mm_per_px`` centred on image pixel ``centre_xy`` (bilinear, 0 outside).

    Downsampling first blurs with a Gaussian matched to the reduction, so fine noise does not alias.
    """
    rs, cs = float(spacing[0]), float(spacing[1])
    sig = (max(0.0, 0.42 * (mm_per_px / rs - 1.0)), max(0.0, 0.42 * (mm_per_px / cs - 1.0)))
    src = gaussian_filter(img, sig, mode="nearest", truncate=3.0) if max(sig) > 0.15 else img
    offs = (np.arange(size_px, dtype=np.float64) - (size_px - 1) / 2.0) * mm_per_px
    rows = centre_xy[1] + offs / rs
    cols = centre_xy[0] + offs / cs
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    out = map_coordinates(src, [rr, cc], order=1, mode="constant", cval=0.0, prefilter=False)
    return out.astype(np.float32, copy=False)


def image_centre(shape: tuple[int, ...]) -> tuple[float, float]:
    return ((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)


def to_overview(point_xy: tuple[float, float], shape: tuple[int, ...], spacing: Spacing, grid_px: int,
                mm_per_px: float) -> tuple[float, float]:
    """Image pixel -> overview pixel (the overview is centred on the image centre)."""
    cx, cy = image_centre(shape)
    c = (grid_px - 1) / 2.0
    return (c + (point_xy[0] - cx) * spacing[1] / mm_per_px, c + (point_xy[1] - cy) * spacing[0] / mm_per_px)


def from_overview(point: tuple[float, float], shape: tuple[int, ...], spacing: Spacing, grid_px: int,
                  mm_per_px: float) -> tuple[float, float]:
    """Overview pixel -> image pixel."""
    cx, cy = image_centre(shape)
    c = (grid_px - 1) / 2.0
    return (cx + (point[0] - c) * mm_per_px / spacing[1], cy + (point[1] - c) * mm_per_px / spacing[0])


def context_px(preset: Preset) -> int:
    """Side of the stored context square: the crop plus room for jitter, rotation and scale."""
    cfg, aug = preset.classifier, preset.augment
    margin_mm = aug.jitter_mm + 3.0 * aug.jitter_small_mm
    turn = np.radians(aug.rotate_deg)
    side_mm = cfg.crop_mm * (1.0 + aug.scale) * (np.cos(turn) + np.sin(turn)) + 2.0 * margin_mm
    px = int(np.ceil(side_mm / cfg.crop_mm_per_px / 8.0) * 8)
    return max(px, cfg.crop_px)


def overview(img: np.ndarray, spacing: Spacing, preset: Preset) -> np.ndarray:
    loc = preset.localizer
    return resample(img, spacing, image_centre(img.shape), loc.grid_px, loc.mm_per_px)


def prepare_example(key: int, patient: str, pixels: np.ndarray, spacing: Spacing, point: tuple[float, float],
                    grade: int, preset: Preset) -> Example:
    """Normalise one labelled slice and cut the views the two networks train on."""
    img = normalise(pixels, preset.intensity.low_pct, preset.intensity.high_pct)
    loc = preset.localizer
    ov = overview(img, spacing, preset)
    ov_point = to_overview(point, img.shape, spacing, loc.grid_px, loc.mm_per_px)
    ctx = resample(img, spacing, point, context_px(preset), preset.classifier.crop_mm_per_px)
    return Example(key, patient, ov, ov_point, ctx, int(grade), (float(point[0]), float(point[1])),
                   (float(spacing[0]), float(spacing[1])))
