"""Batched geometric and intensity augmentation on the CPU, seeded through one ``torch.Generator``.

Geometry is one affine warp per sample (``affine_grid`` + ``grid_sample``): left-right flip, small
rotation and scale, a shift. The labelled point is carried through the same matrix, so a flipped image
has a flipped point and the grade is unchanged. Coordinates follow ``grid_sample`` with
``align_corners=False``: normalised -1..1 over each square's width, x first (columns), then y (rows).

What another scanner changes (issue 16 point 5) is simulated on top: a smooth multiplicative coil bias
field, acquisition at another in-plane resolution (blur, sampling and noise on the coarser grid, then
the bilinear resampling the preprocessing does), a smaller field of view, and optionally the polarity a
MONOCHROME1 file has when nothing undoes it. Each is off at 0 and then draws no random numbers, so a
preset without them makes the batches it always made.
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


BIAS_SPAN_MM = 128.0  # a bias field's shape is a quadratic over +-this from the image centre
PSF_SD_PX = 0.5  # MRI point spread (sinc main lobe) as a Gaussian sd, in acquired pixels


def bias_field(batch: int, n: int, mm_per_px: float, strength: float, gen: torch.Generator,
               centre_mm: torch.Tensor | None = None) -> torch.Tensor:
    """[B,1,n,n] smooth multiplicative coil non-uniformity, within [exp(-strength), exp(strength)].

    The log of the field is a random quadratic in the position (mm / ``BIAS_SPAN_MM``) times an
    amplitude uniform in [0, ``strength``]; its coefficients are scaled so that it stays within +-1 over
    the +-``BIAS_SPAN_MM`` square, so a small crop sees a gentle slope of a large field, not a field
    squeezed into the crop. ``centre_mm`` [B,2] places each square's centre in that field (default: at
    the field's centre).
    """
    coef = torch.rand(batch, 5, generator=gen) * 2 - 1
    coef = coef / coef.abs().sum(1, keepdim=True).clamp_min(1e-6)
    amp = torch.rand(batch, generator=gen) * strength
    offs = (torch.arange(n, dtype=torch.float32) - (n - 1) / 2.0) * mm_per_px
    centre = torch.zeros(batch, 2) if centre_mm is None else centre_mm
    x = (offs[None, None, :] + centre[:, 0, None, None]) / BIAS_SPAN_MM
    y = (offs[None, :, None] + centre[:, 1, None, None]) / BIAS_SPAN_MM
    c = coef[:, :, None, None]
    g = c[:, 0] * x + c[:, 1] * y + c[:, 2] * x * x + c[:, 3] * y * y + c[:, 4] * x * y
    return torch.exp(amp[:, None, None] * g.clamp(-1.0, 1.0))[:, None]


def gaussian_blur(x: torch.Tensor, sigma_px: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of [B,1,n,n] with one sd per sample (0: unchanged), edges replicated."""
    b = x.shape[0]
    radius = max(1, math.ceil(3.0 * float(sigma_px.max())))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    s = sigma_px.clamp_min(1e-3)[:, None]
    k = torch.exp(-0.5 * (t[None, :] / s) ** 2)
    k = torch.where(sigma_px[:, None] > 1e-3, k, (t[None, :] == 0).to(x.dtype))
    k = k / k.sum(1, keepdim=True)
    y = F.pad(x.transpose(0, 1), (radius, radius, radius, radius), mode="replicate")  # [1,B,n+2r,n+2r]
    y = F.conv2d(y, k[:, None, None, :], groups=b)
    y = F.conv2d(y, k[:, None, :, None], groups=b)
    return y.transpose(0, 1)


