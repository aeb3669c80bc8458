"""collect: submissions from a folder or an LMS zip into submitted/<student>/<assignment>/,
taking only what is safe to take and listing what was skipped, with the reason."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .course import (
    CourseError, grading_settings, load_config, master_notebooks, nbgrader_command,
    pick_assignments, source_assignments, tool_env)
from .release import released_notebook_names


class Collected(dict):
    """student -> collected notebook; ``skipped`` lists (what, why) for what was not taken."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped: list[tuple[str, str]] = []


def folder_submissions(folder: Path) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """((student, notebook) pairs, skipped) of a folder: '<student>.ipynb' or
    '<student>/<any>.ipynb'. Links, special files, deeper paths, unusable ids and
    students with several notebooks are skipped with a reason."""
    from . import safe_files
    pairs, skipped = [], []
    for path in sorted(Path(folder).rglob("*.ipynb")):
        relative = path.relative_to(folder)
        if ".ipynb_checkpoints" in relative.parts:
            continue
        if any(os.path.islink(Path(folder).joinpath(*relative.parts[:i + 1]))
               for i in range(len(relative.parts))):
            skipped.append((str(relative), "a symbolic link (not followed)"))
            continue
        if len(relative.parts) > 2:
            skipped.append((str(relative), "expected <student>.ipynb or <student>/<notebook>.ipynb"))
            continue
        student = path.stem if len(relative.parts) == 1 else relative.parts[0]
        problem = safe_files.student_id_problem(student)
        if problem:
            skipped.append((str(relative), problem))
            continue
        pairs.append((student, path))
    students = [s for s, _ in pairs]
    for student in sorted({s for s in students if students.count(s) > 1}):
        skipped += [(str(p.relative_to(folder)), f"{student} has several notebooks")
                    for s, p in pairs if s == student]
        pairs = [(s, p) for s, p in pairs if s != student]
    return pairs, skipped


def store_submission(course_dir: Path, student: str, assignment: str, notebook: str,
                     data: bytes) -> Path:
    """Write one submitted notebook to submitted/<student>/<assignment>/<notebook>, through
    real folders only, replacing what was collected for that student before."""
    from . import safe_files
    submitted = Path(course_dir) / "submitted"
    folder = submitted / student / assignment
    problems = safe_files.tree_problems(submitted, Path(student))
    if problems:
        raise safe_files.UnsafePath("; ".join(problems))
    if folder.is_dir():
        shutil.rmtree(folder)
    target = folder / notebook
    with safe_files.open_for_writing(target, submitted, "wb") as f:
        f.write(data)
    return target


def collect_folder(course_dir: Path, folder: Path, assignment: str) -> Collected:
    """Copy a folder of submissions into submitted/<student>/<assignment>/<notebook>.ipynb
    (the originals are never modified); what cannot be taken is skipped and listed."""
    from . import safe_files
    notebooks = released_notebook_names(course_dir, assignment)
    if len(notebooks) != 1:
        raise CourseError(f"{assignment} has {len(notebooks)} notebooks: collect them with zip_collect")
    limit = grading_settings(course_dir).intake.max_bytes
    pairs, skipped = folder_submissions(folder)
    collected = Collected()
    collected.skipped = skipped
    for student, path in pairs:
        try:
            data = safe_files.read_regular(path, limit)
            collected[student] = store_submission(course_dir, student, assignment, notebooks[0], data)
        except (safe_files.UnsafePath, OSError) as error:
            collected.skipped.append((str(path.relative_to(folder)), str(error)))
    return collected


def check_archive(archive: Path, limits) -> None:
    """Refuse an archive that is not a zip, or that holds too many entries or would
    unpack to too much, before anything is extracted."""
    import zipfile
    if not zipfile.is_zipfile(archive):
        raise CourseError(f"{archive} is not a zip archive")
    with zipfile.ZipFile(archive) as z:
        entries = z.infolist()
    if len(entries) > limits.max_entries:
        raise CourseError(f"{archive} holds {len(entries):,} entries, over the limit of "
                          f"{limits.max_entries:,} (SafeExtractor.max_entries)")
    total = sum(e.file_size for e in entries)
    if total > limits.max_total_bytes:
        raise CourseError(f"{archive} would unpack to {total:,} bytes, over the limit of "
                          f"{limits.max_total_bytes:,} (SafeExtractor.max_total_bytes)")


def tree_links(folder: Path) -> list[str]:
    from . import safe_files
    return safe_files.tree_problems(folder.parent, folder.name) if folder.exists() else []


def collect_zip(course_dir: Path, archive: Path, assignment: str) -> Collected:
    """nbgrader zip_collect on an LMS download ('<student>_<anything>.ipynb' inside); the
    extraction (lms_collector.SafeExtractor) takes only notebooks within the limits and
    the collector only usable student ids: everything else is skipped and listed."""
    from . import lms_collector
    released_notebook_names(course_dir, assignment)  # the collector maps names onto these
    check_archive(archive, lms_collector.SafeExtractor(config=load_config(course_dir)))
    links = tree_links(Path(course_dir) / "submitted")
    if links:
        raise CourseError("nbgrader would write through links in submitted/: "
                          + "; ".join(links) + " (remove them first)")
    archive_dir = Path(course_dir) / "downloaded" / assignment / "archive"
    if archive_dir.exists():
        shutil.rmtree(archive_dir)
    archive_dir.mkdir(parents=True)
    shutil.copyfile(archive, archive_dir / Path(archive).name)
    run = subprocess.run(nbgrader_command("zip_collect", assignment, "--force"),
                         cwd=course_dir, env=tool_env(), capture_output=True, text=True)
    log = run.stdout + run.stderr
    if run.returncode != 0:
        raise CourseError(f"nbgrader zip_collect {assignment} failed:\n{log}")
    collected = Collected()
    for line in log.splitlines():
        found = re.search(r"Copying to: (.*)$", line)
        if found and "/submitted/" in found.group(1):
            target = Path(found.group(1).strip())
            collected[target.parent.parent.name] = target
        skipped = re.search(r"Skipped (.*?): (.*)$", line)
        if skipped:
            collected.skipped.append((skipped.group(1), skipped.group(2)))
        elif "did not match" in line:
            collected.skipped.append((line.strip(), "its name does not match <student>_<anything>.ipynb"))
    return collected


def guess_assignment(course_dir: Path, source: Path) -> str:
    known = source_assignments(course_dir)
    names = {nb.stem: a for a in known for nb in master_notebooks(course_dir, a)}
    hits = {a for stem, a in names.items() if stem in str(source)}
    if len(hits) == 1:
        return hits.pop()
    if len(known) == 1:
        return known[0]
    raise CourseError(f"which assignment is {source}? say it with --assignment (one of {known})")


def collect(course_dir: Path, source: Path, assignment: str | None = None) -> Collected:
    source = Path(source)
    if not source.exists():
        raise CourseError(f"{source} does not exist")
    assignment = assignment or guess_assignment(course_dir, source)
    pick_assignments(course_dir, assignment)
    if source.is_dir():
        return collect_folder(course_dir, source, assignment)
    if source.suffix in (".zip", ".gz"):
        return collect_zip(course_dir, source, assignment)
    raise CourseError(f"{source}: expected a folder of .ipynb files or a .zip")
