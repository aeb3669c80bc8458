"""nbgrader configuration of the course: the course directory is the folder of this file.

Read by the `nbgrader` command when it runs in this folder, and loaded explicitly by
`python -m autograder` (nbgrader's Python API does not read it by itself).

    source/<assignment>/<notebook>.ipynb     masters (solutions, hidden tests)
    release/<assignment>/                    student versions (generate_assignment)
    submitted/<student>/<assignment>/        collected submissions (python -m autograder collect)
    autograded/, feedback/                   nbgrader's output
    gradebook.db                             the grades (sqlite)
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)

# --- where things live ---------------------------------------------------------------
c.CourseDirectory.root = HERE
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(HERE, "gradebook.db")
c.CourseDirectory.course_id = "ssl-course-kit"

# Assignments and students are created in the gradebook on the fly (by generate_assignment
# and autograde), so nothing has to be registered by hand first.
c.GenerateAssignment.create_assignment = True
c.Autograde.create_student = True

# --- the student version -----------------------------------------------------------------
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# --- autograding ---------------------------------------------------------------------
# Per cell: a cell that runs longer is interrupted and scores 0; the next cells still run.
# Training cells run at their smallest scale while grading (course_utils.runtime: grading).
c.Execute.timeout = int(os.environ.get("COURSE_CELL_TIMEOUT", "120"))   # seconds
# No test in the kernel decides a grade (the trusted grader, graders/<assignment>.py, does):
# its run gives the outputs the feedback shows.
c.Execute.interrupt_on_timeout = True
# After a cell's reply, how long its remaining outputs may take to arrive; past it the cell
# keeps what came and the next cell runs. nbgrader would fail the whole submission instead
# (raise_on_iopub_timeout): a flood of output (120 MB and 20,000 displays in the hostile
# suite) took over 30 s to arrive on a busy machine and failed its submission. The outputs
# are only for feedback: no grade comes from them.
c.Execute.iopub_timeout = 10
c.Execute.raise_on_iopub_timeout = False

# --- limits of a grading run: each can be changed here (autograder/README.md lists them) --
# Execution with bounded outputs (bounded_execute.py): one output, one cell's outputs and
# the notebook's are cut at these sizes (characters), each kernel message at
# max_message_bytes; widget state is not kept. (Settings of Execute apply to it too.)
c.Autograde.autograde_preprocessors = [
    "bounded_execute.BoundedExecute", "bounded_execute.ResultsAsDisplays",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor", "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades", "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata"]
c.BoundedExecute.max_output_bytes = 1_000_000
c.BoundedExecute.max_cell_bytes = 2_000_000
c.BoundedExecute.max_notebook_bytes = 8_000_000
c.BoundedExecute.max_message_bytes = 256 * 2**20
c.LimitOutput.max_lines = 1000
# One submission (python -m autograder autograde): the time for all of it, the notebook file's size
# and cell count (a larger one fails with its reason, the batch goes on).
c.Grading.submission_timeout = 900                  # seconds
c.Grading.max_notebook_bytes = 20 * 2**20
c.Grading.max_cells = 2000
# Trusted scoring (scoring.py): where graders/<assignment>.py exists, its properties, checked
# outside the kernel, decide each graded cell's points; one call of student code may take
# call_timeout seconds. Without a grader module nbgrader's hidden tests decide, as before.
c.Grading.graders_dir = os.path.join(HERE, "graders")
c.Grading.call_timeout = 60
# The sandbox of the grading kernel (sandbox.py): address space per process and, where a
# cgroup can be made, memory of all its processes with their tmpfs; the sizes of its only
# writable places (working folder, /tmp, /dev/shm); processes at once.
c.Sandbox.memory = 6 * 2**30
c.Sandbox.scratch = 256 * 2**20
c.Sandbox.tmp = 512 * 2**20
c.Sandbox.shm = 64 * 2**20
c.Sandbox.processes = 128

# Colab ignores `deletable: false`: a deleted test cell is put back from the gradebook.
c.OverwriteCells.add_missing_cells = True

# A test cell scores 0 when it writes anything to stderr. Drop the stderr outputs that
# are known noise (warnings, progress bars), so a correct answer keeps its points.
IGNORED_STDERR = "(?m)" + "|".join([   # (?m): '^' matches at every line
    r"\w*Warning: ",             # 'file.py:12: UserWarning: ...' (warnings.warn)
    r"^\s*warnings\.warn\(",     # the source line Python prints under a warning
    r"\d+%\|",                   # tqdm: ' 40%|####      | 4/10 [00:01<00:02, ...]'
    r"\d+it \[\d",               # tqdm without a total: '12it [00:01, 9.1it/s]'
])
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = IGNORED_STDERR

# --- collecting an LMS zip (nbgrader zip_collect) -----------------------------------------
# Files named '<student>_<anything>.ipynb' (student ids without '_'), e.g. Canvas's
# 'doejohn_12345_67890_01_simclr_ntxent.ipynb' or 'alice_Copy of 01_simclr_ntxent.ipynb'.
# nbgrader matches the regexp against the file's full path, hence the leading '.*/'.
# AnyNameCollector files each one under the assignment's notebook name.
if HERE not in sys.path:
    sys.path.insert(0, HERE)
from lms_collector import AnyNameCollector, SafeExtractor  # noqa: E402

c.ZipCollectApp.collector_plugin = AnyNameCollector
# Extraction that takes only notebooks, within these limits (lms_collector.SafeExtractor).
c.ZipCollectApp.extractor_plugin = SafeExtractor
c.SafeExtractor.max_entries = 5000
c.SafeExtractor.max_entry_bytes = c.Grading.max_notebook_bytes
c.SafeExtractor.max_total_bytes = 2 * 2**30
c.FileNameCollectorPlugin.named_regexp = r".*/(?P<student_id>[^/_]+)_(?P<file_id>[^/]+)\.ipynb$"
