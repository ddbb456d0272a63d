"""Draw docs/phantom-exam.png: one demo patient's mid-sagittal T2 with its three axial T2 stacks drawn where
their ImagePositionPatient puts them, and the middle slice of each stack beside it.

Usage: python benchmarks/phantom_exam_figure.py [--out docs/phantom-exam.png] [--seed 106]
Needs PySide6 (for the PNG and the labels); the phantom itself needs only numpy/scipy.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phantom_grid import ACCENT, _to_qimage, to_palette, window  # noqa: E402

from annotator.imaging.phantom_exam import AXIAL_LEVELS, SAGITTAL, SAGITTAL_SLICES, draw_exam, exam_images  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="docs/phantom-exam.png")
    ap.add_argument("--seed", type=int, default=106, help="patient stream (106: severe L4-L5, mild L3-L4)")
    ap.add_argument("--matrix", type=int, default=320)
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QPointF, QRect, Qt
    from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QPainter, QPen

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - fonts need it
    ex = draw_exam(np.random.default_rng([args.seed, 0]), index=0, level_seed=(args.seed, 0))
    images = list(exam_images(ex, args.matrix))
    sag = [im for im in images if im.series_description == SAGITTAL][SAGITTAL_SLICES // 2]
    scale = 3.0
    side = int(sag.geometry.rows * scale)
    ax_side = (side - 2 * 24) // 3
    head, gap = 30, 8
    w, h = side + 3 * gap + ax_side + 300, head + side + gap
    canvas = QImage(w, h, QImage.Format.Format_RGB32)
    canvas.fill(QColor(20, 20, 20))
    p = QPainter(canvas)
    p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    font = QFont()
    font.setPixelSize(15)
    p.setFont(font)
    p.setPen(QPen(QColor(235, 235, 235)))
    p.drawText(QRect(8, 4, w - 16, head - 6), Qt.AlignmentFlag.AlignVCenter,
               "Demo exam: mid-sagittal T2, the axial T2 stacks drawn at their ImagePositionPatient, "
               "the middle slice of each; + is the truth canal centre")
    p.drawImage(QRect(gap, head, side, side), _to_qimage(window(sag.pixels)))
    sg = sag.geometry
    for k, level in enumerate(AXIAL_LEVELS):
        stack = [im for im in images if im.level == level]
        for im in stack:
            g = im.geometry
            assert g.image_position is not None and g.pixel_spacing is not None
            y0, y1 = g.image_position[1], g.image_position[1] + (g.rows - 1) * g.pixel_spacing[0]
            x = g.image_position[0] + (g.columns - 1) * g.pixel_spacing[1] / 2
            a = sg.patient_to_pixel((x, y0, g.image_position[2]))
            b = sg.patient_to_pixel((x, y1, g.image_position[2]))
            p.setPen(QPen(QColor(*ACCENT), 1.0))
            p.drawLine(QPointF(gap + (a[0] + 0.5) * scale, head + (a[1] + 0.5) * scale),
                       QPointF(gap + (b[0] + 0.5) * scale, head + (b[1] + 0.5) * scale))
        mid = stack[len(stack) // 2]
        assert mid.truth is not None
        top = head + k * (ax_side + 24)
        left = side + 2 * gap
        p.drawImage(QRect(left, top, ax_side, ax_side), _to_qimage(window(mid.pixels)))
        f = ax_side / mid.geometry.columns
        cx, cy = left + (mid.truth.x_px + 0.5) * f, top + (mid.truth.y_px + 0.5) * f
        p.setPen(QPen(QColor(*ACCENT), 1.5))
        p.drawLine(QPointF(cx - 6, cy), QPointF(cx + 6, cy))
        p.drawLine(QPointF(cx, cy - 6), QPointF(cx, cy + 6))
        p.setPen(QPen(QColor(235, 235, 235)))
        p.drawText(QRect(left + ax_side + gap, top + ax_side // 2 - 40, 300 - 2 * gap, 80),
                   Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextWordWrap,
                   f"{mid.series_description}\nslice {mid.instance_number} of {len(stack)}, "
                   f"z = {mid.slice_location:.1f} mm\nstage {mid.truth.stage}, "
                   f"sac {mid.truth.sac_area_mm2:.0f} mm²")
    p.end()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not to_palette(canvas).save(str(out), "PNG", 9):
        raise SystemExit(f"could not write {out}")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
