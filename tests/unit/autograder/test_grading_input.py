"""The grader's input path without a kernel: safe_files, intake and bounded outputs."""
import json
import os

import pytest

from autograder import bounded_execute
from autograder import intake
from autograder import safe_files


@pytest.mark.parametrize("student", ["..", "a/b", "=1+2", "+cmd", "-x", "@x", "with space",
                                     "a..b", "", "x" * 101, "tab\tname", "é"])
def test_unusable_student_ids(student):
    assert safe_files.student_id_problem(student)


@pytest.mark.parametrize("student", ["alice", "doe.john", "s1234567", "a-b_c", "x@uni.edu"])
def test_usable_student_ids(student):
    assert safe_files.student_id_problem(student) is None


@pytest.mark.parametrize("value, safe", [("=1+2", "'=1+2"), ("+SUM(A1)", "'+SUM(A1)"),
                                         ("-2+3", "'-2+3"), ("@cmd", "'@cmd"), ("\t=x", "'\t=x"),
                                         ("-3", "-3"), ("1.5e-3", "1.5e-3"), ("plain", "plain"),
                                         (3, 3), (None, None)])
def test_spreadsheet_safe(value, safe):
    assert safe_files.spreadsheet_safe(value) == safe


def test_write_csv_escapes_and_refuses_links(tmp_path):
    path = safe_files.write_csv(tmp_path / "r.csv", ["a", "b"], [{"a": "=cmd()", "b": -1}], tmp_path)
    assert path.read_text().splitlines() == ["a,b", "'=cmd(),-1"]
    (tmp_path / "victim").write_text("keep")
    (tmp_path / "link.csv").symlink_to(tmp_path / "victim")
    with pytest.raises(safe_files.UnsafePath):
        safe_files.write_csv(tmp_path / "link.csv", ["a"], [], tmp_path)
    assert (tmp_path / "victim").read_text() == "keep"


def test_open_for_writing_never_follows_a_link_on_the_way(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "reports").symlink_to(outside)
    with pytest.raises(safe_files.UnsafePath, match="not a folder"):
        safe_files.write_text(root / "reports" / "x.txt", "data", root)
    assert list(outside.iterdir()) == []
    (root / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(root / "fifo")
    with pytest.raises(safe_files.UnsafePath):
        safe_files.write_text(root / "fifo", "data", root)


def test_tree_problems_names_links_special_files_hard_links_and_size(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "ok.txt").write_text("x" * 100)
    assert safe_files.tree_problems(tmp_path, "s") == []
    assert "over the limit" in safe_files.tree_problems(tmp_path, "s", max_bytes=10)[0]
    (folder / "link").symlink_to("/etc")
    os.mkfifo(folder / "pipe")
    os.link(folder / "ok.txt", tmp_path / "elsewhere.txt")
    problems = " ".join(safe_files.tree_problems(tmp_path, "s"))
    assert "symbolic link" in problems and "named pipe" in problems and "hard links" in problems
    assert safe_files.tree_problems(tmp_path, "absent") == []


def test_read_regular_refuses_links_and_large_files(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 1000)
    (tmp_path / "link").symlink_to(tmp_path / "big")
    assert safe_files.read_regular(tmp_path / "big", 1000) == b"x" * 1000
    with pytest.raises(safe_files.UnsafePath, match="over the limit"):
        safe_files.read_regular(tmp_path / "big", 999)
    with pytest.raises(OSError):
        safe_files.read_regular(tmp_path / "link", 1000)


NOTEBOOK = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": "code", "metadata": {}, "source": "x = 1",
                       "outputs": [{"output_type": "stream", "name": "stdout", "text": "1"}],
                       "execution_count": 3},
                      {"cell_type": "markdown", "metadata": None, "source": ["# a", "b"]}]}


def submit(tmp_path, data: bytes, limits=intake.IntakeLimits()):
    path = tmp_path / "nb.ipynb"
    path.write_bytes(data)
    return intake.read_submission(path, limits)


