"""Draw docs/phantom.png: a few phantom slices per stage, windowed like a viewer, labelled.

Usage: python benchmarks/phantom_grid.py [--out docs/phantom.png] [--per-stage 2] [--seed 7] [--matrix 320]
Needs PySide6 (for the PNG and the labels); the phantom itself needs only numpy/scipy.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from annotator.imaging.phantom import N_STAGES, STAGE_THRESHOLDS, draw_patient, render_slice

STAGE_NAMES = (
    "Lee 0 / Schizas A\nnone: anterior CSF visible, rootlets lie dorsally",
    "Lee 1 / ~Schizas B\nmild: anterior CSF obliterated, rootlets fill the sac, all separable",
    "Lee 2 / ~Schizas B-C\nmoderate: rootlets aggregate, CSF fades (grainy)",
    "Lee 3 / ~Schizas C-D\nsevere: one grey bundle, no CSF; posterior fat gone at the extreme",
)


def pick_patients(seed: int, per_stage: int) -> dict[int, list]:
    """Draw patients until each stage has ``per_stage`` typical ones (severity in the middle of the stage)."""
    rng = np.random.default_rng(seed)
    edges = (0.0, *STAGE_THRESHOLDS, 1.0)
    found: dict[int, list] = {k: [] for k in range(N_STAGES)}
    i = 0
    while any(len(v) < per_stage for v in found.values()):
        spec = draw_patient(rng, (0.25, 0.25, 0.25, 0.25), index=i)
        i += 1
        lo, hi = edges[spec.stage], edges[spec.stage + 1]
        typical = lo + 0.2 * (hi - lo) <= spec.severity <= lo + 0.8 * (hi - lo)
        if typical and len(found[spec.stage]) < per_stage:
            found[spec.stage].append(spec)
    return found


def window(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [1.0, 99.7])
    return (np.clip((img - lo) / max(hi - lo, 1.0), 0, 1) * 255).astype(np.uint8)


def _to_qimage(tile: np.ndarray):
    from PySide6.QtGui import QImage

    buf = np.ascontiguousarray(tile)
    return QImage(buf.data, buf.shape[1], buf.shape[0], buf.strides[0], QImage.Format.Format_Grayscale8).copy()


ACCENT = (255, 200, 60)


def to_palette(img):
    """8-bit palette PNG: 240 greys plus 16 shades of the accent colour (a tenth of the RGB size)."""
    from PySide6.QtGui import QImage

    w, h = img.width(), img.height()
    rgb = img.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(rgb.constBits(), np.uint8).reshape(h, rgb.bytesPerLine())[:, : 3 * w].reshape(h, w, 3)
    arr = arr.astype(np.int32)
    grey = np.rint(arr.mean(axis=2) * 239 / 255).astype(np.uint8)
    shades = np.array([[round(c * (k + 1) / 16) for c in ACCENT] for k in range(16)], dtype=np.int32)
    coloured = (arr.max(axis=2) - arr.min(axis=2)) > 12
    near = np.argmin(((arr[coloured][:, None, :] - shades[None]) ** 2).sum(-1), axis=1)
    index = grey.copy()
    index[coloured] = 240 + near.astype(np.uint8)
    index = np.ascontiguousarray(index)
    out = QImage(index.data, w, h, w, QImage.Format.Format_Indexed8).copy()
    table = [0xFF000000 | (g << 16) | (g << 8) | g for g in (round(i * 255 / 239) for i in range(240))]
    table += [0xFF000000 | (int(r) << 16) | (int(g) << 8) | int(b) for r, g, b in shades]
    out.setColorTable(table)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="docs/phantom.png")
    ap.add_argument("--per-stage", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--matrix", type=int, default=320)
    ap.add_argument("--zoom-mm", type=float, default=56.0, help="field of the canal close-up beside each slice")
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QRect, Qt
    from PySide6.QtGui import QColor, QFont, QFontMetrics, QGuiApplication, QImage, QPainter, QPen

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - fonts need it
    found = pick_patients(args.seed, args.per_stage)
    side = args.matrix
    label_w, gap, head = 230, 6, 30
    w = label_w + args.per_stage * (2 * side + 3 * gap)
    h = head + N_STAGES * (side + gap) + 4
    canvas = QImage(w, h, QImage.Format.Format_RGB32)
    canvas.fill(QColor(20, 20, 20))
    p = QPainter(canvas)
    p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    big, small, mid = QFont(), QFont(), QFont()
    big.setPixelSize(16)
    mid.setPixelSize(13)
    small.setPixelSize(12)
    p.setFont(big)
    p.setPen(QPen(QColor(235, 235, 235)))
    p.drawText(QRect(8, 4, w - 16, head - 6), Qt.AlignmentFlag.AlignVCenter,
               "Synthetic axial T2 at L4-5 (annotator.imaging.phantom): each slice, then its canal close-up "
               f"({args.zoom_mm:.0f} mm); + marks the truth canal centre")
    for r in range(N_STAGES):
        y = head + r * (side + gap)
        p.setFont(big)
        p.setPen(QPen(QColor(235, 235, 235)))
        title, text = STAGE_NAMES[r].split("\n")
        p.drawText(QRect(8, y + side // 2 - 60, label_w - 16, 44), Qt.AlignmentFlag.AlignBottom,
                   f"Stage {r}\n{title}")
        p.setFont(mid)
        p.setPen(QPen(QColor(195, 195, 195)))
        p.drawText(QRect(8, y + side // 2 - 10, label_w - 16, 100),
                   Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap, text)
        for c, spec in enumerate(found[r]):
            img, truth = render_slice(spec, 0.0, matrix=args.matrix)
            x = label_w + c * (2 * side + 3 * gap)
            p.drawImage(x, y, _to_qimage(window(img)))
            # close-up around the truth centre, windowed on the full slice
            half = args.zoom_mm / truth.pixel_spacing_mm / 2
            lo, hi = np.percentile(img, [1.0, 99.7])
            full = (np.clip((img - lo) / max(hi - lo, 1.0), 0, 1) * 255).astype(np.uint8)
            src = QRect(int(round(truth.x_px - half)), int(round(truth.y_px - half)), int(2 * half), int(2 * half))
            zoom = _to_qimage(full).copy(src).scaled(side, side, Qt.AspectRatioMode.IgnoreAspectRatio,
                                                      Qt.TransformationMode.SmoothTransformation)
            p.drawImage(x + side + gap, y, zoom)
            p.setPen(QPen(QColor(*ACCENT), 1.5))
            cx = x + side + gap + (truth.x_px - src.x() + 0.5) * side / src.width()
            cy = y + (truth.y_px - src.y() + 0.5) * side / src.height()
            p.drawLine(int(cx - 6), int(cy), int(cx + 6), int(cy))
            p.drawLine(int(cx), int(cy - 6), int(cx), int(cy + 6))
            p.setFont(small)
            caption = f"sac {truth.sac_area_mm2:.0f} mm², severity {truth.severity:.2f}"
            p.fillRect(QRect(x, y + side - 22, QFontMetrics(small).horizontalAdvance(caption) + 12, 22),
                       QColor(0, 0, 0, 170))
            p.drawText(x + 6, y + side - 7, caption)
    p.end()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not to_palette(canvas).save(str(out), "PNG", 9):
        raise SystemExit(f"could not write {out}")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
