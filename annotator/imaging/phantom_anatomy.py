"""Anatomy of the synthetic L4-5 slice: canal geometry as a function of severity, and the painters.

Local frame (mm): ``u`` lateral, ``v`` antero-posterior (positive = posterior), origin at the canal
centre; see ``phantom_shapes``. ``spec`` is a ``phantom.PatientSpec``; ``s`` the slice's severity in [0, 1]
and ``z`` the slice's offset from the disc centre (mm).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from annotator.imaging import phantom_shapes as sh

if TYPE_CHECKING:
    from annotator.imaging.phantom import PatientSpec

# relative T2 signal (CSF = 1, the brightest tissue)
FAT, EPIDURAL_FAT, MUSCLE, PSOAS = 0.66, 0.74, 0.21, 0.24  # air is 0
CSF, ROOTLET, DURA, LIGAMENT = 1.0, 0.20, 0.30, 0.12
CORTEX, MARROW, JOINT = 0.05, 0.40, 0.52
ANNULUS, NUCLEUS = 0.12, 0.62  # nucleus of a healthy disc; it darkens with degeneration
ARTERY, VEIN, BOWEL = 0.03, 0.16, 0.36


def _smooth(e0: float, e1: float, x: float) -> float:
    t = min(1.0, max(0.0, (x - e0) / (e1 - e0)))
    return t * t * (3 - 2 * t)


def lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


# --- canal geometry ---------------------------------------------------------------------------------------

_AREA_KNOTS = ((0.0, 1.0), (0.4, 0.84), (0.6, 0.62), (0.8, 0.42), (1.0, 0.27))


def area_ratio(s: float) -> float:
    xs, ys = zip(*_AREA_KNOTS, strict=True)
    return float(np.interp(s, xs, ys))


def sac_table(spec: PatientSpec, s: float) -> np.ndarray:
    """Polar radius of the dural sac (mm) at severity s."""
    a = math.sqrt(spec.sac_area0_mm2 / (math.pi * spec.sac_aspect))
    r = sh.ellipse_radius(a, a * spec.sac_aspect)
    w = spec.sac_wobble
    phi = sh.PHI
    r = r * (1 + w[0] * np.cos(2 * phi) + w[1] * np.sin(phi) + w[2] * np.cos(3 * phi) + w[3] * np.sin(2 * phi))
    ant = 0.40 * _smooth(0.05, 1.0, s)
    pl = 0.36 * _smooth(0.15, 1.0, s)
    lf_at = math.radians(lerp(62, 52, s))
    ind = ant * sh.bump(math.pi, 0.55) + pl * ((1 + spec.lf_asymmetry) * sh.bump(lf_at, 0.38)
                                              + (1 - spec.lf_asymmetry) * sh.bump(-lf_at, 0.38))
    r = r * (1 - ind)
    return r * math.sqrt(spec.sac_area0_mm2 * area_ratio(s) / sh.polar_area(r))


def fat_table(spec: PatientSpec, s: float, sac: np.ndarray) -> np.ndarray:
    """Polar radius of the epidural fat envelope around the sac."""
    t_lat = spec.fat_lat_mm * (1 - 0.75 * _smooth(0.15, 0.95, s))
    t_post = spec.fat_post_mm * (1 - _smooth(0.7, 0.92, s))  # gone at the extreme end (Schizas D)
    t_ant = 0.15 + 0.7 * (1 - _smooth(0.15, 0.5, s))
    tent = np.clip(1.0 - np.abs(sh.wrap(sh.PHI)) / 0.8, 0.0, 1.0)  # triangular pad in the flavum V
    t = t_lat + (t_post - t_lat) * tent + (t_ant - t_lat) * sh.bump(math.pi, 0.7)
    return sac + np.maximum(t, 0.0)


def _unit_disc_points(rng: np.random.Generator, n: int, accept, min_d: float) -> np.ndarray:
    """n points in [-1, 1]^2 passing ``accept``, at least ``min_d`` apart (relaxed until n fit)."""
    pts: list[tuple[float, float]] = []
    tries = 0
    while len(pts) < n:
        tries += 1
        if tries % 500 == 0:
            min_d *= 0.85
        p = rng.uniform(-1, 1, 2)
        if not accept(p):
            continue
        if all((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 >= min_d * min_d for q in pts):
            pts.append((float(p[0]), float(p[1])))
    return np.array(pts, dtype=np.float64).reshape(-1, 2)


@lru_cache(maxsize=8)
def rootlet_layout(spec: PatientSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalised (x, y in the unit disc, y posterior) dorsal and spread positions, clump targets, radii."""
    rng = np.random.default_rng([spec.seed, 1])
    n = spec.n_rootlets

    def dorsal(p):
        r = math.hypot(p[0], p[1])
        return 0.35 < r < 0.86 and p[1] > 0.15 + 0.25 * abs(p[0])

    def spread(p):
        return math.hypot(p[0], p[1]) < 0.84

    d = _unit_disc_points(rng, n, dorsal, 0.2)
    sp = _unit_disc_points(rng, len(d), spread, 0.3)
    # the most anterior spread rootlets touch the anterior wall once the anterior CSF is gone
    order = np.argsort(sp[:, 1])
    k = max(2, len(sp) // 5)
    for i in order[:k]:
        x, y = sp[i]
        r = math.hypot(x, y) or 1.0
        sp[i] = (x / r * 0.86, y / r * 0.86)
    centres = np.array([(-0.35, 0.0), (0.35, 0.0), (0.0, 0.4)])[: 2 + int(rng.integers(0, 2))]
    which = np.argmin(((sp[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    clump = centres[which] + 0.35 * (sp - centres[which])
    radii = rng.uniform(0.5, 0.85, len(d))
    return d, sp, clump, radii


# --- rendering --------------------------------------------------------------------------------------------

_TEXTURES: dict[int, tuple[sh.Texture, sh.Texture]] = {}


def _textures(seed: int) -> tuple[sh.Texture, sh.Texture]:
    t = _TEXTURES.get(seed)
    if t is None:
        rng = np.random.default_rng([seed, 3])
        t = (sh.Texture(rng, 5.0), sh.Texture(rng, 1.2, step=0.5))
        if len(_TEXTURES) > 8:
            _TEXTURES.clear()
        _TEXTURES[seed] = t
    return t


def _mirror(p: tuple[float, float], side: int) -> tuple[float, float]:
    return (p[0] * side, p[1])


def paint_body(cv: sh.Canvas, spec: PatientSpec, disc_cv: float, facet_c: tuple[float, float]) -> None:
    """Skin, subcutaneous fat, muscles, retroperitoneum, bowel and iliac vessels."""
    k = spec.body_scale
    coarse, fine = _textures(spec.seed)
    skin = spec.skin_depth_mm
    big_a, big_b = 168.0 * k, 118.0 * k
    bc = skin - big_b
    box = (-big_a, big_a, bc - big_b, skin + 2)
    h = spec.subcut_mm
    back = skin - h  # posterior surface of the paraspinal muscles

    def furrow(base, depth=3.5):
        def d(u, v):
            return base(u, v) + depth * np.exp(-0.5 * (u / (10.0 * k)) ** 2)
        return d

    def septa(field, width):
        """Thin curvy lines along the zero crossings of a smooth random field."""
        return np.exp(-((field / width) ** 2))

    def muscle(scale=1.0):
        def val(u, v):
            f = coarse.smooth(u * 1.6 + 17.0, v * 1.6)
            return MUSCLE * scale * (1 + 0.05 * fine(u, v) + 0.05 * coarse(u * 3, v * 3) + 0.3 * septa(f, 0.12))
        return val

    def fat(scale=1.0, lines=0.0):
        def val(u, v):
            out = FAT * scale * (1 + 0.04 * coarse(u, v))
            if lines:
                out = out * (1 - lines * septa(coarse.smooth(u * 0.9 + 40.0, v * 0.9), 0.07))
            return out
        return val

    # skin, subcutaneous fat
    cv.paint_layers(box, furrow(sh.superellipse3(0, bc, big_a, big_b)), [(0.0, 0.3), (1.6, fat(lines=0.3))])
    # abdominal wall / latissimus layer, then the fat inside it
    cv.paint(box, sh.superellipse3(0, bc, big_a - 1.2 * h - 4, big_b - h), muscle())
    cv.paint(box, sh.superellipse3(0, bc - 3, big_a - 1.2 * h - 10, big_b - h - 4), fat(0.8))
    bowel_c = disc_cv - spec.disc_half_depth_mm - 62 * k
    cv.paint((-170 * k, 170 * k, bowel_c - 90 * k, bowel_c + 60 * k),
             sh.ellipse(0, bowel_c, 150 * k, 52 * k),
             lambda u, v: np.clip(BOWEL + 0.16 * np.tanh(2.2 * (coarse.smooth(u * 1.3, v * 1.3) - 0.25))
                                  - 0.12 * septa(coarse.smooth(u * 1.1 + 90.0, v * 1.1), 0.14)
                                  + 0.03 * fine(u, v), 0.05, 0.8), soft=10.0)
    fu, fv = abs(facet_c[0]), facet_c[1]
    front_m = fv - 6 * k  # anterior edge of the paraspinal muscles, about the transverse processes
    for side in (-1, 1):
        # paraspinal muscles: one mass each side, multifidus and erector spinae split by a fat seam
        pc = (side * 30 * k, 0.5 * (front_m + back))
        pa, pb = 31 * k, 0.5 * (back - front_m)
        pbox = (pc[0] - pa - 2, pc[0] + pa + 2, pc[1] - pb - 2, pc[1] + pb + 2)
        cv.paint_layers(pbox, sh.ellipse(pc[0], pc[1], pa + 1.0, pb + 1.0, angle=-0.08 * side),
                        [(0.0, fat(0.9)), (1.0, muscle())])
        seam = [_mirror((fu + 4 * k, fv + 3), side), _mirror((fu + 7 * k, 0.5 * (fv + back)), side),
                _mirror((fu + 4 * k, back - 0.5), side)]
        cv.paint((side * fu - 20 * k, side * fu + 20 * k, fv, back + 1), sh.polyline(seam, 0.35), fat(0.7),
                 opacity=0.7)
        # quadratus lumborum lateral to the erector, in front of its lateral edge
        qc = _mirror((58 * k, front_m + 2 * k), side)
        qbox = (qc[0] - 20 * k, qc[0] + 20 * k, qc[1] - 14 * k, qc[1] + 14 * k)
        cv.paint(qbox, sh.ellipse(qc[0], qc[1], 13 * k, 6.5 * k, angle=-0.45 * side), muscle())
        # psoas beside the disc
        pc = _mirror((spec.disc_half_width_mm + 14 * k, disc_cv + 5 * k), side)
        box_p = (pc[0] - 26 * k, pc[0] + 26 * k, pc[1] - 26 * k, pc[1] + 26 * k)
        cv.paint(box_p, sh.ellipse(pc[0], pc[1], 19 * k, 16 * k, angle=0.45 * side), muscle(PSOAS / MUSCLE))
    # iliac vessels in front of the disc: arteries are flow voids, veins slow and grey
    front = disc_cv - spec.disc_half_depth_mm
    for side in (-1, 1):
        vc = _mirror((11 * k, front - 4.0 * k), side)
        cv.paint((vc[0] - 12, vc[0] + 12, vc[1] - 8, vc[1] + 8),
                 sh.ellipse(vc[0], vc[1], 8.0 * k, 4.5 * k, angle=0.3 * side), VEIN)
        ac = _mirror((15 * k, front - 12 * k), side)
        cv.paint((ac[0] - 8, ac[0] + 8, ac[1] - 8, ac[1] + 8), sh.ellipse(ac[0], ac[1], 5.2 * k, 5.2 * k), ARTERY)


def facet_centre(spec: PatientSpec, lf_out: np.ndarray) -> tuple[float, float]:
    """Centre of the right inferior articular process (mirror u for the left)."""
    phi = math.radians(spec.facet_angle_deg + 20)  # 55..70 degrees from posterior
    r = float(lf_out[int(phi / sh.TWO_PI * len(lf_out))]) + 4.2 * math.sqrt(spec.body_scale)
    return r * math.sin(phi), r * math.cos(phi)


def paint_posterior_elements(cv: sh.Canvas, spec: PatientSpec, s: float, z: float,
                              lf_out: np.ndarray, facet_c: tuple[float, float]) -> None:
    """Lamina arch, spinous process and the facet joints (inferior process inside the superior's cup)."""
    k = spec.body_scale
    _, fine = _textures(spec.seed)

    def marrow(u, v):
        return MARROW * (1 + 0.12 * fine(u, v))

    hyper = _smooth(0.3, 1.0, s)  # facet hypertrophy
    apex = float(lf_out[0])
    back = spec.skin_depth_mm - spec.subcut_mm
    sk = math.sqrt(k)
    s0 = (0.0, apex + 1.0)
    s1 = (0.0, max(apex + 12.0, back - 5.0))
    r_iap = (5.6 + 0.8 * hyper) * sk
    gap = 0.7
    zs = 0.12 * z  # the joint slides a little from slice to slice
    lam_w = 4.4 * sk
    lam_tab = lf_out + lam_w
    wmask = np.clip((math.radians(80) - np.abs(sh.wrap(sh.PHI))) / math.radians(10), 0, 1)
    lam_outer = np.maximum(lam_tab * wmask, 0.0)
    lamina = sh.subtract(sh.polar(lam_outer), sh.polar(lf_out - 0.5))
    lmax = float(lam_outer.max()) + 1.0
    spinous = sh.union(sh.capsule(s0, (0.0, s0[1] + 0.55 * (s1[1] - s0[1])), 4.6 * sk),
                       sh.capsule(s0, s1, 3.2 * sk))
    parts = [((-lmax, lmax, -3.0, lmax), lamina), ((-6 * sk, 6 * sk, s0[1] - 6, s1[1] + 4), spinous)]
    saps = []
    alpha = math.radians(spec.facet_angle_deg)
    for side in (-1, 1):
        c = (side * facet_c[0], facet_c[1] + zs)
        theta = math.atan2(math.cos(alpha), side * math.sin(alpha))  # long axis along the joint line
        nrm = (side * math.cos(alpha), -math.sin(alpha))  # from the joint towards the superior process
        ia, ib = (7.0 + 0.6 * hyper) * sk, r_iap * 0.78
        iap = sh.ellipse(c[0], c[1], ia, ib, angle=theta)  # inferior articular process (L4)
        parts.append(((c[0] - ia - 1, c[0] + ia + 1, c[1] - ia - 1, c[1] + ia + 1), iap))
        # superior articular process (L5): a curved plate in front of and outside the joint
        sa, sb = (7.8 + 0.8 * hyper) * sk, (2.6 + 0.9 * hyper) * sk
        off = ib + gap + sb * 0.7
        c2 = (c[0] + nrm[0] * off - side * 1.2 * math.sin(alpha), c[1] + nrm[1] * off - 1.2 * math.cos(alpha))
        outer = sh.ellipse(c2[0], c2[1], sa, sb + 1.0, angle=theta)
        saps.append((c2, sa + 2.0, sh.subtract(outer, sh.grow(iap, gap)), outer, iap))
    cv.paint((-3, 3, s1[1], back + 2), sh.capsule(s1, (0.0, back - 1), 1.0), LIGAMENT)  # supraspinous ligament
    cv.paint_union_layers(parts, [(0.0, CORTEX), (0.75, marrow)])
    for c, r, sap, outer, iap in saps:
        sbox = (c[0] - r, c[0] + r, c[1] - r, c[1] + r)
        joint = sh.subtract(sh.grow(iap, gap), iap)
        cv.paint(sbox, sh.intersect(joint, outer), JOINT * (1 - 0.5 * s))
        cv.paint_layers(sbox, sap, [(0.0, CORTEX), (0.75, marrow)])


def _disc_fraction(spec: PatientSpec, z: float):
    """Share of the slab [z - T/2, z + T/2] inside the (tilted) disc, per local point."""
    half_t = spec.slice_thickness_mm / 2
    half_h = spec.disc_height_mm / 2
    tilt = math.tan(math.radians(spec.disc_tilt_deg))

    def f(v):
        shift = v * tilt
        lo = np.maximum(z - half_t, -half_h + shift)
        hi = np.minimum(z + half_t, half_h + shift)
        return np.clip((hi - lo) / (2 * half_t), 0.0, 1.0)

    return f


def paint_disc(cv: sh.Canvas, spec: PatientSpec, s: float, z: float, disc_cv: float, fat0: np.ndarray) -> None:
    coarse, fine = _textures(spec.seed)
    a, b = spec.disc_half_width_mm, spec.disc_half_depth_mm
    frac = _disc_fraction(spec, z)
    # kidney shape: ellipse with a shallow posterior concavity, plus a central part behind it that the canal
    # covers until stenosis uncovers it (the bulge)
    tab = sh.ellipse_radius(a, b) * (1 - 0.08 * sh.bump(0.0, 0.45))
    kidney = sh.polar(tab, 0.0, disc_cv)
    bulge = sh.ellipse(0.0, -0.5 * float(fat0[len(fat0) // 2]), float(fat0[len(fat0) // 4]) * 0.95,
                       float(fat0[len(fat0) // 2]) * 1.1)
    shape = sh.union(kidney, bulge)
    box = (-a - 2, a + 2, disc_cv - b - 2, disc_cv + b + 8)

    def outer(u, v):
        f = frac(v)
        return f * ANNULUS * (1 + 0.1 * fine(u, v)) + (1 - f) * CORTEX

    def inner(u, v):
        f = frac(v)
        return f * ANNULUS * (1 + 0.1 * fine(u, v)) + (1 - f) * MARROW * 1.1 * (1 + 0.1 * coarse(u * 2, v * 2))

    def nucleus(u, v):
        f = frac(v)
        return f * spec.nucleus_signal * (1 + 0.08 * fine(u, v)) + (1 - f) * MARROW * 1.1 * (1 + 0.1 * coarse(u, v))

    cv.paint_layers(box, shape, [(0.0, outer), (1.0, inner)])
    cv.paint(box, sh.ellipse(0.0, disc_cv + 1.0, a * 0.62, b * 0.55), nucleus, soft=3.0)


def paint_canal(cv: sh.Canvas, spec: PatientSpec, s: float, z: float, sac: np.ndarray, fat: np.ndarray,
                 lf_out: np.ndarray) -> tuple[sh.Window, np.ndarray]:
    _, fine = _textures(spec.seed)
    rmax = float(lf_out.max()) + 2
    box = (-rmax, rmax, -rmax, rmax)
    cv.paint(box, sh.polar(lf_out), lambda u, v: LIGAMENT * (1 + 0.15 * fine(u, v)))
    cv.paint(box, sh.polar(fat), lambda u, v: EPIDURAL_FAT * (1 + 0.05 * fine(u, v)))
    csf = lerp(CSF, 0.3, _smooth(0.62, 0.84, s))
    win = cv.window(*box)
    assert win is not None
    u, v = cv.local(win)
    d = sh.polar(sac)(u, v)
    region = cv.img[win]
    a_dura = cv.alpha(d - 0.3)
    region += a_dura * (DURA - region)
    alpha = cv.alpha(d)
    region += alpha * (csf * (1 + 0.03 * fine(u, v)) - region)
    # cauda equina
    dorsal, spread, clump, radii = rootlet_layout(spec)
    lam = _smooth(0.22, 0.42, s)
    kap = _smooth(0.58, 0.8, s)
    pos = dorsal + (spread - dorsal) * lam
    pos = pos + (clump - pos) * kap
    jit = np.random.default_rng([spec.seed, 4, int(round(abs(z) * 100)), int(z < 0)]).normal(0, 0.02, pos.shape)
    pos = pos + jit
    fade = 1.0 - 0.85 * _smooth(0.78, 0.92, s)
    table_n = len(sac)
    for (x, y), rr in zip(pos, radii, strict=True):
        phi = math.atan2(x, y) % sh.TWO_PI
        rho = math.hypot(x, y)
        rs = float(sac[int(phi / sh.TWO_PI * table_n) % table_n])
        rad = rr * (1 + 0.25 * kap)
        pu, pv = rho * rs * math.sin(phi), rho * rs * math.cos(phi)
        cv.paint((pu - 2.5, pu + 2.5, pv - 2.5, pv + 2.5), sh.capsule((pu, pv), (pu, pv), rad),
                 ROOTLET, soft=0.5, opacity=0.9 * fade)
    return win, alpha


def flavum_table(spec: PatientSpec, fat0: np.ndarray) -> np.ndarray:
    """Outer edge of the ligamentum flavum (polar, mm): fixed by the unstenosed canal, so the ligament
    thickens inwards as the canal narrows; none in the anterior sector."""
    w = np.clip((math.radians(112) - np.abs(sh.wrap(sh.PHI))) / math.radians(14), 0.0, 1.0)
    return (fat0 + spec.lf_mm) * w


def disc_centre_v(spec: PatientSpec, fat0: np.ndarray) -> float:
    """v of the disc centre: its posterior margin just reaches the unstenosed anterior epidural fat."""
    return -float(fat0[len(fat0) // 2]) + 0.6 - spec.disc_half_depth_mm * 0.92
