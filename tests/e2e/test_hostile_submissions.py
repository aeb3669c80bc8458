"""Hostile submissions against the grading pipeline (issue 12), bounded and local.

Each batch grades submissions that attack one class of weakness, next to an innocent
student graded before them, and asserts what every grading must guarantee:

* no points beyond what the answers earn;
* nothing hidden read: a canary file in source/ and a canary variable in the grader's
  environment appear in no output, log, report, gradebook or feedback;
* nothing outside the submission's own folders changed, and every other grade intact;
* the batch complete, a report row for every submission;
* no process left behind.

The isolation cases fail, not skip, under CI when bubblewrap is missing.
"""
import csv
import hashlib
import json
import os
import secrets
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from autograder import collect, course, grading, release, reports
from helpers import REPO, FIXTURE, appended_to_add, cell, make_course, sandbox_ready

pytestmark = pytest.mark.notebook

CANARY = f"CANARY-{secrets.token_hex(8)}"
MARKER = f"survivor-{secrets.token_hex(6)}"     # in the command line of every process a probe starts
CANARY_FILE = "hidden_canary.txt"              # in source/; holds CANARY, which no probe names
FULL = {"test_add": 1, "test_mean_of": 2}
# files of a course folder: none may be found anywhere inside the sandbox
# (names of this kit's own: nbgrader's package ships a gradebook.db of its tests)
COURSE_FILE_NAMES = {CANARY_FILE, "autograde.csv", "state.json.tmp", "lms_collector.py",
                     "bounded_execute.py", "01_simclr_ntxent.py", f"{FIXTURE}.ipynb"}

# Small limits, so that filling them is quick (each can be set in nbgrader_config.py).
TEST_LIMITS = """
c.Sandbox.tmp = 64 * 2**20
c.Sandbox.shm = 16 * 2**20
c.Sandbox.scratch = 32 * 2**20
c.Sandbox.processes = 64
c.Execute.timeout = 60
"""


def hostile_course(root: Path, assignment: str) -> Path:
    """A course with the canary in source/, small limits, and the release generated."""
    course_dir = make_course(root, assignment).resolve()
    (course_dir / "source" / CANARY_FILE).write_text(CANARY + "\n")
    with open(course_dir / "nbgrader_config.py", "a") as f:
        f.write(TEST_LIMITS)
    release.generate(course_dir, assignment)
    return course_dir


@pytest.fixture
def canary_env(monkeypatch):
    monkeypatch.setenv("SSL_COURSE_CANARY", CANARY)


def snapshot(course_dir: Path, own: set[str], assignment: str) -> dict[str, str]:
    """sha256 of every file of the course except the students' own folders and the files
    each grading rewrites (the gradebook, autograde.csv, state.json)."""
    rewritten = {"gradebook.db", f"reports/{assignment}/autograde.csv",
                 f"reports/{assignment}/state.json"}
    files = {}
    for path in sorted(course_dir.rglob("*")):
        relative = path.relative_to(course_dir).as_posix()
        parts = relative.split("/")
        if relative in rewritten or path.is_dir() and not path.is_symlink():
            continue
        if parts[0] in ("submitted", "autograded", "feedback") and len(parts) > 1 and parts[1] in own:
            continue
        if parts[0] == "reports" and len(parts) == 3 and parts[2].split(".")[0] in own:
            continue
        files[relative] = (f"link -> {os.readlink(path)}" if path.is_symlink()
                           else hashlib.sha256(path.read_bytes()).hexdigest())
    return files


def leaked(course_dir: Path, results: dict) -> list[str]:
    """Where the canary appears outside source/: files of the course, results."""
    found = [f"result of {s}" for s, r in results.items() if CANARY in repr(r) + r.log]
    for path in course_dir.rglob("*"):
        if path.is_file() and not path.is_symlink() and "source" not in path.relative_to(course_dir).parts:
            if CANARY.encode() in path.read_bytes():
                found.append(str(path))
    return found