def acquire(x: torch.Tensor, pitch_mm: torch.Tensor, mm_per_px: float, noise_sd: torch.Tensor,
            gen: torch.Generator) -> torch.Tensor:
    """Images [B,1,n,n] at ``mm_per_px`` as a scanner acquiring at ``pitch_mm`` [B] would give them once
    resampled to ``mm_per_px``: the coarser acquisition's point spread (``PSF_SD_PX`` acquired pixels,
    less what the image already has), samples on the coarse grid (random phase), its noise there
    (``noise_sd`` [B]), then bilinear back to the fine grid, as ``preprocess.resample`` upsamples.

    The square keeps its extent and centre, so every anatomical point stays where it was (in mm). A
    pitch at or below ``mm_per_px`` adds nothing the image could show: those samples are unchanged.
    """
    b, n = x.shape[0], x.shape[-1]
    r = (pitch_mm / mm_per_px).to(x.dtype)
    coarse = r > 1.0
    if not bool(coarse.any()):
        return x
    r = torch.where(coarse, r, torch.ones_like(r))
    blurred = gaussian_blur(x, PSF_SD_PX * torch.sqrt(r * r - 1.0))
    # coarse pixel j of sample i sits at (j - (n-1)/2) * r_i fine pixels from the centre, plus a phase
    phase = (torch.rand(b, 2, generator=gen) - 0.5) * 2.0 / n * r[:, None]
    eye = torch.eye(2).expand(b, 2, 2)
    theta = torch.cat([eye * r[:, None, None], phase[:, :, None]], 2)
    grid = F.affine_grid(theta, [b, 1, n, n], align_corners=False)
    low = F.grid_sample(blurred, grid, mode="bilinear", padding_mode="border", align_corners=False)
    low = low + torch.randn(low.shape, generator=gen) * noise_sd[:, None, None, None]
    inv = torch.cat([eye / r[:, None, None], (-phase / r[:, None])[:, :, None]], 2)
    grid = F.affine_grid(inv, [b, 1, n, n], align_corners=False)
    out = F.grid_sample(low, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return torch.where(coarse[:, None, None, None], out, x)


def random_pitch(batch: int, aug: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """[B] acquisition pitches (mm per pixel), uniform in [acquired_mm_min, acquired_mm_max]."""
    lo, hi = aug.acquired_mm_min, aug.acquired_mm_max
    return lo + torch.rand(batch, generator=gen) * (hi - lo)


def field_of_view(x: torch.Tensor, mm_per_px: float, min_mm: float, gen: torch.Generator) -> torch.Tensor:
    """Zero outside a centred square field of view of side uniform in [``min_mm``, the image's side]
    (the preprocessing fills what lies outside a smaller scan with 0)."""
    b, n = x.shape[0], x.shape[-1]
    side = n * mm_per_px
    fov = min_mm + torch.rand(b, generator=gen) * max(side - min_mm, 0.0)
    offs = ((torch.arange(n, dtype=x.dtype) - (n - 1) / 2.0) * mm_per_px).abs()
    inside = offs[None, :] <= fov[:, None] / 2
    return x * (inside[:, None, :, None] & inside[:, None, None, :]).to(x.dtype)


def invert(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """With probability ``p`` per sample, ``1 - x``: exactly what the percentile scaling makes of a
    MONOCHROME1 file whose polarity nothing undoes (``dicom_io.as_monochrome2`` undoes it on import)."""
    flip = torch.rand(x.shape[0], generator=gen) < p
    return torch.where(flip[:, None, None, None], 1.0 - x, x)


def scanner(x: torch.Tensor, aug: AugmentConfig, mm_per_px: float, gen: torch.Generator,
            bias_centre_mm: torch.Tensor | None = None, resolution: bool = False) -> torch.Tensor:
    """The coil and the acquisition of another scanner, each off at 0: a bias field and (with
    ``resolution``) another acquisition pitch with its noise."""
    b, n = x.shape[0], x.shape[-1]
    if aug.bias > 0:
        x = x * bias_field(b, n, mm_per_px, aug.bias, gen, bias_centre_mm)
    if resolution and aug.acquired_mm_max > 0:
        pitch = random_pitch(b, aug, gen)
        x = acquire(x, pitch, mm_per_px, torch.rand(b, generator=gen) * aug.noise, gen)
    return x


def polarity(x: torch.Tensor, aug: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    return invert(x, aug.invert, gen) if aug.invert > 0 else x


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
    if aug.fov_min_mm > 0:
        out = field_of_view(out, mm_per_px, aug.fov_min_mm, gen)
    out = intensity(scanner(out, aug, mm_per_px, gen), aug, gen)
    return polarity(out, aug, gen), pts


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
    if not geometric:
        return out, offset
    # the canal lies within a few cm of the image centre: the crop sees that part of the bias field
    bias_at = (torch.rand(b, 2, generator=gen) * 2 - 1) * 40.0 if aug.bias > 0 else None
    out = intensity(scanner(out, aug, mm_per_px, gen, bias_at, resolution=True), aug, gen)
    return polarity(out, aug, gen), offset
