"""autograder/repair.py: nbgrader metadata restored by lining cells up with the release."""

from autograder import repair


def md(source, **nb):
    return {"cell_type": "markdown", "source": source, "metadata": {"nbgrader": nb} if nb else {}}


def code(source, **nb):
    return {"cell_type": "code", "source": source, "metadata": {"nbgrader": nb} if nb else {},
            "outputs": [], "execution_count": None}


RELEASE = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
    md("# Title", grade_id="intro", locked=True),
    code("import math", grade_id="setup", locked=True),
    code("def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()", grade_id="f", solution=True),
    code("assert f(1) == 2", grade_id="test_f", grade=True, points=1),
    code("class G:\n    # YOUR CODE HERE\n    raise NotImplementedError()", grade_id="g", solution=True),
    code("assert G().x == 1", grade_id="test_g", grade=True, points=2),
]}


def stripped(cells):
    return {"nbformat": 4, "nbformat_minor": 2, "metadata": {"colab": {}},
            "cells": [dict(c, metadata={"id": "x"}) for c in cells]}


def grade_ids(notebook):
    return [c["metadata"].get("nbgrader", {}).get("grade_id") for c in notebook["cells"]]


def test_answers_and_tests_get_their_metadata_back():
    answers = [md("# Title"), code("import math"), code("def f(x):\n    return 2 * x"),
               code("assert f(1) == 2"), code("class G:\n    x = 1"), code("assert G().x == 1")]
    repaired, notes = repair.restore_metadata(stripped(answers), RELEASE)
    assert grade_ids(repaired) == ["intro", "setup", "f", "test_f", "g", "test_g"]
    assert repaired["cells"][2]["metadata"]["nbgrader"]["solution"] is True
    assert repaired["nbformat_minor"] == 5 and all(c.get("id") for c in repaired["cells"])
    assert len({c["id"] for c in repaired["cells"]}) == 6
    assert any("restored on 6 cells" in n for n in notes)


def test_added_cells_and_a_deleted_test():
    answers = [md("# Title"), code("import math"), code("print('scratch')"),
               code("def f(x):\n    return 2 * x"), code("assert f(1) == 2"),
               code("class G:\n    x = 1")]                        # test_g deleted
    repaired, _ = repair.restore_metadata(stripped(answers), RELEASE)
    assert grade_ids(repaired) == ["intro", "setup", None, "f", "test_f", "g"]


def test_a_notebook_with_metadata_is_left_alone():
    current = dict(RELEASE, cells=[dict(c, id=f"c{i}") for i, c in enumerate(RELEASE["cells"])])
    repaired, notes = repair.restore_metadata(current, RELEASE)
    assert repaired == current and notes == []
