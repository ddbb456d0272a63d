"""What each scanner augmentation does to a batch (issue 16 point 5), and that all of them off is nothing."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from annotator.domain.errors import InputError
from annotator.imaging.dicom_io import LoadedSlice, as_monochrome2
from annotator.imaging.phantom import STORED_MAX
from annotator.ml import augment
from annotator.ml.config import AugmentConfig, load_preset
from annotator.ml.preprocess import normalise

MM = 0.625  # the fast preset's crop pixels
OFF = AugmentConfig(flip=False, rotate_deg=0.0, scale=0.0, gamma=0.0, contrast=0.0, noise=0.0, jitter_mm=0.0,
                    jitter_small_mm=0.0)
SCANNER_OFF = {"bias": 0.0, "acquired_mm_min": 0.0, "acquired_mm_max": 0.0, "fov_min_mm": 0.0, "invert": 0.0}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _blob(n: int, x: float, y: float, sd: float = 1.2) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32), indexing="ij")
    return torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sd * sd))


def _centroid(img: torch.Tensor) -> tuple[float, float]:
    w = img.clamp_min(0.0)
    ys, xs = torch.meshgrid(torch.arange(img.shape[0], dtype=torch.float32),
                            torch.arange(img.shape[1], dtype=torch.float32), indexing="ij")
    return float((w * xs).sum() / w.sum()), float((w * ys).sum() / w.sum())


def _context(b: int = 6, n: int = 96) -> torch.Tensor:
    g = _gen(5)
    return (torch.rand(b, 1, n, n, generator=g) * 0.3 + _blob(n, (n - 1) / 2, (n - 1) / 2, 6.0)).contiguous()


def test_with_every_augmentation_off_the_batch_is_unchanged() -> None:
    ctx = _context()
    crops, offset = augment.augment_crops(ctx, OFF, 64, MM, _gen())
    assert torch.allclose(crops, ctx[..., 16:80, 16:80], atol=1e-5)
    assert torch.allclose(offset, torch.zeros_like(offset), atol=1e-6)
    points = torch.tensor([[30.0, 20.5]] * 6)
    ov, pts = augment.augment_overview(ctx, points, OFF, 0.0, 4.0, _gen())
    assert torch.allclose(ov, ctx, atol=1e-5) and torch.allclose(pts, points, atol=1e-4)


def test_scanner_augmentations_off_make_the_batches_older_presets_made() -> None:
    """Off, they draw no random numbers: geometry + intensity alone, in the same order as before."""
    aug = dataclasses.replace(load_preset("fast").augment, **SCANNER_OFF)
    ctx = _context()
    crops, offset = augment.augment_crops(ctx, aug, 64, MM, _gen(3))
    g = _gen(3)
    lin = augment.random_linear(6, aug, g) * (64 / 96)
    shift = augment.jitter_mm(6, aug, g) / (96 / 2 * MM)
    old = augment.intensity(augment.warp(ctx, lin, shift, 64), aug, g)
    assert torch.equal(crops, old)
    assert torch.equal(offset, augment.carry_point(torch.zeros(6, 2), lin, shift) * (64 / 2 * MM))


def test_same_seed_same_batch_other_seed_other_batch() -> None:
    aug = load_preset("fast").augment
    ctx = _context()
    a, oa = augment.augment_crops(ctx, aug, 64, MM, _gen(7))
    b, ob = augment.augment_crops(ctx, aug, 64, MM, _gen(7))
    c, _ = augment.augment_crops(ctx, aug, 64, MM, _gen(8))
    assert torch.equal(a, b) and torch.equal(oa, ob)
    assert not torch.allclose(a, c)
    pts = torch.full((6, 2), 40.0)
    ov1, p1 = augment.augment_overview(ctx, pts, aug, 12.0, 4.0, _gen(7))
    ov2, p2 = augment.augment_overview(ctx, pts, aug, 12.0, 4.0, _gen(7))
    assert torch.equal(ov1, ov2) and torch.equal(p1, p2)


def test_bias_field_is_smooth_multiplicative_and_bounded() -> None:
    strength = 0.5
    field = augment.bias_field(16, 64, 4.0, strength, _gen(1))  # a 256 mm overview
    assert field.min() >= math.exp(-strength) - 1e-6 and field.max() <= math.exp(strength) + 1e-6
    log = field.log()
    spans = log.amax((1, 2, 3)) - log.amin((1, 2, 3))
    assert spans.max() > 0.3  # it does vary over the field ...
    steps = torch.cat([log.diff(dim=2).abs().flatten(1), log.diff(dim=3).abs().flatten(1)], 1)
    assert steps.max() < 3 * strength * 4.0 / augment.BIAS_SPAN_MM + 1e-6  # ... smoothly (4 mm per pixel)
    # multiplicative: twice the signal, twice the result; a crop of 40 mm sees a gentle part of it
    aug = dataclasses.replace(OFF, bias=strength)
    x = _context()
    once = augment.scanner(x, aug, MM, _gen(2))
    assert torch.allclose(augment.scanner(2 * x, aug, MM, _gen(2)), 2 * once, rtol=1e-5)
    ratio = (once / x).log()
    assert float((ratio.amax((1, 2, 3)) - ratio.amin((1, 2, 3))).max()) < 2 * strength * 96 * MM / 128


def test_coarser_acquisition_blurs_but_keeps_every_point_in_place() -> None:
    n = 64
    x, y = 37.3, 22.6  # off-centre, off-grid
    img = _blob(n, x, y)[None, None].repeat(4, 1, 1, 1)
    pitch = torch.tensor([0.5, 0.8, 1.0, 1.2])  # mm per pixel; the images are at 0.625
    out = augment.acquire(img, pitch, MM, torch.zeros(4), _gen(4))
    assert torch.equal(out[0], img[0])  # finer than the image: nothing it could show
    peaks = [float(out[i].max()) for i in range(4)]
    assert peaks[0] > peaks[1] > peaks[2] > peaks[3] and peaks[3] < 0.75  # coarser: more partial volume
    for i in range(4):
        cx, cy = _centroid(out[i, 0])
        assert abs(cx - x) < 0.05 and abs(cy - y) < 0.05, (i, cx, cy)  # the same place in mm
    # detail finer than the coarse pixels is gone (no aliasing into a false pattern)
    stripes = (torch.arange(n) % 2).float().expand(n, n)[None, None] - 0.5
    coarse = augment.acquire(stripes, torch.tensor([1.2]), MM, torch.zeros(1), _gen(4))
    assert float(coarse[..., 8:-8, 8:-8].abs().max()) < 0.1


def test_acquisition_noise_lives_on_the_coarse_grid() -> None:
    flat = torch.zeros(2, 1, 64, 64)
    out = augment.acquire(flat, torch.tensor([1.25, 1.25]), MM, torch.tensor([0.0, 0.05]), _gen(6))
    assert float(out[0].abs().max()) == 0.0
    noise = out[1, 0, 8:-8, 8:-8]
    neighbours = float(torch.corrcoef(torch.stack([noise[:, :-1].flatten(), noise[:, 1:].flatten()]))[0, 1])
    assert neighbours > 0.4  # 2 fine pixels per coarse one: neighbours share their samples


def test_crop_offsets_stay_true_through_the_scanner_augmentations() -> None:
    """With jitter and every scanner augmentation on, the returned offset still points at the blob."""
    aug = dataclasses.replace(OFF, jitter_mm=5.0, jitter_small_mm=1.0, bias=0.5, acquired_mm_min=0.4,
                              acquired_mm_max=1.2)
    n = 96
    ctx = _blob(n, (n - 1) / 2, (n - 1) / 2, 2.0)[None, None].repeat(8, 1, 1, 1)
    crops, offset = augment.augment_crops(ctx, aug, 64, MM, _gen(9))
    for i in range(8):
        cx, cy = _centroid(crops[i, 0])
        found = torch.tensor([(cx - 31.5) * MM, (cy - 31.5) * MM])
        assert torch.allclose(found, offset[i], atol=0.15), (i, found, offset[i])


def test_field_of_view_keeps_a_centred_square() -> None:
    x = torch.ones(32, 1, 64, 64)
    out = augment.field_of_view(x, 4.0, 140.0, _gen(2))
    sides = out[:, 0, 32, :].sum(1) * 4.0  # mm kept along the middle row
    assert sides.min() >= 140.0 - 8.0 and sides.max() <= 256.0 and sides.std() > 10.0
    assert torch.equal(out[:, 0], out[:, 0].flip(1)) and torch.equal(out[:, 0], out[:, 0].transpose(1, 2))
    assert torch.equal(out[:, :, 24:40, 24:40], x[:, :, 24:40, 24:40])


def test_invert_is_the_polarity_the_importer_undoes() -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 3000, (80, 80)).astype(np.float32)  # what a MONOCHROME2 file holds
    stored = (STORED_MAX - pixels).astype(np.float32)  # the same image written MONOCHROME1
    as_model_sees = normalise(pixels, 0.5, 99.5)
    not_undone = torch.from_numpy(normalise(stored, 0.5, 99.5))[None, None]
    undone = normalise(as_monochrome2(LoadedSlice(stored, monochrome1=True)), 0.5, 99.5)
    assert np.allclose(undone, as_model_sees, atol=1e-5)
    flipped = augment.invert(not_undone, 1.0, _gen())
    assert np.allclose(flipped[0, 0].numpy(), as_model_sees, atol=1e-5)
    assert torch.equal(augment.invert(not_undone, 0.0, _gen()), not_undone)
    share = augment.invert(torch.zeros(400, 1, 2, 2), 0.3, _gen(1))[:, 0, 0, 0].mean()
    assert 0.22 < float(share) < 0.38


@pytest.mark.parametrize("bad", [{"acquired_mm_min": 0.0, "acquired_mm_max": 1.2},
                                 {"acquired_mm_min": 1.3, "acquired_mm_max": 1.2},
                                 {"invert": 1.5}, {"bias": -0.1}])
def test_bad_scanner_augmentation_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(InputError, match="augment"):
        load_preset("fast").with_overrides(augment=bad)
