"""Nothing a student receives holds a hidden test, a grader's line or a master's solution
(issue 13): the release notebooks, the package students install, the student READMEs.
The feedback is scanned where it is made (test_autograder.py, test_feedback_leaks_nothing)."""
from pathlib import Path

import leaks
from helpers import REPO



def student_files() -> list[Path]:
    files = sorted((REPO / "notebooks").glob("*.ipynb"))
    files += sorted((REPO / "course_utils").rglob("*.py"))
    files += [REPO / "README.md", REPO / "data" / "README.md"]
    return [f for f in files if f.exists()]


def test_there_are_secrets_to_look_for():
    secret = leaks.secret_lines()
    sources = {where.split(":")[0] for where in secret.values()}
    assert len(secret) > 100, "the secret lines were not found: the scan would find nothing"
    for master in leaks.masters():
        assert any(s.startswith(master.name) for s in sources), f"no solution lines in {master.name}"


def test_the_scan_finds_a_planted_leak(tmp_path):
    line, where = next(iter(leaks.secret_lines().items()))
    planted = tmp_path / "notebook.ipynb"
    planted.write_text('{"cells": [{"cell_type": "code", "source": "    %s\\n", "outputs": []}]}'
                       % line.replace("\\", "\\\\").replace('"', '\\"'))
    assert leaks.leaks([planted]), "a solution line pasted into a notebook was not found"
    html = tmp_path / "feedback.html"
    html.write_text("<pre>" + line.replace("<", "&lt;").replace(">", "&gt;") + "</pre>")
    assert leaks.leaks([html]), "a line escaped in HTML was not found"


def test_nothing_students_receive_holds_a_secret():
    found = leaks.leaks(student_files())
    assert not found, "lines of solutions, hidden tests or graders in student files:\n" + \
        "\n".join(found[:40])