def sandbox_processes() -> list[str]:
    """Command lines of live processes started by a grading: kernels, bwrap, probes."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                line = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (MARKER in line or "bwrap" in line or "/run/kernel/connection" in line):
            found.append(f"{pid}: {line[:200]}")
    return found


def grade(course_dir: Path, assignment: str, notebooks: dict[str, dict], workers: int = 2):
    """Write, collect and grade one notebook per student; student -> GradeResult."""
    folder = course_dir.parent / f"incoming-{secrets.token_hex(3)}"
    for student, notebook in notebooks.items():
        course.write_notebook(notebook, folder / f"{student}.ipynb")
    collected = collect.collect(course_dir, folder, assignment)
    assert sorted(collected) == sorted(notebooks), collected.skipped
    return {r.student: r for r in grading.autograde(course_dir, assignment, list(notebooks),
                                                   workers=workers, echo=lambda *_: None)}


def scores(course_dir: Path, assignment: str, student: str) -> dict:
    return {g: s for g, (s, _) in reports.exercise_scores(course_dir, assignment, student).items()}


def report_rows(course_dir: Path, assignment: str) -> dict[str, dict]:
    with open(course_dir / "reports" / assignment / "autograde.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def master(course_dir: Path, assignment: str) -> dict:
    return course.read_notebook(course.master_notebooks(course_dir, assignment)[0])


def edited(course_dir: Path, edit) -> dict:
    notebook = master(course_dir, FIXTURE)
    edit(notebook["cells"])
    return notebook


def graded_outputs(course_dir: Path, assignment: str, student: str) -> str:
    [path] = (course_dir / "autograded" / student / assignment).glob("*.ipynb")
    notebook = course.read_notebook(path)
    return json.dumps([c.get("outputs", []) for c in notebook["cells"]])


def seen(course_dir: Path, assignment: str, student: str) -> dict:
    """What a probe printed on its 'SEEN {json}' line."""
    [path] = (course_dir / "autograded" / student / assignment).glob("*.ipynb")
    for c in course.read_notebook(path)["cells"]:
        for o in c.get("outputs", []):
            for line in "".join(o.get("text", "")).splitlines():
                if line.startswith("SEEN "):
                    return json.loads(line[5:])
    raise AssertionError(f"{student}: the probe printed nothing")


def check_filled(course_dir: Path, assignment: str) -> None:
    """What r_fill / l_fill wrote before it was refused: at most each folder's size."""
    written = seen(course_dir, assignment, [s for s in ("l_fill", "r_fill")
                                            if (course_dir / "autograded" / s).is_dir()][0])
    for folder, limit in (("/tmp", 64), ("/dev/shm", 16), (".", 32)):
        assert written[folder] <= limit * 2**20, (folder, written)
        assert written.get(folder + " error") == 28, written              # ENOSPC


def assert_only_the_way_to_the_kernel(folder: str, value) -> None:
    """``value`` (what a probe saw of ``folder``) is an error, or only the names that lead
    to what the kernel runs on: the interpreter, the environment, course_utils."""
    import course_utils
    if isinstance(value, str):
        assert value.endswith("Error"), (folder, value)
        return
    shown = [sys.prefix, sys.base_prefix, str(Path(course_utils.__file__).parent)]
    allowed = {Path(p).relative_to(folder).parts[0] for p in shown
               if Path(p).is_relative_to(folder) and p != folder}
    assert set(value) <= allowed, (folder, value, allowed)


def check_reached_nothing(course_dir: Path, assignment: str) -> None:
    """What r_proc and r_paths saw: no host process, no path of the course, the repository
    or the grader's home, an environment of the sandbox's own."""
    proc = seen(course_dir, assignment, "r_proc")
    assert len(proc["pids"]) < 10, proc["pids"]                   # its own PID namespace
    assert not any(k.startswith("WROTE") for k in proc)
    assert not (course_dir / "reports" / "pwned").exists()
    reached = {k: v for k, v in proc.items() if "/source" in k or k.endswith("/root/root")}
    for key, value in reached.items():
        assert_only_the_way_to_the_kernel("/root" if key.endswith("/root/root") else key, value)
    paths = seen(course_dir, assignment, "r_paths")
    assert paths["environ"].get("HOME") == "/home/student"
    assert not any("CANARY" in k for k in paths["environ"])
    for target, value in paths.items():
        if target not in ("environ", "found"):
            assert_only_the_way_to_the_kernel(target, value)
    assert paths["found"] == []


