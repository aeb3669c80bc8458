#!/usr/bin/env bash
# Grade one shard of an assignment on one machine of a pool (issue 19). Run it from the
# repository root, where `make setup` made .venv.
#
#   Slurm, 4 machines:   sbatch --array=1-4 --cpus-per-task=2 examples/grade_shard.sh 01_simclr_ntxent
#   then, on the course machine, once every task has finished:
#                        python -m autograder merge 01_simclr_ntxent shards/shard-*
#
#   A CI matrix (GitHub Actions: strategy.matrix.shard: [1, 2, 3, 4]) sets
#   SHARD_INDEX=${{ matrix.shard }} SHARD_COUNT=4, uploads shards/shard-K as an artifact,
#   and a last job downloads them all and runs the merge.
#
# Each task copies the course folder (COURSE_DIR, default autograder/: config, masters,
# graders, collected submissions, gradebook) into shards/shard-K and grades there the
# students of slice K (a hash of the student id: the same slice whoever else submitted).
set -euo pipefail
ASSIGNMENT=${1:?usage: grade_shard.sh ASSIGNMENT}
K=${SHARD_INDEX:-${SLURM_ARRAY_TASK_ID:?set SHARD_INDEX or run as a Slurm array task}}
N=${SHARD_COUNT:-${SLURM_ARRAY_TASK_COUNT:?set SHARD_COUNT or run as a Slurm array task}}
COURSE_DIR=${COURSE_DIR:-autograder}
SHARDS_DIR=${SHARDS_DIR:-shards}
PYTHON=${PYTHON:-.venv/bin/python}
WORKERS=${WORKERS:-${SLURM_CPUS_PER_TASK:-1}}

shard="$SHARDS_DIR/shard-$K"
rm -rf "$shard"
mkdir -p "$shard"
# the course without earlier gradings' outputs (each shard writes its own)
tar -C "$COURSE_DIR" --exclude=./autograded --exclude=./feedback --exclude=./reports \
    --exclude=./__pycache__ -cf - . | tar -C "$shard" -xf -
"$PYTHON" -m autograder --course-dir "$shard" autograde "$ASSIGNMENT" \
    --shard "$K/$N" --workers "$WORKERS"
echo "shard $K/$N graded in $shard: merge with  $PYTHON -m autograder merge $ASSIGNMENT $SHARDS_DIR/shard-*"
