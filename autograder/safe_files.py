"""Checks before the grader writes, copies or chmods anything under the course folder.

nbgrader follows symbolic links wherever it writes (``autograded/``, ``feedback/``,
``submitted/``) and the kit writes ``reports/``. Whoever manages to leave a link or a
special file in one of them (a submission's folder, an LMS download, another process on
the machine) could make the grader overwrite the gradebook or copy the masters into a
feedback folder. So, before each write:

* a student id is a plain name (no separator, no ``..``, nothing a spreadsheet would run);
* every folder on the way from the course folder down is a real folder, not a link;
* everything below is a plain folder or a plain file with a single hard link, within a
  size; anything else is refused and reported for that submission alone;
* files are opened with ``O_NOFOLLOW``;
* every CSV cell that a spreadsheet would take for a formula is written as text.
"""
from __future__ import annotations

import csv
import os
import re
import stat
from pathlib import Path

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


class UnsafePath(RuntimeError):
    """A path the grader refuses to write through; the message says which and why."""


def student_id_problem(student: str) -> str | None:
    """Why ``student`` cannot be a student id (a folder name and a CSV cell), or None."""
    if not isinstance(student, str) or not STUDENT_ID.match(student):
        return (f"{student!r} is not a usable student id (letters, digits and . _ @ + - "
                "only, starting with a letter or digit, at most 100 characters)")
    if ".." in student:
        return f"{student!r} is not a usable student id (it holds '..')"
    return None


def kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device")):
        if test(mode):
            return name
    return "not a regular file"


def real_folders(root: Path, path: Path) -> None:
    """Raise UnsafePath unless every folder below ``root`` down to ``path`` (included when
    it exists) is a real folder: no link anywhere on the way."""
    root, path = Path(root), Path(path)
    try:
        relative = path.relative_to(root) if path.is_absolute() else path
    except ValueError:
        raise UnsafePath(f"{path} is not inside {root}") from None
    if ".." in relative.parts:
        raise UnsafePath(f"{path}: '..' in a path under {root}")
    current = root                          # the root itself may be reached through a link
    for part in relative.parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(mode):
            raise UnsafePath(f"{current} is {kind_of(mode) if not stat.S_ISREG(mode) else 'a file'}"
                             ", not a folder")


def tree_problems(root: Path, relative: str | Path, max_bytes: int | None = None) -> list[str]:
    """What is wrong under ``root/relative``: a link or a special file, a file with more
    than one hard link, a folder on the way that is a link, more than ``max_bytes``."""
    root = Path(root)
    try:
        real_folders(root, root / relative)
    except UnsafePath as error:
        return [str(error)]
    top = root / relative
    if not os.path.lexists(top):
        return []
    problems, total = [], 0
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                problems.append(f"{path} is {kind_of(info.st_mode)}")
            elif info.st_nlink > 1:
                problems.append(f"{path} has {info.st_nlink} hard links")
            else:
                total += info.st_size
    if max_bytes is not None and total > max_bytes:
        problems.append(f"{top} holds {total:,} bytes, over the limit of {max_bytes:,}")
    return problems


def open_for_writing(path: Path, root: Path, mode: str = "w", **kwargs):
    """``open(path, mode)`` for writing a file under ``root``: real folders on the way,
    the file itself not a link (``O_NOFOLLOW``), a plain file if it exists."""
    path = Path(path)
    real_folders(root, path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    real_folders(root, path.parent)
    # O_NONBLOCK: opening a named pipe for writing would wait for a reader forever
    flags = (os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
             | (os.O_APPEND if "a" in mode else os.O_TRUNC))
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as error:
        raise UnsafePath(f"{path}: {error.strerror} (a link or a special file?)") from error
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePath(f"{path} is not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, mode, **kwargs)


def write_text(path: Path, text: str, root: Path) -> Path:
    with open_for_writing(path, root, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def read_regular(path: Path, max_bytes: int) -> bytes:
    """The bytes of a plain file (not a link, not special), at most ``max_bytes``."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePath(f"{path} is {kind_of(info.st_mode)}")
        if info.st_size > max_bytes:
            raise UnsafePath(f"{path} is {info.st_size:,} bytes, over the limit of {max_bytes:,}")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnsafePath(f"{path} is over the limit of {max_bytes:,} bytes")
    return data


def spreadsheet_safe(value):
    """A CSV cell that no spreadsheet runs as a formula: text starting with = + - @ (or
    a tab, a line break) gets a leading apostrophe; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not NUMBER.match(value):
        return "'" + value
    return value


def write_csv(path: Path, header: list[str], rows: list[dict], root: Path) -> Path:
    with open_for_writing(path, root, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
    return Path(path)


def make_csv_safe(path: Path, root: Path) -> Path:
    """Rewrite a CSV someone else wrote (nbgrader's export) with spreadsheet-safe cells."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    with open_for_writing(path, root, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([[spreadsheet_safe(v) for v in row] for row in rows])
    return Path(path)