class Guarded:
    """Runs a batch between the checks every hostile batch must pass."""

    def __init__(self, course_dir: Path, assignment: str, innocent_scores: dict):
        self.course_dir, self.assignment = course_dir, assignment
        self.innocent = innocent_scores

    def run(self, notebooks: dict[str, dict], workers: int = 2) -> dict:
        before = snapshot(self.course_dir, set(notebooks), self.assignment)
        results = grade(self.course_dir, self.assignment, notebooks, workers)
        assert sorted(results) == sorted(notebooks)
        assert set(report_rows(self.course_dir, self.assignment)) >= set(notebooks) | {"innocent"}
        after = snapshot(self.course_dir, set(notebooks), self.assignment)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        assert changed == [], f"changed outside the submissions' own folders: {changed}"
        assert scores(self.course_dir, self.assignment, "innocent") == self.innocent
        assert leaked(self.course_dir, results) == []
        assert sandbox_processes() == []
        return results


def guarded_course(root: Path, assignment: str) -> Guarded:
    course_dir = hostile_course(root, assignment)
    results = grade(course_dir, assignment, {"innocent": master(course_dir, assignment)}, 1)
    assert results["innocent"].ok, results["innocent"].reason
    return Guarded(course_dir, assignment, scores(course_dir, assignment, "innocent"))


# --------------------------------------------------------------------------------------
# probes: code appended to an answer; each prints what it reached
# --------------------------------------------------------------------------------------

def probe_host_proc(course_dir: Path) -> str:
    """Every /proc entry's root, cwd and environ: the host's filesystem and variables."""
    return f"""
import os, glob, json
seen = {{'pids': sorted(p for p in os.listdir('/proc') if p.isdigit())}}
for d in glob.glob('/proc/[0-9]*'):
    for sub in ('root{course_dir}/source', 'cwd', 'root/root', 'root/proc/1/environ'):
        try:
            seen[d + '/' + sub] = os.listdir(d + '/' + sub) if 'environ' not in sub else open(d + '/' + sub).read()
        except Exception as e:
            seen[d + '/' + sub] = type(e).__name__
    try:
        seen[d + '/environ'] = open(d + '/environ', 'rb').read().decode(errors='replace')
    except Exception as e:
        seen[d + '/environ'] = type(e).__name__
    for target in ('{course_dir}/reports/pwned', '{course_dir}/gradebook.db'):
        try:
            open(d + '/root' + target, 'a').write('pwned')
            seen['WROTE ' + d + target] = True
        except Exception:
            pass
print('SEEN ' + json.dumps(seen, default=str))
"""


def probe_paths(course_dir: Path) -> str:
    """Direct paths: the canary, the masters, this repository, the grader's HOME,
    the environment; then every file name under / (but /proc, /sys)."""
    targets = [str(course_dir / "source" / CANARY_FILE), str(course_dir / "source"),
               str(REPO / "autograder" / "source"), str(REPO / "autograder" / "demo_submissions"),
               str(REPO), os.path.expanduser("~"), str(course_dir / "submitted"), "/root"]
    return f"""
import os, json
seen = {{'environ': dict(os.environ)}}
for t in {targets!r}:
    try:
        seen[t] = os.listdir(t) if os.path.isdir(t) else open(t).read()
    except Exception as e:
        seen[t] = type(e).__name__
names, count = [], 0
for folder, dirs, files in os.walk('/'):
    if folder in ('/proc', '/sys'):
        dirs[:] = []
        continue
    count += len(files)
    names += [os.path.join(folder, n) for n in files if n in {sorted(COURSE_FILE_NAMES)!r}]
    if count > 200_000:
        break
seen['found'] = names
print('SEEN ' + json.dumps(seen, default=str))
"""


def probe_survivor() -> str:
    """Processes in new sessions and double forks that wait for grading to end, then write."""
    return f"""
import os, subprocess, sys, time
code = "import time\\n# {MARKER}\\nfor _ in range(120):\\n    time.sleep(0.5)\\n"
subprocess.Popen([sys.executable, '-c', code], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, '-c', code])
    os._exit(0)
time.sleep(0.5)
"""


