"""Synthetic axial T2 slices at the L4-5 disc level with graded central canal stenosis (numpy/scipy only).

One latent severity ``s`` in [0, 1] per patient drives every sign of stenosis (domain notes section 4):
the dural sac shrinks and turns triangular then trefoil (disc bulge in front, ligamentum flavum and facet
hypertrophy behind), rootlets move from a dorsal crescent to fill the sac (anterior CSF obliterated),
then clump, then the CSF vanishes until the sac is a grey blob; posterior epidural fat disappears at the
extreme end. ``STAGE_THRESHOLDS`` cut ``s`` into four stages (Lee 0-3 ~ Schizas A-D).

Pixel convention (as DICOM): pixel (column 0, row 0) centre is the image position; ``x_px`` is the column,
``y_px`` the row, both floats. Rows run anterior -> posterior and columns patient right -> left (axial
orientation [1,0,0,0,1,0]); the patient's in-plane rotation lives in the anatomy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from annotator.imaging import phantom_shapes as sh
from annotator.imaging.phantom_anatomy import (
    NUCLEUS,
    disc_centre_v,
    facet_centre,
    fat_table,
    flavum_table,
    lerp,
    paint_body,
    paint_canal,
    paint_disc,
    paint_posterior_elements,
    sac_table,
)

STAGE_THRESHOLDS: tuple[float, float, float] = (0.40, 0.60, 0.80)
DEFAULT_PREVALENCE: tuple[float, float, float, float] = (0.75, 0.17, 0.06, 0.02)
N_STAGES = 4
STORED_MAX = 4095
SUPERSAMPLE = 2


def stage_of(severity: float, thresholds: tuple[float, ...] = STAGE_THRESHOLDS) -> int:
    """Stage 0..3 of a latent severity."""
    return int(sum(severity >= t for t in thresholds))


@dataclass(frozen=True, slots=True)
class PatientSpec:
    """Everything that makes one synthetic patient; slices differ only by their offset along z."""

    index: int
    seed: int  # anatomy details (rootlets, textures) and, combined with the slice offset, noise
    stage: int
    severity: float
    fov_mm: float
    canal_offset_mm: tuple[float, float]  # canal centre from the image centre (x right->left, y ant->post)
    rotation_deg: float
    body_scale: float
    sac_area0_mm2: float  # dural sac cross-section without stenosis
    sac_aspect: float  # AP depth / width
    sac_wobble: tuple[float, float, float, float]  # small Fourier shape terms
    lf_asymmetry: float
    fat_post_mm: float
    fat_lat_mm: float
    lf_mm: float
    facet_angle_deg: float
    disc_half_width_mm: float
    disc_half_depth_mm: float
    disc_height_mm: float
    disc_tilt_deg: float
    nucleus_signal: float
    skin_depth_mm: float  # canal centre to posterior skin
    subcut_mm: float
    n_rootlets: int
    slice_thickness_mm: float
    n_slices: int
    table_z_mm: float  # patient z of the disc centre
    gain: float
    noise_rel: float
    bias_strength: float
    contrast: float = 1.0  # tissue contrast: relative signal ** contrast (1: the default T2 look)
    bias_tilt: float = 0.0  # extra left-right coil gradient: x 1 -+ tilt from the right edge to the left

    @property
    def slice_offsets_mm(self) -> tuple[float, ...]:
        """Offsets of the contiguous slices from the disc centre, cranial (+z) first; 0 is present."""
        t = self.slice_thickness_mm
        k0 = (self.n_slices - 1) // 2
        return tuple(round((k0 - k) * t, 3) for k in range(self.n_slices))

    def slice_severity(self, offset_mm: float) -> float:
        """Stenosis is worst at the disc centre and eases slightly away from it."""
        return round(max(0.0, self.severity - 0.035 * abs(offset_mm) / self.slice_thickness_mm), 6)


@dataclass(frozen=True, slots=True)
class SliceTruth:
    x_px: float  # column of the sac centroid
    y_px: float  # row of the sac centroid
    stage: int
    severity: float
    sac_area_mm2: float
    pixel_spacing_mm: float
    slice_offset_mm: float
    sac_mask: np.ndarray | None = None  # bool, output resolution, only when asked for


@dataclass(frozen=True, slots=True)
class Scanner:
    """How the patients are acquired, apart from the matrix (``generate_dataset``'s argument): ranges the
    per-patient acquisition values are drawn from, uniformly, and fixed contrast and coil settings.

    The default is the demo's look; another scanner renders the same kind of patients the way another
    site would (a shifted test set). Patients draw the same random numbers whatever the ranges, so a
    scanner changes how a patient looks, not who the patient is.
    """

    fov_mm: tuple[float, float] = (160.0, 220.0)
    canal_offset_x_mm: tuple[float, float] = (-12.0, 12.0)  # canal centre from the image centre
    canal_offset_y_mm: tuple[float, float] = (-4.0, 22.0)
    gain: tuple[float, float] = (0.85, 1.15)
    noise_rel: tuple[float, float] = (0.016, 0.03)  # noise sd / signal level
    bias_strength: tuple[float, float] = (0.4, 0.7)  # posterior (surface-coil) brightening
    bias_tilt: float = 0.0
    contrast: float = 1.0

    def __post_init__(self) -> None:
        for name in ("fov_mm", "canal_offset_x_mm", "canal_offset_y_mm", "gain", "noise_rel", "bias_strength"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"Scanner.{name}: low {lo} > high {hi}")
        if self.fov_mm[0] <= 0 or self.gain[0] <= 0 or self.noise_rel[0] < 0 or self.contrast <= 0:
            raise ValueError("Scanner: field of view, gain and contrast must be positive, noise >= 0")
        if not 0.0 <= self.bias_tilt < 1.0:
            raise ValueError("Scanner.bias_tilt must be in [0, 1)")


DEFAULT_SCANNER = Scanner()


def draw_severity(rng: np.random.Generator, prevalence: tuple[float, ...] = DEFAULT_PREVALENCE) -> tuple[int, float]:
    """Stage by prevalence, then the severity uniform inside that stage's interval."""
    p = np.asarray(prevalence, dtype=np.float64)
    if p.shape != (N_STAGES,) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"prevalence needs {N_STAGES} non-negative shares, got {prevalence!r}")
    stage = int(rng.choice(N_STAGES, p=p / p.sum()))
    edges = (0.0, *STAGE_THRESHOLDS, 1.0)
    lo, hi = edges[stage], edges[stage + 1]
    sev = float(rng.uniform(lo, hi))
    # six decimals (as truth.csv stores them) that still lie inside the stage's interval
    sev = min(max(round(sev, 6), lo), round(hi - 1e-6, 6) if stage < N_STAGES - 1 else hi)
    return stage, sev


