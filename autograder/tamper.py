"""Suspicious patterns in a submission's answer cells, for an instructor to look at.

A tamper report does not change a grade: it lists, per answer cell, the lines whose code
reaches beyond an exercise (the hidden tests resist the common tricks on their own; this is
how an instructor finds the uncommon ones). What counts as suspicious:

* assigning to an attribute of an imported module or of the builtins
  (``torch.allclose = ...``, ``setattr(np, "isclose", ...)``, ``builtins.float = ...``);
* defining comparison or conversion dunders (``__eq__``, ``__float__``, ...), which can
  make a wrong answer compare equal to anything;
* file, process and network access (``open``, ``os.system``, ``subprocess``, ``socket``,
  ``urllib``, ...), reflection that reaches other frames or modules (``inspect``,
  ``sys.modules``, ``gc``, ``ctypes``) and dynamic code (``exec``, ``eval``,
  ``__import__``), and leaving the process (``os._exit``, ``sys.exit``).

``scan_notebook`` reads the answer cells by their nbgrader metadata (``solution: true``);
when a notebook has lost its metadata (Colab may drop it), every code cell whose source is
not one of the master's locked cells counts as an answer.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from .course import cell_source, nbgrader_meta, read_notebook

DUNDERS = {"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__",
           "__bool__", "__float__", "__int__", "__index__", "__abs__", "__round__",
           "__instancecheck__", "__subclasscheck__", "__getattribute__", "__array__",
           "__torch_function__", "__torch_dispatch__"}
CALLS = {
    "open": "opens a file", "exec": "runs dynamic code", "eval": "runs dynamic code",
    "compile": "compiles dynamic code", "__import__": "imports dynamically",
    "setattr": "sets an attribute by name", "delattr": "deletes an attribute by name",
    "globals": "reaches the notebook's globals", "vars": "reaches a namespace",
    "breakpoint": "starts a debugger", "input": "waits for input",
}
QUALIFIED_CALLS = {
    "os.system": "runs a shell command", "os.popen": "runs a shell command",
    "os._exit": "ends the process", "sys.exit": "ends the process", "os.kill": "sends a signal",
    "os.remove": "deletes a file", "os.unlink": "deletes a file", "os.rename": "moves a file",
    "os.listdir": "lists a folder", "os.walk": "walks folders", "os.scandir": "lists a folder",
    "os.chdir": "changes the working folder", "os.fork": "forks the process",
    "os.environ": "reads the environment", "shutil": "copies or deletes files",
    "glob": "lists files", "pathlib.Path": "touches the file system",
    "Path": "touches the file system",
}
MODULES = {
    "subprocess": "starts processes", "socket": "opens network connections",
    "urllib": "makes network requests", "requests": "makes network requests",
    "http": "makes network requests", "ftplib": "makes network requests",
    "smtplib": "sends mail", "inspect": "inspects other frames and code",
    "gc": "reaches every live object", "ctypes": "calls C code directly",
    "importlib": "imports dynamically", "builtins": "reaches the builtins",
    "multiprocessing": "starts processes", "threading": "starts threads",
    "signal": "handles signals", "shutil": "copies or deletes files",
    "pickle": "loads pickled objects", "marshal": "loads code objects",
    "resource": "changes process limits", "pty": "opens a terminal",
}
NAMES = {"sys.modules": "reaches every imported module", "__builtins__": "reaches the builtins",
         "__class__": "reaches an object's class", "__globals__": "reaches a function's globals",
         "__code__": "reaches a function's code", "__subclasses__": "walks class hierarchies",
         "f_back": "reaches the caller's frame", "f_globals": "reaches a frame's globals"}


@dataclass(frozen=True)
class Finding:
    cell: str          # the answer cell's grade_id, or "cell <index>" without metadata
    line: int
    what: str          # the suspicious pattern, e.g. "torch.allclose = ..."
    why: str
    code: str          # the source line

    def __str__(self) -> str:
        return f"{self.cell}, line {self.line}: {self.what} ({self.why}): {self.code.strip()}"


def _dotted(node: ast.AST) -> str:
    """'a.b.c' for a Name/Attribute chain, '' otherwise."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