def probe_fill() -> str:
    """Write until refused in /tmp, /dev/shm and the working folder; print the totals."""
    return """
import os, json
written = {}
for folder in ('/tmp', '/dev/shm', '.'):
    total, chunk = 0, b'x' * 2**20
    try:
        with open(os.path.join(folder, 'fill.bin'), 'wb') as f:
            while total < 1024 * 2**20:
                f.write(chunk)
                f.flush()
                total += len(chunk)
    except OSError as e:
        written[folder + ' error'] = e.errno
    written[folder] = total
print('SEEN ' + json.dumps(written))
"""


def probe_outputs() -> str:
    """60 MB of HTML, a 60 MB line and a million small outputs."""
    return """
from IPython.display import display
display({'text/html': '<b>x</b>' * 7_500_000}, raw=True)
print('y' * 60_000_000)
for i in range(20_000):
    display({'text/plain': str(i)}, raw=True)
"""


# --------------------------------------------------------------------------------------
# the fixture
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixture_guard(tmp_path_factory):
    ok, why = sandbox_ready()
    if not ok:
        pytest.skip(f"no isolation here: {why}")
    return guarded_course(tmp_path_factory.mktemp("hostile") / "course", FIXTURE)


def test_the_kernel_reaches_nothing_of_the_host(fixture_guard, canary_env):
    course_dir = fixture_guard.course_dir
    probes = {"r_proc": probe_host_proc(course_dir), "r_paths": probe_paths(course_dir),
              "r_survivor": probe_survivor()}
    results = fixture_guard.run({s: edited(course_dir, appended_to_add(code))
                                 for s, code in probes.items()})
    for student in probes:
        assert results[student].ok and results[student].isolated, results[student].reason
        assert scores(course_dir, FIXTURE, student) == FULL, student
    check_reached_nothing(course_dir, FIXTURE)


def test_limits_count_everything(fixture_guard, canary_env):
    """tmpfs and the working folder stop at their sizes; nothing is left behind; outputs
    are cut in the graded notebook and the feedback; memory stops at the limit."""
    course_dir = fixture_guard.course_dir
    probes = {"l_fill": probe_fill(), "l_outputs": probe_outputs(),
              "l_memory": "hog = bytearray(40 * 2**30)"}
    results = fixture_guard.run({s: edited(course_dir, appended_to_add(code))
                                 for s, code in probes.items()})
    for student in probes:
        assert results[student].ok, (student, results[student].reason)
        assert scores(course_dir, FIXTURE, student) == FULL, student
    check_filled(course_dir, FIXTURE)
    assert "MemoryError" in graded_outputs(course_dir, FIXTURE, "l_memory")
    for student in probes:
        folder = course_dir / "autograded" / student
        assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 10 * 2**20
    [notebook] = (course_dir / "autograded" / "l_outputs" / FIXTURE).glob("*.ipynb")
    assert notebook.stat().st_size < 10 * 2**20
    assert "output cut by the grader" in notebook.read_text()
    folder, refused = reports.feedback(course_dir, FIXTURE)
    assert refused == {}
    html = folder / "l_outputs" / FIXTURE / f"{FIXTURE}.html"
    assert html.stat().st_size < 12 * 2**20


