"""autograder/tamper.py: the suspicious patterns an instructor should see, and no noise."""
import json

from autograder import tamper

IMPORTED = {"torch", "np", "F", "math", "os", "sys", "builtins"}


def whats(source):
    return [f.what for f in tamper.scan_source(source, "answer", IMPORTED)]


def test_a_plain_answer_has_no_findings():
    source = ("def nt_xent_loss(z_i, z_j, tau):\n"
              "    z = F.normalize(torch.cat([z_i, z_j]), dim=1)\n"
              "    sim = z @ z.T / tau\n"
              "    sim.fill_diagonal_(-float('inf'))\n"
              "    n = len(z_i)\n"
              "    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])\n"
              "    return F.cross_entropy(sim, targets)\n"
              "class KeyQueue:\n"
              "    def __init__(self, dim, size):\n"
              "        self.buffer = torch.zeros(size, dim)\n"
              "        self.ptr = 0\n")
    assert whats(source) == []


def test_monkeypatches_and_dunders_are_found():
    found = whats("torch.allclose = lambda *a, **k: True\n"
                  "setattr(np, 'isclose', lambda *a: True)\n"
                  "builtins.float = lambda x: 0.0\n"
                  "__builtins__['abs'] = lambda x: 0\n"
                  "class Always:\n"
                  "    def __eq__(self, other):\n        return True\n"
                  "    def __float__(self):\n        return 1.0\n"
                  "F.cross_entropy.__defaults__ = None\n")
    assert "torch.allclose = ..." in found
    assert "setattr(...)" in found
    assert "builtins.float = ..." in found
    assert "__builtins__[...] = ..." in found
    assert "def __eq__" in found and "def __float__" in found
    assert "F.cross_entropy.__defaults__ = ..." in found


def test_files_processes_network_and_reflection_are_found():
    found = whats("import subprocess, socket\n"
                  "from urllib import request\n"
                  "open('../source/x.ipynb').read()\n"
                  "os.system('ls')\n"
                  "os._exit(0)\n"
                  "sys.modules['torch']\n"
                  "import inspect\n"
                  "f = inspect.currentframe().f_back\n"
                  "exec('x = 1')\n"
                  "!ls ../source\n")
    for expected in ["import subprocess", "import socket", "import urllib", "open(...)",
                     "os.system(...)", "os._exit(...)", "sys.modules", "import inspect",
                     "exec(...)"]:
        assert expected in found, expected
    assert any("f_back" in w for w in found)


def test_syntax_error_is_reported_not_raised():
    [finding] = tamper.scan_source("def f(:\n    pass\n", "answer")
    assert finding.what == "syntax error" and finding.line == 1


def notebook(cells):
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def code(source, **nbgrader):
    meta = {"nbgrader": nbgrader} if nbgrader else {}
    return {"cell_type": "code", "source": source, "metadata": meta, "outputs": [],
            "execution_count": None}


def test_scan_notebook_reads_answer_cells_only(tmp_path):
    nb = notebook([code("import torch\nimport os\n", grade_id="setup", solution=False),
                   code("def f(x):\n    torch.allclose = None\n    return x\n",
                        grade_id="f", solution=True),
                   code("assert open is not None\nos.listdir('.')\n", grade_id="test_f",
                        solution=False, grade=True)])
    path = tmp_path / "sub.ipynb"
    path.write_text(json.dumps(nb))
    findings = tamper.scan_notebook(path)
    assert [(f.cell, f.line, f.what) for f in findings] == [("f", 2, "torch.allclose = ...")]
    assert "f, line 2: torch.allclose = ..." in str(findings[0])


def test_without_metadata_every_unlocked_cell_is_an_answer(tmp_path):
    master = notebook([code("import torch\nimport os\n", grade_id="setup", solution=False),
                       code("def f(x):\n    return x\n", grade_id="f", solution=True),
                       code("os.listdir('.')\n", grade_id="test_f", grade=True)])
    stripped = notebook([code("import torch\nimport os\n"),
                         code("def f(x):\n    os.system('cat ../source/*')\n    return x\n"),
                         code("os.listdir('.')\n")])
    path = tmp_path / "colab.ipynb"
    path.write_text(json.dumps(stripped))
    findings = tamper.scan_notebook(path, master)
    assert [(f.cell, f.what) for f in findings] == [("cell 1", "os.system(...)")]


def test_unreadable_notebook(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text("{not json")
    [finding] = tamper.scan_notebook(path)
    assert finding.what == "unreadable notebook"
