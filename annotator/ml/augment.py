"""Batched geometric and intensity augmentation on the CPU, seeded through one ``torch.Generator``.

Geometry is one affine warp per sample (``affine_grid`` + ``grid_sample``): left-right flip, small
rotation and scale, a shift. The labelled point is carried through the same matrix, so a flipped image
has a flipped point and the grade is unchanged. Coordinates follow ``grid_sample`` with
``align_corners=False``: normalised -1..1 over each square's width, x first (columns), then y (rows).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from annotator.ml.config import AugmentConfig


def px_to_norm(px: torch.Tensor, n: int) -> torch.Tensor:
    return (2.0 * px + 1.0) / n - 1.0


def norm_to_px(u: torch.Tensor, n: int) -> torch.Tensor:
    return ((u + 1.0) * n - 1.0) / 2.0


def random_linear(batch: int, aug: AugmentConfig, gen: torch.Generator, enabled: bool = True) -> torch.Tensor:
    """[B, 2, 2] output -> input linear maps: scale * rotation * optional left-right flip."""
    if not enabled:
        return torch.eye(2).expand(batch, 2, 2).clone()
    angle = (torch.rand(batch, generator=gen) * 2 - 1) * math.radians(aug.rotate_deg)
    scale = 1.0 + (torch.rand(batch, generator=gen) * 2 - 1) * aug.scale
    flip = (torch.rand(batch, generator=gen) < 0.5) if aug.flip else torch.zeros(batch, dtype=torch.bool)
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    fx = torch.where(flip, -1.0, 1.0)
    flipm = torch.diag_embed(torch.stack([fx, torch.ones(batch)], -1))
    return scale[:, None, None] * rot @ flipm


def warp(images: torch.Tensor, linear: torch.Tensor, shift: torch.Tensor, out_px: int) -> torch.Tensor:
    """Sample ``out_px`` squares: input coordinate = linear @ output coordinate + shift (normalised)."""
    theta = torch.cat([linear, shift[:, :, None]], dim=2)
    grid = F.affine_grid(theta, [images.shape[0], 1, out_px, out_px], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def carry_point(point_norm_in: torch.Tensor, linear: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Where an input point lands in the output: linear^-1 (p - shift)."""
    return torch.linalg.solve(linear, (point_norm_in - shift)[:, :, None])[:, :, 0]


def intensity(x: torch.Tensor, aug: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Random gamma, contrast, brightness and Gaussian noise per sample (values stay >= 0 first)."""
    b = x.shape[0]
    gamma = torch.exp((torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * aug.gamma)
    gain = 1.0 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * aug.contrast
    bias = (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * aug.contrast * 0.25
    sd = torch.rand(b, 1, 1, 1, generator=gen) * aug.noise
    x = x.clamp_min(0.0).pow(gamma) * gain + bias
    return x + torch.randn(x.shape, generator=gen) * sd


def jitter_mm(batch: int, aug: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """[B, 2] crop-centre offsets: half uniform in a disc of ``jitter_mm``, half Gaussian ``jitter_small_mm``."""
    wide = torch.rand(batch, generator=gen) < 0.5
    r = aug.jitter_mm * torch.sqrt(torch.rand(batch, generator=gen))
    phi = torch.rand(batch, generator=gen) * 2 * math.pi
    disc = torch.stack([r * torch.cos(phi), r * torch.sin(phi)], -1)
    gauss = torch.randn(batch, 2, generator=gen) * aug.jitter_small_mm
    return torch.where(wide[:, None], disc, gauss)


def augment_overview(images: torch.Tensor, points_px: torch.Tensor, aug: AugmentConfig, translate_mm: float,
                     mm_per_px: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp overviews [B,1,n,n] and carry their points (overview pixels) along."""
    b, n = images.shape[0], images.shape[-1]
    lin = random_linear(b, aug, gen)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * translate_mm / (n / 2 * mm_per_px)
    out = warp(images, lin, shift, n)
    pts = norm_to_px(carry_point(px_to_norm(points_px, n), lin, shift), n)
    return intensity(out, aug, gen), pts


def augment_crops(context: torch.Tensor, aug: AugmentConfig, crop_px: int, mm_per_px: float,
                  gen: torch.Generator, geometric: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops from context squares centred on the labelled point, and the point's offset in the crop (mm).

    The offset is measured from the crop centre in the crop's own frame (x right, y down), which is
    what the refinement head predicts.
    """
    b, n = context.shape[0], context.shape[-1]
    lin = random_linear(b, aug, gen, enabled=geometric) * (crop_px / n)
    shift = jitter_mm(b, aug, gen) / (n / 2 * mm_per_px)
    out = warp(context, lin, shift, crop_px)
    offset = carry_point(torch.zeros(b, 2), lin, shift) * (crop_px / 2 * mm_per_px)
    return (intensity(out, aug, gen) if geometric else out), offset