class _Scanner(ast.NodeVisitor):
    def __init__(self, imported: set[str]):
        self.imported = set(imported)          # names bound to modules (torch, np, F, ...)
        self.found: list[tuple[int, str, str]] = []

    def add(self, node: ast.AST, what: str, why: str) -> None:
        self.found.append((getattr(node, "lineno", 0), what, why))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imported.add((alias.asname or alias.name).split(".")[0])
            self._module(node, alias.name)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module:
            self._module(node, node.module)
        self.generic_visit(node)

    def _module(self, node: ast.AST, name: str) -> None:
        top = name.split(".")[0]
        if top in MODULES:
            self.add(node, f"import {name}", MODULES[top])

    def _target(self, node: ast.AST, target: ast.AST) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._target(node, element)
        elif isinstance(target, ast.Attribute):
            base = _dotted(target.value).split(".")[0]
            if base in self.imported or base in ("builtins", "__builtins__"):
                self.add(node, f"{_dotted(target) or target.attr} = ...",
                         "changes an imported module")
        elif isinstance(target, ast.Subscript) and _dotted(target.value) in (
                "__builtins__", "sys.modules", "builtins.__dict__"):
            self.add(node, f"{_dotted(target.value)}[...] = ...", "changes the builtins or modules")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._target(node, target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._target(node, node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._target(node, node.target)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.name in DUNDERS:
            self.add(node, f"def {node.name}", "can make any value compare or convert as wished")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        name = _dotted(node.func)
        if name in CALLS:
            self.add(node, f"{name}(...)", CALLS[name])
        for prefix, why in QUALIFIED_CALLS.items():
            if name == prefix or name.startswith(prefix + "."):
                self.add(node, f"{name}(...)", why)
                break
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = _dotted(node)
        for pattern, why in NAMES.items():
            if name == pattern or name.endswith("." + pattern) or node.attr == pattern:
                self.add(node, name or node.attr, why)
                break
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "__builtins__":
            self.add(node, node.id, NAMES["__builtins__"])


def scan_source(source: str, cell: str, imported: set[str] = frozenset()) -> list[Finding]:
    """Findings in one cell's source; IPython magics and shell lines are skipped."""
    lines = source.splitlines()
    python = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines)
    try:
        tree = ast.parse(python)
    except SyntaxError as error:
        return [Finding(cell, error.lineno or 0, "syntax error", "the cell does not parse",
                        (lines[error.lineno - 1] if error.lineno and error.lineno <= len(lines)
                         else ""))]
    scanner = _Scanner(set(imported))
    scanner.visit(tree)
    unique = dict.fromkeys(scanner.found)            # keep order, drop repeats
    return [Finding(cell, line, what, why, lines[line - 1] if 0 < line <= len(lines) else "")
            for line, what, why in unique]


def imported_names(cells: list[dict]) -> set[str]:
    """Names the notebook binds to modules (from its import statements)."""
    names = set()
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse("\n".join(ln for ln in cell_source(cell).splitlines()
                                       if not ln.lstrip().startswith(("%", "!"))))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                names.update(a.asname or a.name for a in node.names)
    return names


def answer_cells(notebook: dict, locked_sources: set[str] = frozenset()) -> list[tuple[str, str]]:
    """(label, source) of each answer cell: nbgrader's solution cells, or, without metadata,
    the code cells that are not one of the master's locked cells."""
    cells = notebook.get("cells", [])
    tagged = [(nbgrader_meta(c).get("grade_id", f"cell {i}"), cell_source(c))
              for i, c in enumerate(cells)
              if c.get("cell_type") == "code"
              and nbgrader_meta(c).get("solution")]
    if tagged:
        return tagged
    return [(f"cell {i}", cell_source(c)) for i, c in enumerate(cells)
            if c.get("cell_type") == "code" and cell_source(c).strip() not in locked_sources]


def locked_sources_of(master: dict) -> set[str]:
    """Sources of the master's code cells that are not answers (set-up, tests, plots)."""
    return {cell_source(c).strip() for c in master.get("cells", [])
            if c.get("cell_type") == "code"
            and not nbgrader_meta(c).get("solution")}


def scan_notebook(path: Path, master: dict | None = None) -> list[Finding]:
    """Every finding in the answer cells of the notebook at ``path``."""
    try:
        notebook = read_notebook(path)
    except (OSError, ValueError) as error:
        return [Finding("notebook", 0, "unreadable notebook", str(error), "")]
    imported = imported_names(notebook.cells)
    locked = locked_sources_of(master) if master else set()
    findings = []
    for label, source in answer_cells(notebook, locked):
        findings.extend(scan_source(source, label, imported))
    return findings
