#!/usr/bin/env bash
# The study's pipeline measured on a GPU machine (issue 16, point 4): the 542-patient single-slice demo
# (two simulated experts), then the 10-fold patient-level CV on expert 1 with the `fast` preset and with
# the `paper` preset, each with --jobs = the number of GPUs present (one fold per GPU at a time) and
# --precision auto (bf16 autocast where the GPU has it). Prints the device, each preset's CV wall time
# and its out-of-fold quality against the phantom's truth (held in memory by model_quality.py, never
# stored as a rater), side by side. Target: the paper CV in <= 10 min on one H100/H200-class GPU.
#
#   1. Here (a machine with pip access and this checkout), once:  benchmarks/paper_gpu.sh --fetch-wheels
#      The GPU machine has Python 3.12 with torch, torchvision, numpy, scipy, scikit-learn, safetensors
#      and MarkupSafe, but no internet and not the packages in DEPS: this puts their wheels (the versions
#      of this checkout's .venv, for CPython 3.12 on x86-64) into $WHEELS (default .whl/, which
#      .git/info/exclude ignores). A wheelhouse made another way works too: WHEELS=DIR.
#   2. On the GPU machine, with the wheels carried along (device tool: carry [".whl"], timeout_s 600):
#        bash benchmarks/paper_gpu.sh
#      It installs the wheels into a scratch folder (pip --no-index: nothing is fetched) and puts this
#      tree's annotator beside them, laid out as pyproject's package-dir says (no build step). Both
#      presets on one GPU may not fit a 10-minute call: `--presets paper` and `--presets fast` run one each
#      (the phantom is made again in each call, about a minute on 16 cores).
#   Dry run on a CPU (the same steps on a tiny demo, CPU device, a few seconds per preset):
#        benchmarks/paper_gpu.sh --dry-run
#
# Options: --presets "fast paper" (the order they run in), --dry-run; later arguments go to
# benchmarks/model_quality.py and override its defaults (e.g. --epochs 10, --folds 5, --device cuda:1).
# The full training on all slices is skipped (--skip-train). Reports (<preset>_gpu.json, rewritten after
# every fold, so a run stopped at a limit keeps its figures) and the log (paper_gpu.log) go to $OUT if
# set, else benchmarks/out/. Exit status: 0 when every target was met (a dry run: when every step ran), 1
# when one was missed, 2 or more on errors.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-.whl}
DEPS="pydicom SQLAlchemy alembic Mako platformdirs typing_extensions"  # needed here, missing (or old) there
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=$PWD/.venv/bin/python; else PYTHON=python3; fi
fi

if [ "${1:-}" = "--fetch-wheels" ]; then
  # shellcheck disable=SC2086
  pins=$("$PYTHON" -c 'import importlib.metadata as m, sys; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $DEPS)
  exclude=$(git rev-parse --git-path info/exclude 2>/dev/null || echo .git/info/exclude)  # worktrees too
  if [ "$WHEELS" = .whl ] && ! grep -qx '/.whl/' "$exclude" 2>/dev/null; then
    mkdir -p "$(dirname "$exclude")" && echo /.whl/ >>"$exclude"
  fi
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  # shellcheck disable=SC2086
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WHEELS" $pins
  ls "$WHEELS"
  exit 0
fi

PRESETS="fast paper"
DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --presets) PRESETS=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    *) break ;;
  esac
done

REPORT=${OUT:-benchmarks/out}
mkdir -p "$REPORT"
WORK=$(mktemp -d /tmp/paper-gpu-work-XXXX)
SITE=$(mktemp -d /tmp/paper-gpu-site-XXXX)
if [ "$DRY" = 0 ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
fi
cp -r annotator "$SITE/" && cp -r resources "$SITE/annotator/resources" && cp -r migrations "$SITE/annotator/migrations"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
if [ "$DRY" = 1 ]; then
  # the same steps and layout, small: 20 patients, 2 folds, 1 epoch, on the CPU with the checkout's
  # packages (the cp312 wheels are for the GPU machine); 2 jobs: folds in child processes, as on GPUs
  DEVICE=cpu GPUS=0 JOBS=2
  SIZE=(--patients 20 --folds 2 --epochs 1 --workers 2)
else
  GPUS=$(cd /tmp && "$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')
  if [ "$GPUS" -lt 1 ]; then
    echo "paper_gpu.sh: torch sees no GPU here; use --dry-run for the CPU smoke test" >&2
    exit 2
  fi
  DEVICE=cuda JOBS=$GPUS
  SIZE=(--patients 542 --folds 10 --workers "$(nproc)")
fi
export PYTHONUNBUFFERED=1

status=0
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  (cd /tmp && "$PYTHON" -c 'import platform, annotator, torch; print("python", platform.python_version(), "| torch",
    torch.__version__, "| CUDA", torch.version.cuda, "| GPUs visible:", torch.cuda.device_count(),
    "| bf16:", torch.cuda.is_available() and torch.cuda.is_bf16_supported(), "|", annotator.__file__)')
  echo "presets: $PRESETS; device $DEVICE; GPUs $GPUS; cv --jobs $JOBS"
  for preset in $PRESETS; do
    echo "=== $preset: ${SIZE[*]} --device $DEVICE --jobs $JOBS ==="
    rc=0
    "$PYTHON" benchmarks/model_quality.py --preset "$preset" --device "$DEVICE" --jobs "$JOBS" --skip-train \
      --data "$WORK/phantom" --work "$WORK/$preset" --json "$REPORT/${preset}_gpu.json" "${SIZE[@]}" "$@" || rc=$?
    if [ "$rc" -gt 1 ]; then echo "model_quality.py failed for $preset (exit $rc)"; exit "$rc"; fi
    if [ "$rc" -eq 1 ] && [ "$DRY" = 0 ]; then status=1; fi  # a dry run's figures are not the targets'
  done
  echo "=== summary (out-of-fold CV on expert 1, against the phantom's truth) ==="
  "$PYTHON" - "$REPORT" $PRESETS <<'PY'
import json, sys
from pathlib import Path

folder, presets = Path(sys.argv[1]), sys.argv[2:]
print(f"{'preset':8} {'device':34} {'jobs':>4} {'precision':>9} {'CV wall s':>9} {'accuracy':>8} "
      f"{'F1 macro':>8} {'centre median mm':>16} {'p95 mm':>7}  targets")
for preset in presets:
    r = json.loads((folder / f"{preset}_gpu.json").read_text())
    s, t = r["setup"], r["agreement"]["cv model (expert1) vs phantom truth"]
    wall = next(iter(r["summary"]["cv_wall_s"].values()))
    met = sum(x["pass"] for x in r["targets"])
    speed = "CV time met" if r["targets"][0]["pass"] else "CV time MISSED"
    print(f"{preset:8} {s['device'][:34]:34} {s['jobs']:>4} {s['mixed_precision']:>9} {wall:>9.1f} "
          f"{t['grades']['accuracy']:>8.4f} {t['grades']['f1_macro']:>8.4f} {t['points']['median_mm']:>16.3f} "
          f"{t['points']['p95_mm']:>7.3f}  {met}/{len(r['targets'])} met ({speed}: {r['targets'][0]['target']})")
PY
  exit "$status"
} 2>&1 | tee "$REPORT/paper_gpu.log"