def test_links_in_the_grader_folders_are_refused(fixture_guard, canary_env):
    """Links or special files where nbgrader writes (left by anything on the machine):
    that submission is refused with the reason, nothing is written through them."""
    course_dir = fixture_guard.course_dir
    gradebook = course_dir / "gradebook.db"
    notebooks = {s: master(course_dir, FIXTURE) for s in
                 ("k_autograded", "k_feedback", "k_submitted", "k_hardlink", "k_honest", "k_late")}
    before = snapshot(course_dir, set(notebooks), FIXTURE)
    folder = course_dir.parent / "links"
    for student, nb in notebooks.items():
        course.write_notebook(nb, folder / f"{student}.ipynb")
    collect.collect(course_dir, folder, FIXTURE)
    (course_dir / "autograded").mkdir(exist_ok=True)
    (course_dir / "autograded" / "k_autograded").symlink_to(course_dir / "submitted" / "innocent")
    (course_dir / "feedback" / "k_feedback" / FIXTURE).mkdir(parents=True)
    (course_dir / "feedback" / "k_feedback" / FIXTURE / f"{FIXTURE}.html").symlink_to(gradebook)
    (course_dir / "submitted" / "k_submitted" / FIXTURE / "extra").symlink_to(course_dir / "source")
    os.link(course_dir / "source" / CANARY_FILE,
            course_dir / "submitted" / "k_hardlink" / FIXTURE / "notes.txt")
    results = {r.student: r for r in grading.autograde(course_dir, FIXTURE, list(notebooks),
                                                      workers=2, echo=lambda *_: None)}
    for student in ("k_autograded", "k_feedback", "k_submitted", "k_hardlink"):
        assert not results[student].ok and "refused" in results[student].reason, student
    assert "hard link" in results["k_hardlink"].reason
    assert results["k_honest"].ok and results["k_honest"].score == 3
    rows = report_rows(course_dir, FIXTURE)
    assert rows["k_autograded"]["status"] == "failed" and "link" in rows["k_autograded"]["reason"]
    after = snapshot(course_dir, set(notebooks), FIXTURE)
    assert sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)) == []
    assert scores(course_dir, FIXTURE, "innocent") == fixture_guard.innocent
    assert gradebook.read_bytes()[:15] == b"SQLite format 3"
    # a link left in a graded student's feedback folder after grading: no feedback for
    # that student, none written through the link, the others get theirs
    assert results["k_late"].ok
    late = course_dir / "feedback" / "k_late" / FIXTURE / f"{FIXTURE}.html"
    late.parent.mkdir(parents=True, exist_ok=True)
    late.unlink(missing_ok=True)
    late.symlink_to(gradebook)
    folder, refused = reports.feedback(course_dir, FIXTURE)
    assert "k_late" in refused and "link" in refused["k_late"], refused
    assert "k_autograded" in refused
    assert (folder / "k_honest" / FIXTURE / f"{FIXTURE}.html").is_file()
    assert gradebook.read_bytes()[:15] == b"SQLite format 3"
    assert scores(course_dir, FIXTURE, "innocent") == fixture_guard.innocent
    late.unlink()
    (course_dir / "autograded" / "k_autograded").unlink()          # tidy for later tests
    shutil.rmtree(course_dir / "feedback" / "k_feedback")
    shutil.rmtree(course_dir / "submitted" / "k_hardlink")


# --------------------------------------------------------------------------------------
# input: malformed notebooks, names and archives
# --------------------------------------------------------------------------------------

def malformed_files(course_dir: Path) -> dict[str, bytes]:
    nb = master(course_dir, FIXTURE)

    def dumped(notebook):
        return json.dumps(notebook).encode()

    null_metadata = json.loads(json.dumps(nb))
    null_metadata["metadata"] = None
    null_metadata["cells"][1]["metadata"] = None
    big_outputs = json.loads(json.dumps(nb))
    big_outputs["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout",
                                           "text": "z" * 25 * 2**20}]
    some_outputs = json.loads(json.dumps(nb))
    some_outputs["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout",
                                            "text": "z" * 5 * 2**20}]
    many_cells = dict(nb, cells=[{"cell_type": "markdown", "metadata": {}, "source": "x"}] * 10_000)
    return {
        "m_list": b"[]", "m_not_json": b'{"cells": [', "m_not_utf8": b"\xff\xfe{}\x00",
        "m_nested": b"[" * 100_000 + b"]" * 100_000,
        "m_nbformat3": dumped(dict(nb, nbformat=3)),
        "m_cells_not_objects": dumped(dict(nb, cells=[1, 2, 3])),
        "m_cells_null": dumped(dict(nb, cells=None)),
        "m_many_cells": dumped(many_cells), "m_big_outputs": dumped(big_outputs),
        "m_null_metadata": dumped(null_metadata), "m_some_outputs": dumped(some_outputs),
        "m_zz_good": dumped(nb),
    }


