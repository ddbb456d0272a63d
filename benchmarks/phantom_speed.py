"""Time the phantom: generate and write 542 patients x 3 slices at 320 x 320 (the study's size).

Usage: python benchmarks/phantom_speed.py [--patients 542] [--workers 2] [--matrix 320] [--out DIR]
Without --out the files go to a temporary folder that is removed afterwards. Target: <= 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from annotator.imaging.phantom_dicom import generate_dataset


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--patients", type=int, default=542)
    ap.add_argument("--slices", type=int, default=3)
    ap.add_argument("--matrix", type=int, default=320)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--compressed", type=float, default=0.0, help="share of files written compressed")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="phantom-speed-"))
    try:
        t0 = time.perf_counter()
        rows = generate_dataset(out, args.patients, args.seed, matrix=args.matrix,
                                compressed_fraction=args.compressed, slices_per_patient=args.slices,
                                workers=args.workers)
        dt = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    print(f"{args.patients} patients, {len(rows)} slices, {args.matrix}x{args.matrix}, workers={args.workers}: "
          f"{dt:.1f} s ({1000 * dt / max(len(rows), 1):.1f} ms/slice, {size / 2**20:.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
