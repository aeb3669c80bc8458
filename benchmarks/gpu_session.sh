#!/usr/bin/env bash
# The GPU measurements of the full-mode budget, as one prepared command for a lent GPU
# machine (PyTorch there, no Jupyter, no network). In order, each writing to $OUT:
#   1. augment_speed.py    views/s: batched GPU path against PIL with 2 workers (and kornia)
#   2. train_speed.py      SimCLR steps/s: float32, AMP, AMP + channels-last, + compile
#   3. losses_vs_lightly.py  our losses against lightly's (agreement, speed)
#   4. with EPOCHS given: notebook 01 in full mode on real CIFAR-10 (kNN, minutes)
#
# Prepare here, in the repository root (both folders are git-ignored):
#   mkdir -p .carry && cp ../shared/data/cifar10/cifar10_jpeg.tar.gz .carry/
#   optional, for kornia and lightly: their wheels in .whl/ (benchmarks/README.md)
# Then, with the device tool:
#   run(command="bash benchmarks/gpu_session.sh 100", carry=[".carry", ".whl"], timeout_s=590)
# A step whose optional dependency is missing says so and the next one runs.
set -uo pipefail
EPOCHS=${1:-}
OUT=${OUT:-build/gpu_session}
DATA=${DATA:-.carry/cifar10_jpeg.tar.gz}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 COURSE_DATA_DIR=/tmp/course_data
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | tee "$OUT/gpu.txt"

kornia_flag=--no-kornia
python3 -c "import kornia" 2>/dev/null && kornia_flag=
python3 benchmarks/augment_speed.py --data "$DATA" $kornia_flag --out "$OUT/augment.json" \
    2>&1 | tee "$OUT/augment.txt"
python3 benchmarks/train_speed.py --out "$OUT/train_speed.json" 2>&1 | tee "$OUT/train_speed.txt"
if python3 -c "import lightly" 2>/dev/null; then
    python3 benchmarks/losses_vs_lightly.py --out "$OUT/lightly.json" 2>&1 | tee "$OUT/lightly.txt"
else
    echo "lightly is not installed: losses_vs_lightly.py skipped" | tee "$OUT/lightly.txt"
fi
if [ -n "$EPOCHS" ]; then
    python3 benchmarks/full_mode.py --assignment 01_simclr_ntxent --epochs "$EPOCHS" \
        --dataset "folder:$DATA" --out "$OUT/full01" \
        2>&1 | tail -40 | tee "$OUT/full01.txt"
fi