def draw_patient(rng: np.random.Generator, prevalence: tuple[float, ...] = DEFAULT_PREVALENCE,
                 index: int = 0, n_slices: int | None = None, scanner: Scanner = DEFAULT_SCANNER) -> PatientSpec:
    """A random patient as ``scanner`` acquires it; ``n_slices`` None draws 3-5 slices."""
    stage, sev = draw_severity(rng, prevalence)
    u = rng.uniform
    size = float(np.clip(rng.normal(1.0, 0.08), 0.82, 1.2))
    thick = float(rng.choice([3.0, 3.5, 4.0]))
    subcut = float(u(6, 35))
    muscle_depth = float(u(50, 68)) * size  # canal centre to the back of the paraspinal muscles
    n = int(rng.choice([3, 4, 5], p=[0.6, 0.15, 0.25])) if n_slices is None else int(n_slices)
    return PatientSpec(
        index=index,
        seed=int(rng.integers(0, 2**62)),
        stage=stage,
        severity=sev,
        fov_mm=round(float(u(*scanner.fov_mm)), 1),
        canal_offset_mm=(float(u(*scanner.canal_offset_x_mm)), float(u(*scanner.canal_offset_y_mm))),
        rotation_deg=float(u(-10, 10)),
        body_scale=size,
        sac_area0_mm2=float(u(158, 205)),
        sac_aspect=float(u(0.62, 0.8)),
        sac_wobble=tuple(float(x) for x in rng.normal(0, 0.025, 4)),  # type: ignore[arg-type]
        lf_asymmetry=float(u(-0.2, 0.2)),
        fat_post_mm=float(u(3.0, 5.0)),
        fat_lat_mm=float(u(1.4, 2.4)),
        lf_mm=float(u(2.2, 3.2)),
        facet_angle_deg=float(u(35, 50)),
        disc_half_width_mm=float(u(22, 26)) * size,
        disc_half_depth_mm=float(u(15, 18)) * size,
        disc_height_mm=float(u(8.5, 12.0)),
        disc_tilt_deg=float(u(-6, 6)),
        nucleus_signal=float(np.clip(lerp(NUCLEUS, 0.3, sev) + rng.normal(0, 0.06), 0.22, 0.7)),
        skin_depth_mm=round(muscle_depth + subcut, 3),
        subcut_mm=subcut,
        n_rootlets=int(rng.integers(10, 21)),
        slice_thickness_mm=thick,
        n_slices=n,
        table_z_mm=float(round(u(-60, 60), 2)),
        gain=float(u(*scanner.gain)),
        noise_rel=float(u(*scanner.noise_rel)),
        bias_strength=float(u(*scanner.bias_strength)),
        contrast=scanner.contrast,
        bias_tilt=scanner.bias_tilt,
    )