def test_intake_normalises_what_it_can(tmp_path):
    notebook, notes = submit(tmp_path, json.dumps(NOTEBOOK).encode())
    assert notebook["cells"][0]["outputs"] == [] and notebook["cells"][0]["execution_count"] is None
    assert notebook["cells"][1]["metadata"] == {}
    assert any("emptied" in n for n in notes)


@pytest.mark.parametrize("data, reason", [
    (b"[]", "JSON list"), (b"null", "JSON NoneType"), (b"{", "not valid JSON"),
    (b"\xff\xfe", "UTF-8"), (b"[" * 50_000 + b"]" * 50_000, "JSON"),
    (json.dumps(dict(NOTEBOOK, nbformat=3)).encode(), "nbformat 3"),
    (json.dumps(dict(NOTEBOOK, nbformat="4")).encode(), "nbformat '4'"),
    (json.dumps(dict(NOTEBOOK, cells={})).encode(), "no list of cells"),
    (json.dumps(dict(NOTEBOOK, cells=[None])).encode(), "cell 0 is not an object"),
    (json.dumps(dict(NOTEBOOK, cells=[{"cell_type": "weird"}])).encode(), "cell_type 'weird'"),
    (json.dumps(dict(NOTEBOOK, cells=[{"cell_type": "code", "source": 5}])).encode(), "not text"),
    (json.dumps(dict(NOTEBOOK, cells=[{"cell_type": "code", "source": "", "id": 1}])).encode(),
     "id is not text"),
])
def test_intake_rejects_with_a_reason(tmp_path, data, reason):
    with pytest.raises(intake.Rejected, match=reason.replace("(", r"\(")):
        submit(tmp_path, data)


def test_intake_limits(tmp_path):
    data = json.dumps(dict(NOTEBOOK, cells=NOTEBOOK["cells"] * 20)).encode()
    with pytest.raises(intake.Rejected, match="40 cells, over the limit of 10"):
        submit(tmp_path, data, intake.IntakeLimits(max_cells=10))
    with pytest.raises(intake.Rejected, match="over the limit"):
        submit(tmp_path, data, intake.IntakeLimits(max_bytes=100))
    (tmp_path / "link.ipynb").symlink_to(tmp_path / "nb.ipynb")
    with pytest.raises(intake.Rejected):
        intake.read_submission(tmp_path / "link.ipynb")


def test_shrink_cuts_every_output_type():
    stream = bounded_execute.shrink({"output_type": "stream", "name": "stdout", "text": "x" * 500}, 100)
    assert len(stream["text"]) < 200 and "output cut by the grader" in stream["text"]
    display = bounded_execute.shrink({"output_type": "display_data", "metadata": {},
                                      "data": {"text/html": "<b>" * 500, "image/png": "A" * 500,
                                               "text/plain": "short"}}, 100)
    assert bounded_execute.output_size(display) <= 200 and "text/plain" in display["data"]
    error = bounded_execute.shrink({"output_type": "error", "ename": "E", "evalue": "v" * 500,
                                    "traceback": ["t" * 500] * 1000}, 100)
    assert len(error["evalue"]) == 100 and sum(map(len, error["traceback"])) <= 100


def test_a_graded_cells_result_is_never_partial_credit():
    """A rebound check that returns 3 in a 2-point cell: nbgrader would read the result as
    partial credit over the maximum and fail the submission; it is shown as a display."""
    import nbformat
    from nbgrader.utils import determine_grade
    from autograder.bounded_execute import ResultsAsDisplays
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("checks.check_something(answer)")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t", "points": 2}
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "3"},
                                           execution_count=1)]
    notebook.cells = [cell]
    notebook, _ = ResultsAsDisplays()(notebook, {})
    [output] = notebook.cells[0].outputs
    assert output.output_type == "display_data" and output.data["text/plain"] == "3"
    assert determine_grade(notebook.cells[0]) == (2.0, 2.0)      # no ValueError
