"""Sharded batches (autograder/shards.py): the same submissions of the fixture graded in one
batch, and in two shards by examples/grade_shard.sh (as two Slurm array tasks would) then
merged, give the same grades, cell by cell, and the same grades CSV."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import cli, collect, course, demo, grading, release, reports, shards
from helpers import FIXTURE, REPO, make_course

STUDENTS = ["ada", "bob", "cyd", "dee", "eve"]


# ---------------------------------------------------------------------------- slices


def test_slices_split_the_students_and_do_not_depend_on_the_others():
    many = [f"s{i:03d}" for i in range(300)]
    parts = [shards.students_of(many, k, 4) for k in range(1, 5)]
    assert sorted(sum(parts, [])) == many                       # each student exactly once
    assert min(map(len, parts)) > 40                            # and spread out
    assert shards.students_of(many[:10], 2, 4) == [s for s in parts[1] if s in many[:10]]


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b", "1/0"])
def test_a_bad_shard_is_refused(text):
    with pytest.raises(course.CourseError, match="--shard"):
        shards.parse_shard(text)


# ---------------------------------------------------------------------------- end to end


def a_course(root: Path) -> Path:
    """The fixture course with five collected submissions: the master, the blank release,
    a wrong add, a wrong mean_of, the master again."""
    course_dir = make_course(root / "course", FIXTURE)
    release.generate(course_dir, FIXTURE)
    folder = root / "submissions"
    made = demo.reference_submissions(course_dir, FIXTURE, folder, demo.wrong_variants(FIXTURE))
    files = sorted(made.values())
    for student, path in zip(STUDENTS, files + files):
        (folder / f"{student}.ipynb").write_bytes(path.read_bytes())
    for path in files:
        path.unlink()
    collect.collect(course_dir, folder, FIXTURE)
    return course_dir


def scores(course_dir: Path) -> dict:
    return {s: reports.exercise_scores(course_dir, FIXTURE, s) for s in STUDENTS}


def csv_scores(course_dir: Path, out: Path) -> dict:
    rows = csv.DictReader(reports.export(course_dir, out).open())
    return {r["student_id"]: (float(r["score"]), float(r["max_score"])) for r in rows}


@pytest.mark.notebook
def test_two_shards_merged_give_the_grades_of_one_batch(tmp_path):
    assert {shards.slice_of(s, 2) for s in STUDENTS} == {1, 2}, "both shards get students"
    one = a_course(tmp_path / "one")
    grading.autograde(one, FIXTURE, echo=lambda *_: None, workers=2)

    pooled = a_course(tmp_path / "pooled")
    for k in (1, 2):                                    # two array tasks, one after the other
        run = subprocess.run(
            ["bash", "examples/grade_shard.sh", FIXTURE], cwd=REPO,
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "SLURM_ARRAY_TASK_ID": str(k), "SLURM_ARRAY_TASK_COUNT": "2",
                 "COURSE_DIR": str(pooled), "SHARDS_DIR": str(tmp_path / "shards"),
                 "PYTHON": sys.executable, "WORKERS": "2"})
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        assert f"shard {k}/2" in run.stdout
    shard_dirs = [tmp_path / "shards" / f"shard-{k}" for k in (1, 2)]
    assert cli.main(["--course-dir", str(pooled), "merge", FIXTURE,
                     *map(str, shard_dirs)]) == 0

    assert scores(pooled) == scores(one)
    assert csv_scores(pooled, tmp_path / "pooled.csv") == csv_scores(one, tmp_path / "one.csv")
    for student in STUDENTS:                            # what feedback and --resume need
        assert (pooled / "autograded" / student / FIXTURE).is_dir()
        assert (pooled / "reports" / FIXTURE / f"{student}.properties.txt").is_file()
    assert set(grading.load_state(pooled, FIXTURE)) == set(grading.load_state(one, FIXTURE))
    report = {r["student"] for r in csv.DictReader(
        (pooled / "reports" / FIXTURE / "autograde.csv").open())}
    assert report == set(STUDENTS)

    with pytest.raises(course.CourseError, match="two shards"):
        shards.merge(pooled, FIXTURE, shard_dirs + [shard_dirs[0]], echo=lambda *_: None)


@pytest.mark.parametrize("manifest", ['[]', '{"assignment": "other", "students": {}}',
                                      '{"assignment": "00_fixture", "students": []}',
                                      '{"assignment": "00_fixture", "students": {"../x": {}}}'],
                         ids=["a list", "another assignment", "no students", "a bad id"])
def test_a_manifest_that_is_not_a_shard_is_refused(tmp_path, manifest):
    folder = tmp_path / "reports" / FIXTURE
    folder.mkdir(parents=True)
    (folder / shards.MANIFEST).write_text(manifest)
    with pytest.raises(course.CourseError):
        shards.read_manifest(tmp_path, FIXTURE)
