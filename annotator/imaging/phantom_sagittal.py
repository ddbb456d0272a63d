"""The phantom's spine seen from the side and from the front: a simplified sagittal T2 (vertebral bodies
T10..S3, discs with annulus and nucleus, the canal with CSF, cord, conus and cauda equina, epidural fat,
ligamentum flavum, spinous processes, muscles, fat) and a coronal localizer (numpy/scipy only).

Painting happens on a ``phantom_shapes.Canvas`` in a straightened frame: ``u`` antero-posterior (or
lateral on the coronal) from the canal centre line, ``v`` inferior from the L4-L5 disc centre. The sagittal
image is then sheared row by row so the canal follows the patient's lordosis (``SpineLayout.canal_y``);
discs stay horizontal, as the axial stacks that cross them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from annotator.domain.geometry import ImageGeometry
from annotator.imaging import phantom_shapes as sh
from annotator.imaging.phantom import STORED_MAX, PatientSpec
from annotator.imaging.phantom_anatomy import (
    ANNULUS,
    ARTERY,
    BOWEL,
    CORTEX,
    CSF,
    DURA,
    EPIDURAL_FAT,
    FAT,
    LIGAMENT,
    MARROW,
    MUSCLE,
    PSOAS,
    ROOTLET,
    _smooth,
    _textures,
    disc_centre_v,
    fat_table,
    lerp,
    sac_table,
)

VERTEBRAE = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")
DISCS = ("T10-T11", "T11-T12", "T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")  # DISCS[i] below VERTEBRAE[i]
CANAL_LABEL = 100  # label of the CSF-filled canal; disc i is labelled i + 1
_L45 = DISCS.index("L4-L5")


@dataclass(frozen=True, slots=True)
class SpineLayout:
    """Heights along z (patient mm) of the discs and vertebral bodies, and the canal's centre line."""

    canal_x: float
    canal_y45: float  # canal centre y at the L4-L5 disc
    z45: float  # L4-L5 disc centre
    disc_z_mm: tuple[float, ...]  # per DISCS
    disc_heights_mm: tuple[float, ...]  # per DISCS
    body_heights_mm: tuple[float, ...]  # per VERTEBRAE
    nucleus: tuple[float, ...]  # per DISCS (a level with an axial spec uses that spec's nucleus)
    lordosis: float  # posterior shift of the canal, mm per mm^2 from the apex
    apex_z: float
    body_v: float  # antero-posterior offset of the bodies' centre from the canal centre (negative)
    skin_depth_mm: float

    @classmethod
    def draw(cls, rng: np.random.Generator, base: PatientSpec) -> SpineLayout:
        """The spine of the patient whose L4-L5 disc is ``base`` (a ``phantom.PatientSpec``)."""
        u = rng.uniform
        h = [u(4.5, 6.0), u(5.0, 6.5), u(5.5, 7.0), u(6.0, 8.0), u(7.0, 9.5), u(8.0, 11.0), base.disc_height_mm,
             base.disc_height_mm * u(0.7, 0.95)]
        scale = 0.5 + 0.5 * base.body_scale
        heights = [u(21, 24) * scale, u(22, 25) * scale, u(23, 26) * scale] + [u(24, 28) * scale for _ in range(6)]
        z = [0.0] * len(DISCS)
        z[_L45] = base.table_z_mm
        for i in range(_L45 - 1, -1, -1):
            z[i] = z[i + 1] + h[i + 1] / 2 + heights[i + 1] + h[i] / 2
        for i in range(_L45 + 1, len(DISCS)):
            z[i] = z[i - 1] - h[i - 1] / 2 - heights[i] - h[i] / 2
        nucleus = tuple(float(u(0.45, 0.66)) for _ in DISCS)
        sac0 = sac_table(base, 0.0)
        layout = cls(float(base.canal_offset_mm[0]), 20.0 + float(base.canal_offset_mm[1]), float(base.table_z_mm),
                     tuple(z), tuple(h), tuple(heights), nucleus, float(u(0.0012, 0.0024)), 0.0,
                     disc_centre_v(base, fat_table(base, 0.0, sac0)), float(base.skin_depth_mm))
        return replace(layout, apex_z=float(layout.body_centre_z("L3")))

    def disc_z(self, disc: str) -> float:
        return self.disc_z_mm[DISCS.index(disc)]

    def disc_height(self, disc: str) -> float:
        return self.disc_heights_mm[DISCS.index(disc)]

    def body_span_z(self, vertebra: str) -> tuple[float, float]:
        """(top, bottom) z of a vertebral body."""
        j = VERTEBRAE.index(vertebra)
        if j > 0:
            top = self.disc_z_mm[j - 1] - self.disc_heights_mm[j - 1] / 2
        else:
            top = self.disc_z_mm[0] + self.disc_heights_mm[0] / 2 + self.body_heights_mm[0]
        return top, top - self.body_heights_mm[j]

    def body_centre_z(self, vertebra: str) -> float:
        top, bottom = self.body_span_z(vertebra)
        return (top + bottom) / 2

    def canal_y(self, z: float | np.ndarray) -> float | np.ndarray:
        """y of the canal centre line at height z (lordosis: the mid-lumbar spine lies most anterior)."""
        return self.canal_y45 + self.lordosis * ((z - self.apex_z) ** 2 - (self.z45 - self.apex_z) ** 2)

    def body_y(self) -> float:
        return self.canal_y45 + self.body_v

    def sagittal_centre(self, fov_mm: float) -> tuple[float, float]:
        """(y, z) of a sagittal image's centre: the back's skin 22 mm inside the posterior edge."""
        return self.canal_y45 + self.skin_depth_mm + 22.0 - fov_mm / 2, self.z45 + 40.0


