"""Vectorised drawing helpers for the synthetic phantom (numpy only).

Shapes are approximate signed distances in mm (negative inside), evaluated on a supersampled grid in the
patient's *local* anatomical frame: ``u`` lateral (towards the image's column direction when the anatomy
is not rotated), ``v`` antero-posterior (positive = posterior, i.e. towards higher rows), origin at the
canal centre. A :class:`Canvas` maps its subpixels to that frame (translation + in-plane rotation) and
paints layer over layer with an anti-aliased alpha, so partial volume comes from supersampling plus soft
edges. Every paint touches only the window that bounds its shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Array = np.ndarray
DistFn = Callable[[Array, Array], Array]
ValueFn = Callable[[Array, Array], Array]
Window = tuple[slice, slice]

TWO_PI = 2.0 * math.pi
POLAR_SAMPLES = 720


class Canvas:
    """Supersampled image; pixel (0, 0) centre at output-pixel coordinate (0, 0)."""

    def __init__(self, matrix: int, pixel_mm: float, centre_mm: tuple[float, float], rotation_rad: float,
                 supersample: int = 2) -> None:
        self.matrix = matrix
        self.ss = supersample
        self.n = matrix * supersample
        self.sub = pixel_mm / supersample
        # subpixel centres in output-pixel units, then mm relative to the canal centre
        pos = (np.arange(self.n, dtype=np.float64) + 0.5) / supersample - 0.5
        mm = (pos - (matrix - 1) / 2.0) * pixel_mm
        self.pos = pos
        self.xs = (mm - centre_mm[0]).astype(np.float32)
        self.ys = (mm - centre_mm[1]).astype(np.float32)
        self.cos = float(math.cos(rotation_rad))
        self.sin = float(math.sin(rotation_rad))
        self.img = np.zeros((self.n, self.n), dtype=np.float32)

    def window(self, u0: float, u1: float, v0: float, v1: float) -> Window | None:
        """Rows/columns covering the local-frame box [u0,u1] x [v0,v1] (after rotation)."""
        c, s = self.cos, self.sin
        xs = [c * u - s * v for u in (u0, u1) for v in (v0, v1)]
        ys = [s * u + c * v for u in (u0, u1) for v in (v0, v1)]
        x0 = float(self.xs[0])
        y0 = float(self.ys[0])
        c0 = max(0, int(math.floor((min(xs) - x0) / self.sub)) - 1)
        c1 = min(self.n, int(math.ceil((max(xs) - x0) / self.sub)) + 2)
        r0 = max(0, int(math.floor((min(ys) - y0) / self.sub)) - 1)
        r1 = min(self.n, int(math.ceil((max(ys) - y0) / self.sub)) + 2)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def full(self) -> Window:
        return slice(0, self.n), slice(0, self.n)

    def local(self, win: Window) -> tuple[Array, Array]:
        x = self.xs[win[1]][None, :]
        y = self.ys[win[0]][:, None]
        u = self.cos * x + self.sin * y
        v = -self.sin * x + self.cos * y
        return u, v

    def alpha(self, d: Array, soft: float = 0.0) -> Array:
        w = max(self.sub, soft)
        return np.clip(0.5 - d / w, 0.0, 1.0)

    def paint(self, box: tuple[float, float, float, float], dist: DistFn, value: float | ValueFn,
              soft: float = 0.0, opacity: float = 1.0) -> tuple[Window, Array] | None:
        """Blend ``value`` into the shape ``dist`` < 0; returns the window and the alpha used."""
        win = self.window(*box)
        if win is None:
            return None
        u, v = self.local(win)
        a = self.alpha(dist(u, v), soft)
        if opacity != 1.0:
            a = a * opacity
        val = value(u, v) if callable(value) else value
        region = self.img[win]
        region += a * (val - region)
        return win, a

    def paint_layers(self, box: tuple[float, float, float, float], dist: DistFn,
                     layers: list[tuple[float, float | ValueFn]], soft: float = 0.0) -> None:
        """Paint nested layers of one shape, each ``(inset_mm, value)``, computing the distance once."""
        win = self.window(*box)
        if win is None:
            return
        u, v = self.local(win)
        d = dist(u, v)
        region = self.img[win]
        for inset, value in layers:
            a = self.alpha(d + inset, soft)
            val = value(u, v) if callable(value) else value
            region += a * (val - region)

    def paint_union_layers(self, parts: list[tuple[tuple[float, float, float, float], DistFn]],
                           layers: list[tuple[float, float | ValueFn]]) -> None:
        """Like ``paint_layers`` for the union of several shapes, each evaluated only in its own box:
        every layer goes onto all parts before the next layer, so no seams appear where parts overlap."""
        evaluated = []
        for box, dist in parts:
            win = self.window(*box)
            if win is not None:
                u, v = self.local(win)
                evaluated.append((win, u, v, dist(u, v)))
        for inset, value in layers:
            for win, u, v, d in evaluated:
                a = self.alpha(d + inset)
                val = value(u, v) if callable(value) else value
                region = self.img[win]
                region += a * (val - region)

    def downsample(self) -> Array:
        s = self.ss
        return self.img.reshape(self.matrix, s, self.matrix, s).mean(axis=(1, 3))


# --- signed distances (mm, negative inside) -------------------------------------------------------------

def ellipse(cu: float, cv: float, a: float, b: float, angle: float = 0.0) -> DistFn:
    ca, sa = math.cos(angle), math.sin(angle)

    def d(u: Array, v: Array) -> Array:
        x = u - cu
        y = v - cv
        if angle:
            x, y = ca * x + sa * y, -sa * x + ca * y
        f = (x / a) ** 2 + (y / b) ** 2 - 1.0
        g = 2.0 * np.sqrt((x / (a * a)) ** 2 + (y / (b * b)) ** 2)
        return f / np.maximum(g, 1e-6)

    return d


def capsule(p0: tuple[float, float], p1: tuple[float, float], r: float) -> DistFn:
    du, dv = p1[0] - p0[0], p1[1] - p0[1]
    ll = du * du + dv * dv or 1e-9

    def d(u: Array, v: Array) -> Array:
        pu = u - p0[0]
        pv = v - p0[1]
        t = np.clip((pu * du + pv * dv) / ll, 0.0, 1.0)
        return np.sqrt((pu - t * du) ** 2 + (pv - t * dv) ** 2) - r

    return d


def polar(table: Array, cu: float = 0.0, cv: float = 0.0) -> DistFn:
    """Star-shaped region around (cu, cv); ``table`` holds its radius at POLAR_SAMPLES angles phi in
    [0, 2 pi), phi = 0 pointing posterior (+v), increasing towards +u."""
    n = len(table)
    tab = np.append(table, table[0]).astype(np.float32)
    scale = n / TWO_PI

    def d(u: Array, v: Array) -> Array:
        x = u - cu
        y = v - cv
        phi = np.arctan2(x, y) % TWO_PI
        f = phi * scale
        i = f.astype(np.int32)
        w = f - i
        r = tab[i] * (1 - w) + tab[np.minimum(i + 1, n)] * w
        return np.sqrt(x * x + y * y) - r

    return d


def superellipse3(cu: float, cv: float, a: float, b: float) -> DistFn:
    """|x/a|^3 + |y/b|^3 < 1: an ellipse with flatter sides (a trunk in cross-section)."""

    def d(u: Array, v: Array) -> Array:
        x = np.abs(u - cu) * (1.0 / a) + 1e-6
        y = np.abs(v - cv) * (1.0 / b) + 1e-6
        x2 = x * x
        y2 = y * y
        rho = np.cbrt(x2 * x + y2 * y)
        # |grad rho| = rho^-2 * sqrt((x^2/a)^2 + (y^2/b)^2)
        g = np.sqrt((x2 * (1.0 / a)) ** 2 + (y2 * (1.0 / b)) ** 2) / (rho * rho)
        return (rho - 1.0) / np.maximum(g, 1e-6)

    return d


def polyline(points: list[tuple[float, float]], r: float) -> DistFn:
    caps = [capsule(points[i], points[i + 1], r) for i in range(len(points) - 1)]
    return union(*caps)


def union(*fs: DistFn) -> DistFn:
    def d(u: Array, v: Array) -> Array:
        out = fs[0](u, v)
        for f in fs[1:]:
            out = np.minimum(out, f(u, v))
        return out

    return d


def intersect(a: DistFn, b: DistFn) -> DistFn:
    def d(u: Array, v: Array) -> Array:
        return np.maximum(a(u, v), b(u, v))

    return d


def subtract(a: DistFn, b: DistFn) -> DistFn:
    def d(u: Array, v: Array) -> Array:
        return np.maximum(a(u, v), -b(u, v))

    return d


def grow(f: DistFn, mm: float) -> DistFn:
    def d(u: Array, v: Array) -> Array:
        return f(u, v) - mm

    return d


# --- polar profiles ------------------------------------------------------------------------------------

PHI = np.linspace(0.0, TWO_PI, POLAR_SAMPLES, endpoint=False)


def wrap(delta: Array) -> Array:
    return (delta + math.pi) % TWO_PI - math.pi


def bump(centre: float, width: float) -> Array:
    """Gaussian bump over PHI (periodic), 1 at ``centre``."""
    return np.exp(-0.5 * (wrap(PHI - centre) / width) ** 2)


def ellipse_radius(a: float, b: float) -> Array:
    """Radius over PHI of an ellipse with half-width a (along u) and half-depth b (along v)."""
    return a * b / np.sqrt((b * np.sin(PHI)) ** 2 + (a * np.cos(PHI)) ** 2)


def polar_area(table: Array) -> float:
    return float(0.5 * np.sum(table.astype(np.float64) ** 2) * (TWO_PI / len(table)))


# --- smooth random fields --------------------------------------------------------------------------------

class Texture:
    """A smooth periodic random field (256 x 256 lattice of ``step`` mm) in the local frame, sampled at the
    nearest lattice point; it tiles without seams."""

    SIZE = 256

    def __init__(self, rng: np.random.Generator, sigma_mm: float, step: float = 1.0) -> None:
        from scipy.ndimage import gaussian_filter

        n = self.SIZE
        field = gaussian_filter(rng.standard_normal((n, n)), sigma_mm / step, mode="wrap")
        field /= field.std() or 1.0
        self.field = field.astype(np.float32)
        self.inv = np.float32(1.0 / step)

    def __call__(self, u: Array, v: Array) -> Array:
        mask = self.SIZE - 1
        iu = (u * self.inv).astype(np.int32) & mask
        iv = (v * self.inv).astype(np.int32) & mask
        return self.field[iv, iu]

    def smooth(self, u: Array, v: Array) -> Array:
        """Bilinear sample (for thin features drawn from the field, such as septa)."""
        mask = self.SIZE - 1
        fu = u * self.inv
        fv = v * self.inv
        u0 = np.floor(fu)
        v0 = np.floor(fv)
        wu = (fu - u0).astype(np.float32)
        wv = (fv - v0).astype(np.float32)
        iu = u0.astype(np.int32) & mask
        iv = v0.astype(np.int32) & mask
        iu1 = (iu + 1) & mask
        iv1 = (iv + 1) & mask
        f = self.field
        top = f[iv, iu] * (1 - wu) + f[iv, iu1] * wu
        bot = f[iv1, iu] * (1 - wu) + f[iv1, iu1] * wu
        return top * (1 - wv) + bot * wv