_BODY_CACHE: dict[tuple[PatientSpec, int], np.ndarray] = {}


def _mri(signal: np.ndarray, spec: PatientSpec, pixel_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Tissue contrast, coil bias (brighter posteriorly, optionally a left-right tilt), slight blur, Rician
    noise, 12-bit storage."""
    m = signal.shape[0]
    mm = (np.arange(m) - (m - 1) / 2.0) * pixel_mm
    x = mm[None, :] - spec.canal_offset_mm[0]
    y = mm[:, None] - spec.canal_offset_mm[1]
    th = math.radians(spec.rotation_deg)
    u = math.cos(th) * x + math.sin(th) * y
    v = -math.sin(th) * x + math.cos(th) * y
    depth = np.maximum(spec.skin_depth_mm - v, 0.0)
    bias = (0.62 + spec.bias_strength * np.exp(-depth / 85.0)) * (1 - 0.18 * (u / 140.0) ** 2)
    if spec.bias_tilt:
        bias = bias * (1.0 - spec.bias_tilt * mm[None, :] / max(mm[-1], 1e-9))
    if spec.contrast != 1.0:
        signal = np.power(np.clip(signal, 0.0, None), spec.contrast, dtype=np.float32)
    level = 3000.0 * spec.gain
    img = gaussian_filter(signal, 0.45) * bias * level
    sd = spec.noise_rel * level
    re = img + sd * rng.standard_normal(img.shape, dtype=np.float32)
    im = sd * rng.standard_normal(img.shape, dtype=np.float32)
    out = np.sqrt(re * re + im * im)
    return np.clip(np.rint(out), 0, STORED_MAX).astype(np.uint16)


def render_slice(spec: PatientSpec, slice_offset_mm: float = 0.0, matrix: int = 320,
                 rng: np.random.Generator | None = None, with_mask: bool = False) -> tuple[np.ndarray, SliceTruth]:
    """One axial slice ``slice_offset_mm`` from the disc centre: uint16 pixels (0..4095) and its truth.

    Without ``rng`` the noise comes from the patient's seed and the offset, so the same call gives the
    same pixels.
    """
    z = float(slice_offset_mm)
    s = spec.slice_severity(z)
    ps = spec.fov_mm / matrix
    if rng is None:
        rng = np.random.default_rng([spec.seed, 2, int(round(abs(z) * 1000)), int(z < 0)])
    cv = sh.Canvas(matrix, ps, spec.canal_offset_mm, math.radians(spec.rotation_deg), SUPERSAMPLE)
    sac0 = sac_table(spec, 0.0)
    fat0 = fat_table(spec, 0.0, sac0)
    sac = sac_table(spec, s)
    fat = fat_table(spec, s, sac)
    lf_out = flavum_table(spec, fat0)
    disc_cv = disc_centre_v(spec, fat0)
    facet_c = facet_centre(spec, lf_out)
    # the far anatomy is the same on every slice of a patient: paint it once
    key = (spec, matrix)
    body = _BODY_CACHE.get(key)
    if body is None:
        # large smooth shapes: anti-aliased edges at the output resolution are enough
        cv1 = sh.Canvas(matrix, ps, spec.canal_offset_mm, math.radians(spec.rotation_deg), 1)
        paint_body(cv1, spec, disc_cv, facet_c)
        body = np.repeat(np.repeat(cv1.img, SUPERSAMPLE, axis=0), SUPERSAMPLE, axis=1)
        _BODY_CACHE.clear()
        _BODY_CACHE[key] = body
    cv.img[...] = body
    paint_posterior_elements(cv, spec, s, z, lf_out, facet_c)
    paint_disc(cv, spec, s, z, disc_cv, fat0)
    win, alpha = paint_canal(cv, spec, s, z, sac, fat, lf_out)
    # sac measurements from the anti-aliased sac coverage (rootlets lie inside the sac)
    sub_area = cv.sub * cv.sub
    tot = float(alpha.sum())
    cols = cv.pos[win[1]]
    rows = cv.pos[win[0]]
    x_px = float((alpha.sum(axis=0) * cols).sum() / tot)
    y_px = float((alpha.sum(axis=1) * rows).sum() / tot)
    mask = None
    if with_mask:
        full = np.zeros((cv.n, cv.n), dtype=np.float32)
        full[win] = alpha
        mask = full.reshape(matrix, cv.ss, matrix, cv.ss).mean(axis=(1, 3)) >= 0.5
    img = _mri(cv.downsample(), spec, ps, rng)
    truth = SliceTruth(x_px=x_px, y_px=y_px, stage=stage_of(s), severity=s,
                       sac_area_mm2=round(tot * sub_area, 3), pixel_spacing_mm=ps, slice_offset_mm=z,
                       sac_mask=mask)
    return img, truth