@dataclass(frozen=True, slots=True)
class SagittalImage:
    pixels: np.ndarray  # uint16
    labels: np.ndarray | None  # uint8 per pixel: disc i -> i + 1, CANAL_LABEL, else 0 (when asked for)


def _box(cu: float, cv: float, ha: float, hb: float, r: float) -> sh.DistFn:
    """Rounded rectangle of half sizes (ha, hb) around (cu, cv)."""
    def d(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        qx = np.abs(u - cu) - (ha - r)
        qy = np.abs(v - cv) - (hb - r)
        return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - r
    return d


def _band(lo: float, hi: float) -> sh.DistFn:
    """lo < u < hi, every v."""
    def d(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.maximum(lo - u, u - hi) + 0 * v
    return d


def _frame(geo: ImageGeometry, lateral: bool, sp: SpineLayout) -> tuple[float, tuple[float, float], float]:
    """Pixel size, canvas centre (straight frame) and the plane's offset across it."""
    assert geo.pixel_spacing is not None and geo.image_position is not None
    ps = geo.pixel_spacing[0]
    half = (geo.rows - 1) / 2.0 * ps
    p = geo.image_position
    z_c = p[2] - half
    if lateral:  # coronal: columns along +x, the plane at a fixed y
        return ps, (sp.canal_x - (p[0] + half), z_c - sp.z45), p[1]
    return ps, (sp.canal_y45 - (p[1] + half), z_c - sp.z45), p[0]


def _scanner(signal: np.ndarray, spec: PatientSpec, bias: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    level = 3000.0 * spec.gain
    img = gaussian_filter(signal, 0.45) * bias * level
    sd = spec.noise_rel * level
    re = img + sd * rng.standard_normal(img.shape, dtype=np.float32)
    im = sd * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(np.rint(np.sqrt(re * re + im * im)), 0, STORED_MAX).astype(np.uint16)


def _scaled(texture: sh.Texture, level: float, amount: float) -> sh.ValueFn:
    return lambda u, v: level * (1 + amount * texture(u, v))


def _muscle(coarse: sh.Texture, fine: sh.Texture, scale: float = 1.0) -> sh.ValueFn:
    return lambda u, v: MUSCLE * scale * (1 + 0.06 * fine(u, v) + 0.06 * coarse(u * 3, v * 3))


def _paint_column(cv: sh.Canvas, spec: PatientSpec, sp: SpineLayout, half_u: float, centre_u: float,
                  levels: Mapping[str, PatientSpec], bulges: dict[int, float], tilt: float) -> None:
    """Vertebral bodies (cortex, marrow), the sacrum below S1, and the discs (annulus, nucleus)."""
    coarse, fine = _textures(spec.seed)

    def marrow(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return MARROW * (1 + 0.12 * coarse(u * 2, v * 2) + 0.05 * fine(u, v))

    w = 2 * half_u + 10
    for name in VERTEBRAE:
        top, bottom = sp.body_span_z(name)
        vt, vb = sp.z45 - top, sp.z45 - bottom
        parts = [(vt, vb, 0.0)]
        if name == "S1":  # fused sacral segments, smaller and tilting back
            hgt = vb - vt
            parts += [(vb + 1.5, vb + 1.5 + 0.8 * hgt, 5.0), (vb + 3 + 0.8 * hgt, vb + 3 + 1.4 * hgt, 11.0)]
        for a, b, back in parts:
            scale = 1.0 - back / 30.0
            cu = centre_u + back * tilt
            box = (cu - w, cu + w, a - 3, b + 3)
            cv.paint_layers(box, _box(cu, (a + b) / 2, half_u * scale, (b - a) / 2, 2.5),
                            [(0.0, CORTEX), (1.1, marrow)])
    for i, name in enumerate(DISCS):
        vc, hh = sp.z45 - sp.disc_z_mm[i], sp.disc_heights_mm[i] / 2
        bulge = bulges.get(i, 0.0)
        box = (centre_u - w, centre_u + w + bulge, vc - hh - 2, vc + hh + 2)
        cv.paint(box, _box(centre_u + bulge / 2, vc, half_u + bulge / 2, hh, 1.2),
                 lambda u, v: ANNULUS * (1 + 0.1 * fine(u, v)))
        lv = levels.get(name)
        nuc = sp.nucleus[i] if lv is None else lv.nucleus_signal
        cv.paint(box, sh.ellipse(centre_u + 1.0, vc, half_u * 0.62, max(hh * 0.55, 1.0)), _scaled(fine, nuc, 0.08),
                 soft=2.0)


@lru_cache(maxsize=4)
def _canal_radii(spec: PatientSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anterior and posterior sac radius (mm) over severity knots."""
    knots = np.linspace(0.0, 1.0, 11)
    tabs = [sac_table(spec, float(s)) for s in knots]
    n = len(tabs[0])
    return knots, np.array([t[n // 2] for t in tabs]), np.array([t[0] for t in tabs])


def render_sagittal(levels: Mapping[str, PatientSpec], sp: SpineLayout, geo: ImageGeometry, rng: np.random.Generator,
                    with_labels: bool = False) -> SagittalImage:
    """A sagittal T2 image on the plane ``geo`` (orientation [0,1,0,0,0,-1]); ``levels`` maps the axial
    levels (``"L4-L5"`` at least) to their ``phantom.PatientSpec``."""
    spec = levels["L4-L5"]
    ps, centre, x_plane = _frame(geo, False, sp)
    m = geo.rows
    k = spec.body_scale
    coarse, fine = _textures(spec.seed)
    knots, r_ant, r_post = _canal_radii(spec)
    lat = float(sac_table(spec, 0.0)[sh.POLAR_SAMPLES // 4])
    dx = x_plane - sp.canal_x
    f = math.sqrt(max(0.0, 1.0 - (dx / (lat + 0.5)) ** 2))
    ra0, rp0 = float(r_ant[0]), float(r_post[0])
    # severity along the canal: worst at each graded disc, easing within a few mm
    disc_v = {i: sp.z45 - sp.disc_z_mm[i] for i in range(len(DISCS))}
    graded = [(disc_v[DISCS.index(n)], float(s.severity), sp.disc_heights_mm[DISCS.index(n)] / 2 + 3.0)
              for n, s in levels.items()]

    def sev(v: np.ndarray) -> np.ndarray:
        out = np.zeros_like(v, dtype=np.float64)
        for vc, s, w in graded:
            out = np.maximum(out, s * np.exp(-(((v - vc) / w) ** 2)))
        return out

    cv = sh.Canvas(m, ps, centre, 0.0, 1)

    def marrow(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return MARROW * (1 + 0.12 * coarse(u * 2, v * 2))

    v_top, v_bot = float(cv.ys[0]) - 2, float(cv.ys[-1]) + 2
    s1_top, s1_bottom = sp.body_span_z("S1")
    v_end = sp.z45 - s1_bottom + 12.0  # the thecal sac ends at S2
    v_conus = disc_v[DISCS.index("L1-L2")] - 4.0
    skin, subcut = spec.skin_depth_mm, spec.subcut_mm
    front = skin - 236 * k
    hd = spec.disc_half_depth_mm
    fat_post, lf = spec.fat_post_mm, spec.lf_mm
    full_v = (v_top, v_bot)
    # trunk: skin and subcutaneous fat, abdominal wall, abdomen, back muscles
    cv.paint_layers((front - 2, skin + 2, *full_v), _band(front, skin),
                    [(0.0, 0.3), (1.6, lambda u, v: FAT * (1 + 0.04 * coarse(u, v)))])
    cv.paint((front + 8, front + 24, *full_v), _band(front + 0.5 * subcut + 4, front + 0.5 * subcut + 14),
             _muscle(coarse, fine))
    cv.paint((front + 10, sp.body_v - hd, *full_v), _band(front + 0.5 * subcut + 14, sp.body_v - hd - 2),
             lambda u, v: np.clip(BOWEL + 0.09 * np.tanh(2.2 * (coarse.smooth(u * 1.3, v * 1.3) - 0.25))
                                  + 0.03 * fine(u, v), 0.05, 0.8), soft=6.0)
    cv.paint((rp0, skin, *full_v), _band(rp0 + fat_post + lf, skin - subcut), _muscle(coarse, fine))
    # aorta in front of the bodies down to its bifurcation at L4
    v_bif = sp.z45 - sp.body_centre_z("L4")
    ao = sp.body_v - hd - 3
    cv.paint((ao - 24 * k, ao, v_top, v_bif + 2), _box(ao - 11 * k, (v_top + v_bif) / 2 - 5, 9 * k,
                                                        (v_bif - v_top) / 2 + 5, 4.0), ARTERY)
    s_disc = {i: float(sev(np.array([v]))[0]) for i, v in disc_v.items()}
    bulges = {i: 0.8 * (ra0 - float(np.interp(s, knots, r_ant))) for i, s in s_disc.items() if s > 0.05}
    _paint_column(cv, spec, sp, hd, sp.body_v, levels, bulges, tilt=1.0)
    # posterior: epidural fat, laminae and spinous processes, ligamentum flavum at each disc
    cv.paint((-1, rp0 + fat_post + 1, v_top, v_end + 10), _band(0.0, rp0 + fat_post),
             lambda u, v: EPIDURAL_FAT * (1 + 0.05 * fine(u, v)))
    spinous = float(np.clip(1.0 - (abs(dx) - 3.0) / 4.0, 0.0, 1.0))
    root = rp0 + fat_post + 1.0
    for name in VERTEBRAE[:-1]:
        top, bottom = sp.body_span_z(name)
        vt, hgt = sp.z45 - top, top - bottom
        p0, p1 = (root + 4, vt + 0.3 * hgt), (root + 30 * k, vt + 0.6 * hgt)
        box = (root - 8, root + 48 * k, vt - 4, vt + hgt + 8)
        cv.paint_layers(box, sh.capsule((root + 1, vt + 0.15 * hgt), (root + 3, vt + 0.7 * hgt), 3.5),
                        [(0.0, CORTEX), (1.0, MARROW)])
        if spinous > 0:
            cv.paint(box, sh.capsule(p0, p1, 0.27 * hgt), CORTEX, opacity=spinous)
            cv.paint(box, sh.capsule(p0, p1, 0.27 * hgt - 1.2), marrow, opacity=spinous)
    for i, vc in disc_v.items():
        inner = float(np.interp(s_disc[i], knots, r_post)) * f + 0.3
        outer = rp0 + fat_post + lf
        cv.paint((inner - 2, outer + 2, vc - 10, vc + 8), sh.ellipse((inner + outer) / 2, vc - 1.0,
                                                                     (outer - inner) / 2, 7.0),
                 lambda u, v: LIGAMENT * (1 + 0.15 * fine(u, v)))
    # the canal: dura, CSF (greying where stenosis is severe), cord down to the conus, cauda equina
    if f > 0:
        vs = np.asarray(cv.ys, dtype=np.float64)
        s_rows = sev(vs)
        ra_rows = np.interp(s_rows, knots, r_ant) * f
        rp_rows = np.interp(s_rows, knots, r_post) * f
        csf_rows = np.array([lerp(CSF, 0.3, _smooth(0.62, 0.84, float(s))) for s in s_rows], dtype=np.float32)

        def canal(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            idx = np.clip(np.rint((v[:, 0] - vs[0]) / (vs[1] - vs[0])).astype(int), 0, len(vs) - 1)[:, None]
            return np.maximum(np.maximum(-ra_rows[idx] - u, u - rp_rows[idx]), v - v_end)

        def csf(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            idx = np.clip(np.rint((v[:, 0] - vs[0]) / (vs[1] - vs[0])).astype(int), 0, len(vs) - 1)[:, None]
            return csf_rows[idx] * (1 + 0.03 * fine(u, v))

        box = (-ra0 - 1, rp0 + 1, v_top, v_end + 2)
        cv.paint(box, lambda u, v: canal(u, v) - 0.4, DURA)
        cv.paint(box, canal, csf)
        mid = (rp0 - ra0) / 2
        if abs(dx) < 4.5:
            cord_r = 4.2 * math.sqrt(max(0.0, 1 - (dx / 4.5) ** 2))
            cv.paint((mid - 6, mid + 6, v_top, v_conus + 2), sh.union(
                sh.capsule((mid, v_top - 10), (mid, v_conus - 10), cord_r),
                sh.capsule((mid, v_conus - 10), (mid + 0.5, v_conus), cord_r * 0.45)), 0.34, soft=0.8)
        for j in range(3):
            uu = mid + (0.1 + 0.25 * j) * rp0
            cv.paint((uu - 3, uu + 3, v_conus - 2, v_end), sh.capsule((mid + 0.5, v_conus), (uu, v_end - 4), 0.6),
                     ROOTLET, soft=0.6, opacity=0.45 * f)
    signal = cv.downsample()
    # shear each row to the lordotic canal line, then the coil bias (brighter posteriorly) and noise
    rows = np.arange(m, dtype=np.float64)
    z_rows = sp.z45 - (rows - (m - 1) / 2.0) * ps + centre[1]
    shift_px = (np.asarray(sp.canal_y(z_rows)) - sp.canal_y45) / ps
    rr, cc = np.meshgrid(rows, np.arange(m, dtype=np.float64), indexing="ij")
    coords = np.array([rr, cc - shift_px[:, None]])
    signal = map_coordinates(signal, coords, order=1, mode="nearest").astype(np.float32)
    u_px = (cc - (m - 1) / 2.0) * ps - centre[0] - shift_px[:, None] * ps
    bias = (0.62 + spec.bias_strength * np.exp(-np.maximum(skin - u_px, 0.0) / 85.0))
    labels = None
    if with_labels:
        v_px = rr * ps - (m - 1) / 2.0 * ps - centre[1]
        lab = np.zeros((m, m), dtype=np.uint8)
        for i, vc in disc_v.items():
            hh = sp.disc_heights_mm[i] / 2
            lab[(np.abs(v_px - vc) <= hh) & (np.abs(u_px - sp.body_v) <= hd)] = i + 1
        if f > 0:
            s_px = sev(v_px)
            inside = ((u_px >= -np.interp(s_px, knots, r_ant) * f) & (u_px <= np.interp(s_px, knots, r_post) * f)
                      & (v_px <= v_end))
            lab[inside] = CANAL_LABEL
        labels = lab
    return SagittalImage(_scanner(signal, spec, bias.astype(np.float32), rng), labels)


def render_coronal(spec: PatientSpec, sp: SpineLayout, geo: ImageGeometry, rng: np.random.Generator) -> np.ndarray:
    """A coronal localizer through the vertebral bodies (orientation [1,0,0,0,0,-1])."""
    ps, centre, _ = _frame(geo, True, sp)
    m = geo.rows
    k = spec.body_scale
    coarse, fine = _textures(spec.seed)
    cv = sh.Canvas(m, ps, centre, 0.0, 1)
    full_v = (float(cv.ys[0]) - 2, float(cv.ys[-1]) + 2)
    a = 168.0 * k * 0.92

    def lateral(half: float) -> sh.DistFn:
        return lambda u, v: np.abs(u) - half + 0 * v

    cv.paint_layers((-a - 2, a + 2, *full_v), lateral(a), [(0.0, 0.3), (1.6, FAT)])
    cv.paint((-a, a, *full_v), lateral(a - spec.subcut_mm), _muscle(coarse, fine))
    cv.paint((-a, a, *full_v), lateral(a - spec.subcut_mm - 12), lambda u, v: np.clip(
        BOWEL + 0.09 * np.tanh(2.2 * (coarse.smooth(u * 1.3, v * 1.3) - 0.25)), 0.05, 0.8), soft=6.0)
    hw = spec.disc_half_width_mm
    v12 = sp.z45 - sp.disc_z("L1-L2")
    v_l5 = sp.z45 - sp.body_centre_z("L5")
    for side in (-1, 1):
        kc = side * (hw + 48 * k)
        cv.paint((kc - 40, kc + 40, v12 - 70, v12 + 70), sh.ellipse(kc, v12 - 5, 26 * k, 55 * k, 0.25 * side), 0.5)
        top, bottom = (side * hw * 0.5, v12 - 20), (side * (hw + 28 * k), v_l5 + 45)
        cv.paint((min(top[0], bottom[0]) - 25, max(top[0], bottom[0]) + 25, v12 - 30, v_l5 + 70),
                 sh.capsule(top, bottom, 13 * k), _muscle(coarse, fine, PSOAS / MUSCLE))
        wing = sh.capsule((side * (hw + 25), v_l5 + 5), (side * (hw + 95 * k), v_l5 - 35), 8.0)
        cv.paint_layers((-200, 200, v_l5 - 60, v_l5 + 30), wing, [(0.0, CORTEX), (1.5, MARROW)])
    _paint_column(cv, spec, sp, hw, 0.0, {}, {}, tilt=0.0)
    signal = cv.downsample()
    return _scanner(signal, spec, np.full(signal.shape, 0.62 + 0.5 * spec.bias_strength, np.float32), rng)
