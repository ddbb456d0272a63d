"""mm-true resampling and augmentation carry the labelled point exactly where the pixels go."""

from __future__ import annotations

import numpy as np
import torch

from annotator.ml import augment, preprocess
from annotator.ml.config import AugmentConfig


def _blob(shape: tuple[int, int], x: float, y: float, spacing: tuple[float, float], r_mm: float = 3.0) -> np.ndarray:
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    d2 = ((cols - x) * spacing[1]) ** 2 + ((rows - y) * spacing[0]) ** 2
    return np.exp(-d2 / (2 * r_mm**2)).astype(np.float32)


def _peak(img: np.ndarray) -> tuple[float, float]:
    w = np.clip(img, 0, None) ** 4
    rows, cols = np.mgrid[: img.shape[0], : img.shape[1]]
    return float((w * cols).sum() / w.sum()), float((w * rows).sum() / w.sum())


def test_overview_and_crop_respect_anisotropic_pixel_spacing() -> None:
    spacing = (0.5, 0.8)  # rows 0.5 mm apart, columns 0.8 mm apart
    img = _blob((300, 200), x=120.0, y=100.0, spacing=spacing)
    ov = preprocess.resample(img, spacing, preprocess.image_centre(img.shape), 64, 4.0)
    expect = preprocess.to_overview((120.0, 100.0), img.shape, spacing, 64, 4.0)
    got = _peak(ov)
    assert abs(got[0] - expect[0]) < 0.3 and abs(got[1] - expect[1]) < 0.3
    back = preprocess.from_overview(expect, img.shape, spacing, 64, 4.0)
    assert np.allclose(back, (120.0, 100.0))
    crop = preprocess.resample(img, spacing, (120.0, 100.0), 48, 0.5)
    assert np.allclose(_peak(crop), (23.5, 23.5), atol=0.1)


def test_normalise_is_robust_to_scanner_gain() -> None:
    rng = np.random.default_rng(0)
    img = rng.gamma(2.0, 300.0, (128, 128)).astype(np.float32)
    a = preprocess.normalise(img, 0.5, 99.5)
    b = preprocess.normalise(img * 7.3 + 100, 0.5, 99.5)
    assert np.allclose(a, b, atol=1e-4)


def test_augmentation_moves_the_point_with_the_pixels() -> None:
    aug = AugmentConfig(flip=True, rotate_deg=25.0, scale=0.2, gamma=0.0, contrast=0.0, noise=0.0,
                        jitter_mm=5.0, jitter_small_mm=1.0)
    gen = torch.Generator().manual_seed(0)
    n = 64
    imgs = torch.from_numpy(np.stack([_blob((n, n), x, y, (1.0, 1.0)) for x, y in [(20.0, 40.0)] * 8]))[:, None]
    pts = torch.tensor([[20.0, 40.0]] * 8)
    out, moved = augment.augment_overview(imgs, pts, aug, translate_mm=8.0, mm_per_px=1.0, gen=gen)
    for k in range(8):
        assert np.allclose(_peak(out[k, 0].numpy()), moved[k].numpy(), atol=0.35)
    ctx = torch.from_numpy(np.stack([_blob((96, 96), 47.5, 47.5, (0.5, 0.5))] * 8))[:, None]
    crops, offset_mm = augment.augment_crops(ctx, aug, crop_px=48, mm_per_px=0.5, gen=gen)
    for k in range(8):
        px = offset_mm[k].numpy() / 0.5 + 23.5
        assert np.allclose(_peak(crops[k, 0].numpy()), px, atol=0.35)