def test_malformed_notebooks_fail_alone(fixture_guard, canary_env):
    """Each malformed file fails its own submission with the reason; the batch and the
    report are complete; a notebook that can be normalised is graded in full."""
    course_dir = fixture_guard.course_dir
    files = malformed_files(course_dir)
    # m_list had a graded submission before: its grade must not outlive the broken one
    grade(course_dir, FIXTURE, {"m_list": master(course_dir, FIXTURE)})
    assert scores(course_dir, FIXTURE, "m_list") == FULL
    before = snapshot(course_dir, set(files), FIXTURE)
    for student, data in files.items():
        target = course_dir / "submitted" / student / FIXTURE / f"{FIXTURE}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    results = {r.student: r for r in grading.autograde(course_dir, FIXTURE, list(files),
                                                      workers=2, echo=lambda *_: None)}
    assert sorted(results) == sorted(files)
    reasons = {s: r.reason for s, r in results.items()}
    expected = {"m_list": "JSON list", "m_not_json": "not valid JSON", "m_not_utf8": "UTF-8",
                "m_nested": "JSON", "m_nbformat3": "nbformat 3",
                "m_cells_not_objects": "cell 0 is not an object", "m_cells_null": "no list of cells",
                "m_many_cells": "10,000 cells", "m_big_outputs": "over the limit"}
    for student, words in expected.items():
        assert not results[student].ok and words in reasons[student], (student, reasons[student])
    for student in ("m_null_metadata", "m_some_outputs", "m_zz_good"):
        assert results[student].ok, (student, reasons[student])
        assert scores(course_dir, FIXTURE, student) == FULL, student
    assert any("emptied" in n for n in results["m_null_metadata"].notes)
    rows = report_rows(course_dir, FIXTURE)
    assert all(rows[s]["status"] == ("ok" if results[s].ok else "failed") for s in files)
    from nbgrader.api import MissingEntry
    with course.gradebook(course_dir) as gb:                     # the old grade is gone
        with pytest.raises(MissingEntry):
            gb.find_submission(FIXTURE, "m_list")
    assert "m_list" not in grading.load_state(course_dir, FIXTURE)
    after = snapshot(course_dir, set(files), FIXTURE)
    assert sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)) == []
    assert scores(course_dir, FIXTURE, "innocent") == fixture_guard.innocent
    assert sandbox_processes() == []


def zip_with(path: Path, entries: dict[str, bytes], links: dict[str, str] = {}) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
        for name, target in links.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16                   # a symbolic link
            z.writestr(info, target)
    return path


def test_collect_zip_checks_names_sizes_and_counts(tmp_path):
    course_dir = make_course(tmp_path / "course", FIXTURE)
    with open(course_dir / "nbgrader_config.py", "a") as f:
        f.write("c.SafeExtractor.max_entries = 50\n"
                "c.SafeExtractor.max_entry_bytes = 2 * 2**20\n"
                "c.SafeExtractor.max_total_bytes = 40 * 2**20\n")
    release.generate(course_dir, FIXTURE)
    blank = (course_dir / "release" / FIXTURE / f"{FIXTURE}.ipynb").read_bytes()
    inner = zip_with(tmp_path / "inner.zip", {"nested_x.ipynb": blank})
    archive = zip_with(tmp_path / "lms.zip", {
        "alice_x.ipynb": blank, "../evil_x.ipynb": blank, "/abs_x.ipynb": blank,
        "=1+2_x.ipynb": blank, "big_x.ipynb": b" " * 3 * 2**20, "inner.zip": inner.read_bytes(),
        "folder/bob_x.ipynb": blank}, links={"link_x.ipynb": "/etc/passwd"})
    collected = collect.collect(course_dir, archive, FIXTURE)
    assert sorted(collected) == ["alice", "bob"], collected
    skipped = " ".join(f"{a}: {b}" for a, b in collected.skipped)
    for name in ("evil", "abs_x", "=1+2", "big_x", "inner.zip", "link_x"):
        assert name in skipped, (name, skipped)
    assert not list(tmp_path.rglob("evil_x.ipynb")) and not list(tmp_path.rglob("abs_x.ipynb"))
    assert not any("=" in p.name for p in (course_dir / "submitted").iterdir())

    bomb = zip_with(tmp_path / "bomb.zip", {f"s{i}_x.ipynb": b"\0" * 10 * 2**20 for i in range(5)})
    with pytest.raises(course.CourseError, match="unpack to"):
        collect.collect(course_dir, bomb, FIXTURE)
    crowd = zip_with(tmp_path / "crowd.zip", {f"s{i}_x.ipynb": blank for i in range(60)})
    with pytest.raises(course.CourseError, match="entries"):
        collect.collect(course_dir, crowd, FIXTURE)
    assert not (course_dir / "submitted" / "s0").exists()


