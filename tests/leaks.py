"""What a student must never receive, as lines, and a scan of files for them (issue 13).

Secret: every line of the grader modules (autograder/graders/*.py) and every line of any
master's solutions and hidden tests (between the BEGIN/END markers). Lines a student sees
anyway (the master's text outside those blocks), imports, and lines too short to say
anything are left out, so that a hit is a real leak.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from autograder.course import cell_source

REPO = Path(__file__).resolve().parents[1]
MIN_CHARS = 24
BLOCK = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)


def significant(line: str) -> str | None:
    line = line.strip()
    if len(line) < MIN_CHARS or line.startswith(("import ", "from ", "#", '"""')):
        return None
    if line.endswith(":") and len(line) < 40:      # 'for p in self.parameters():' says little
        return None
    return line


def masters() -> list[Path]:
    return sorted((REPO / "autograder" / "source").glob("*/*.ipynb"))


def secret_lines() -> dict[str, str]:
    """line -> where it comes from."""
    secret: dict[str, str] = {}
    shown: set[str] = set()
    for path in masters():
        for cell in json.loads(path.read_text())["cells"]:
            source = cell_source(cell)
            for block in BLOCK.finditer(source):
                for line in block.group(2).splitlines():
                    if significant(line):
                        secret.setdefault(significant(line), f"{path.name}: {block.group(1).lower()}")
            for line in BLOCK.sub("", source).splitlines():
                if significant(line):
                    shown.add(significant(line))
    for path in sorted((REPO / "autograder" / "graders").glob("*.py")):
        for line in path.read_text().splitlines():
            if significant(line):
                secret.setdefault(significant(line), f"graders/{path.name}")
    return {line: where for line, where in secret.items() if line not in shown}


def text_lines(path: Path) -> list[str]:
    """A file's lines; for a notebook, its cells' sources and text outputs."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix != ".ipynb":
        return text.splitlines()
    lines = []
    for cell in json.loads(text).get("cells", []):
        lines += cell_source(cell).splitlines()
        for output in cell.get("outputs", []):
            for value in [output.get("text", "")] + list((output.get("data") or {}).values()):
                lines += (value if isinstance(value, str) else "".join(value)).splitlines()
    return lines


def leaks(paths, secret: dict[str, str] | None = None, own: set[str] = frozenset()) -> list[str]:
    """'file:line: text (from where)' for every secret line in the files; ``own`` lines
    (the student's own code, shown back in their feedback) are not leaks."""
    secret = secret_lines() if secret is None else secret
    found = []
    for path in paths:
        for number, line in enumerate(text_lines(Path(path)), 1):
            line = significant(unescape(line)) or ""
            if line in secret and line not in own:
                found.append(f"{path}:{number}: {line} (from {secret[line]})")
    return found


def unescape(line: str) -> str:
    """HTML text as the student reads it (feedback pages escape code)."""
    import html
    return html.unescape(re.sub(r"<[^>]+>", "", line))
