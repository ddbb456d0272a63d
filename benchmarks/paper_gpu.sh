#!/usr/bin/env bash
# Time the paper preset's 10-fold patient-level CV on one GPU (target: <= 10 min on one H100) in one
# command that fits a 10-minute limit: make the 542-patient phantom, import it, run the CV with
# --device cuda, print the device and the per-fold and total wall times.
#
#   1. Here (internet, same checkout), once:  benchmarks/paper_gpu.sh --fetch-wheels
#      The GPU machine has Python 3.12, torch, torchvision, numpy, scipy, safetensors and scikit-learn,
#      but no internet and not the packages in DEPS below: this downloads their wheels (the versions of
#      this checkout's .venv) for CPython 3.12 on x86-64 into .whl/, which .git/info/exclude ignores.
#   2. On the GPU machine, with .whl carried along (device tool: carry [".whl"], timeout_s 600):
#        bash benchmarks/paper_gpu.sh
#      It installs those wheels into a scratch folder (pip --no-index: nothing is fetched) and puts this
#      tree's annotator beside them, laid out as pyproject's package-dir says (no build step).
#   Smoke test of the same path on a CPU:
#        benchmarks/paper_gpu.sh --patients 20 --folds 2 --epochs 1 --device cpu
#
# Later arguments go to benchmarks/model_quality.py and override the defaults (e.g. --epochs 10,
# --threads 4, --device cuda:1). The full training on all slices is skipped (--skip-train) to fit the
# limit; each fold's time is about one training on 90 % of the slices. The report, paper_gpu.json, and
# the log, paper_gpu.log, go to $OUT if set, else benchmarks/out/; the report is rewritten after every
# fold, so a run stopped at the limit still has its figures. Exit status 1 = a target missed.
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
  if [ "$WHEELS" = .whl ] && ! grep -qx '/.whl/' .git/info/exclude 2>/dev/null; then echo /.whl/ >>.git/info/exclude; fi
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  # shellcheck disable=SC2086
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WHEELS" $pins
  ls "$WHEELS"
  exit 0
fi

SITE=$(mktemp -d /tmp/paper-gpu-site-XXXX)
WORK=$(mktemp -d /tmp/paper-gpu-work-XXXX)
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
fi
cp -r annotator "$SITE/" && cp -r resources "$SITE/annotator/resources" && cp -r migrations "$SITE/annotator/migrations"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
REPORT=${OUT:-benchmarks/out}
mkdir -p "$REPORT"

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  (cd /tmp && "$PYTHON" -c 'import platform, annotator, torch; print("python", platform.python_version(), "| torch",
    torch.__version__, "| CUDA", torch.version.cuda, "| GPU visible:", torch.cuda.is_available(), "|", annotator.__file__)')
  "$PYTHON" benchmarks/model_quality.py --preset paper --device cuda --folds 10 --patients 542 --skip-train \
    --workers "$(nproc)" --work "$WORK" --json "$REPORT/paper_gpu.json" "$@"
} 2>&1 | tee "$REPORT/paper_gpu.log"