# --------------------------------------------------------------------------------------
# an honest report
# --------------------------------------------------------------------------------------

def test_report_is_honest(fixture_guard, canary_env):
    """No 'edited' note for an unmodified release; one for a real edit of a test cell; a
    manual score and a grade changed without a grading run are shown."""
    course_dir = fixture_guard.course_dir
    released = course.read_notebook(course_dir / "release" / FIXTURE / f"{FIXTURE}.ipynb")

    def tests_edited(cells):
        cell(cells, "test_add")["source"] = "assert True\n"


    answered = json.loads(json.dumps(released))
    answers = {c["metadata"]["nbgrader"]["grade_id"]: c["source"]
               for c in master(course_dir, FIXTURE)["cells"]
               if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    for c in answered["cells"]:
        grade_id = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        c["source"] = answers.get(grade_id, c["source"])
    tests_edited(answered["cells"])
    notebooks = {"e_release": released, "e_edited": answered,
                 "e_manual": master(course_dir, FIXTURE), "e_changed": master(course_dir, FIXTURE)}
    results = fixture_guard.run(notebooks)
    assert not any("edited" in n for n in results["e_release"].notes), results["e_release"].notes
    assert [n for n in results["e_edited"].notes if "edited" in n] == [
        "cell test_add was edited; the release's was used"]
    assert results["e_edited"].score == 3

    with course.gradebook(course_dir) as gb:
        gb.find_grade("test_add", FIXTURE, FIXTURE, "e_manual").manual_score = 0.5
        gb.find_grade("test_mean_of", FIXTURE, FIXTURE, "e_changed").auto_score = 0
        gb.db.commit()
    lines = []
    grade_next = {"e_next": master(course_dir, FIXTURE)}
    folder = course_dir.parent / "next"
    course.write_notebook(grade_next["e_next"], folder / "e_next.ipynb")
    collect.collect(course_dir, folder, FIXTURE)
    grading.autograde(course_dir, FIXTURE, ["e_next"], echo=lines.append)
    rows = report_rows(course_dir, FIXTURE)
    assert "manual score 0.5 on test_add" in rows["e_manual"]["gradebook"]
    assert "test_mean_of holds 0, graded 2" in rows["e_changed"]["gradebook"]
    assert rows["e_next"]["gradebook"] == "" and rows["innocent"]["gradebook"] == ""
    assert any("e_manual" in line and "manual score" in line for line in lines)


def test_every_csv_cell_is_spreadsheet_safe(fixture_guard):
    course_dir = fixture_guard.course_dir
    with course.gradebook(course_dir) as gb:
        gb.update_or_create_student("innocent", first_name="=HYPERLINK(\"http://x\")",
                                    last_name="+SUM(1)")
    grades = reports.export(course_dir, course_dir.parent / "grades.csv")
    text = grades.read_text()
    assert "=HYPERLINK" in text and ",=HYPERLINK" not in text and ",+SUM" not in text
    rows = list(csv.DictReader(grades.open()))
    assert all(not str(v).startswith(("=", "+", "@")) for row in rows for v in row.values())


# --------------------------------------------------------------------------------------
# notebook 01: the same attacks on a real assignment
# --------------------------------------------------------------------------------------

def test_notebook_01_under_attack(tmp_path, canary_env):
    ok, why = sandbox_ready()
    if not ok:
        pytest.skip(f"no isolation here: {why}")
    assignment = "01_simclr_ntxent"
    guard = guarded_course(tmp_path / "course", assignment)
    course_dir = guard.course_dir

    def with_probe(code):
        notebook = master(course_dir, assignment)
        first = next(c for c in notebook["cells"]
                     if c.get("metadata", {}).get("nbgrader", {}).get("solution"))
        first["source"] = "".join(first["source"]) + "\n" + code + "\n"
        return notebook

    probes = {"r_proc": probe_host_proc(course_dir), "r_paths": probe_paths(course_dir),
              "r_survivor": probe_survivor(), "r_fill": probe_fill()}
    results = guard.run({s: with_probe(code) for s, code in probes.items()})
    for student in probes:
        assert results[student].ok and results[student].isolated, results[student].reason
        assert scores(course_dir, assignment, student) == guard.innocent, student
    check_reached_nothing(course_dir, assignment)
    check_filled(course_dir, assignment)
