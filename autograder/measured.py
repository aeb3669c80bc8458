"""The measured figures of the README and the notebooks, generated from benchmarks/results/.

Each record there (one run, written by a benchmark: see benchmarks/records.py) becomes a
table of its figures with its provenance. A master's markdown cell tagged ``measured``
holds the tables of that notebook's records; the README holds all of them between
:data:`BEGIN` and :data:`END`. ``release`` writes both before it generates the student
versions, and ``check-release`` (and a test) fails when either differs from what the
records give: no figure in these tables is typed by hand.
"""
from __future__ import annotations

import json
from pathlib import Path

from .course import REPO_DIR, all_masters, read_notebook, replace_between, write_notebook

RESULTS_DIR = REPO_DIR / "benchmarks" / "results"
README = REPO_DIR / "README.md"
TAG = "measured"
BEGIN = "<!-- measured figures: generated from benchmarks/results/ by `python -m autograder release` -->"
END = "<!-- end of the measured figures -->"
# Column headings of the figures whose record key is short (the rest are their own heading).
HEADINGS = {"knn": "kNN", "linear": "linear probe", "miou": "promptable decoder, mean IoU"}
NOT_FIGURES = {"notebook", "mode", "hardware", "dataset", "training_minutes",
               "notebook_minutes", "spread", "runs", "command", "commit", "date", "seeds",
               "title", "note", "device", "seconds", "file", "epochs"}


def load_records(results_dir: Path = RESULTS_DIR) -> list[dict]:
    """Every record, in file-name order, each with its file name as ``file``."""
    records = []
    for path in sorted(Path(results_dir).glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        record["file"] = path.name
        records.append(record)
    return records


NUMBERS = ("loss", "entropy", "KL")     # figures shown as numbers; the rest are fractions


def _fmt(figure: str, value: float) -> str:
    """Losses, entropies and divergences as numbers; accuracies and shares as percent."""
    return f"{value:.3f}" if any(w in figure for w in NUMBERS) else f"{100 * value:.1f}%"


def _entry(record: dict, figure: str, name: str) -> str:
    value = record.get(figure, {}).get(name)
    if value is None:
        return ""
    text = _fmt(figure, value)
    low_high = record.get("spread", {}).get(figure, {}).get(name)
    if low_high and len(record.get("seeds", [])) > 1:
        text += f" ({_fmt(figure, low_high[0])}–{_fmt(figure, low_high[1])})"
    return text


def title(record: dict) -> str:
    return record.get("title") or f"{record['notebook']}, {record['mode']} mode on {record['dataset']}"


def provenance(record: dict) -> str:
    seeds = record.get("seeds", [])
    spread = f"; {len(seeds)} seeds {seeds}: mean (min–max)" if len(seeds) > 1 else \
        (f"; seed {seeds[0]}" if seeds else "")
    text = (f"{record['hardware']}: `{record['command']}` at commit `{record['commit']}`, "
            f"{record['date']}{spread}")
    note = record.get("note", "")
    return text + (f". {note[:1].upper()}{note[1:]}" if note else "")


def minutes(record: dict) -> str:
    text = f"{record['training_minutes']:.1f} min training"
    if "notebook_minutes" in record:
        text += f", {record['notebook_minutes']:.1f} min the whole notebook"
    return text


def _figures(record: dict) -> list[str]:
    return [k for k, v in record.items() if k not in NOT_FIGURES and isinstance(v, dict)]


def record_table(record: dict) -> str:
    """One record: its title, time and provenance; a table by encoder of kNN, linear probe
    and every other figure measured per encoder; then one small table per other figure."""
    encoders = list(dict.fromkeys([*record["knn"], *record["linear"]]))
    by_encoder = [f for f in _figures(record) if set(record[f]) <= set(encoders)]
    lines = [f"**{title(record)}** ({minutes(record)}). {provenance(record)}.", "",
             "| encoder | " + " | ".join(HEADINGS.get(f, f) for f in by_encoder) + " |",
             "| --- |" + " --- |" * len(by_encoder)]
    lines += [f"| {name} | " + " | ".join(_entry(record, f, name) for f in by_encoder) + " |"
              for name in encoders]
    for figure in _figures(record):
        if figure not in by_encoder:
            lines += ["", f"| {figure} | |", "| --- | --- |"]
            lines += [f"| {name} | {_entry(record, figure, name)} |" for name in record[figure]]
    return "\n".join(lines)


def notebook_cell(notebook: str, records: list[dict]) -> str:
    mine = [r for r in records if r["notebook"] == notebook]
    head = ("#### Measured figures\n\nGenerated from the records in `benchmarks/results/` "
            "(the command, commit and machine of each run are given).")
    if not mine:
        return head + "\n\nNo run of this notebook has been recorded yet."
    return "\n\n".join([head, *map(record_table, mine)])


def readme_section(records: list[dict]) -> str:
    body = "\n\n".join(record_table(r) for r in records) or "No run has been recorded yet."
    return f"{BEGIN}\n{body}\n{END}"


# ---------------------------------------------------------------------------- budget by GPU

BUDGET_BEGIN = ("<!-- full-mode budget by GPU: generated from benchmarks/results/ by "
                "`python -m autograder release` -->")
BUDGET_END = "<!-- end of the budget by GPU -->"
BUDGET_MIN, MAX_EPOCHS = 15, 200       # the notebooks' TIME_BUDGET_MIN and 01's MAX_EPOCHS
# GPU class -> (compute capability, peak dense 16-bit tensor TFLOPS from the vendor's data
# sheet). An unmeasured class is estimated from a measured run by the ratio of these peaks:
# small 32x32 models rarely reach peak, so the estimates are rough; the notebooks' probe
# measures the real speed on the student's GPU before training.
GPU_CLASSES = {"H100 / H200": (9.0, 989), "A100": (8.0, 312), "L4": (8.9, 121),
               "T4 (Colab's free GPU)": (7.5, 65)}
GPU_OF_HARDWARE = {"H200": "H100 / H200", "H100": "H100 / H200", "A100": "A100", "L4": "L4",
                   "T4": "T4 (Colab's free GPU)"}


def _gpu_class(record: dict) -> str | None:
    return next((cls for name, cls in GPU_OF_HARDWARE.items()
                 if name in record.get("hardware", "")), None)


def budget_table(records: list[dict]) -> str:
    """Seconds per epoch and the epochs that fit BUDGET_MIN, by GPU class: measured where a
    full-mode GPU record has them, else estimated from one and marked so. The epochs and
    the precision follow the notebooks' own rules (course_utils: the probe's
    ``epochs_within``, ``autocast_for``'s capability threshold)."""
    from course_utils.budget import epochs_within      # torch: imported only here
    from course_utils.train import BF16_MIN_CAPABILITY
    runs = [r for r in records if r.get("mode") == "full" and r.get("epochs")
            and _gpu_class(r)]
    lines = ["| notebook | GPU | precision | s per epoch | epochs in 15 min | from |",
             "| --- | --- | --- | --- | --- | --- |"]
    for run in runs:
        per_epoch = 60 * run["training_minutes"] / run["epochs"]
        base = GPU_CLASSES[_gpu_class(run)][1]
        for cls, (capability, peak) in GPU_CLASSES.items():
            measured = cls == _gpu_class(run)
            seconds = per_epoch * base / peak
            epochs = epochs_within(BUDGET_MIN, seconds, MAX_EPOCHS)
            precision = ("bfloat16" if capability >= BF16_MIN_CAPABILITY
                         else "float16 + gradient scaler")
            source = (f"measured: `{run['file']}`" if measured else
                      f"**estimate**: `{run['file']}` x {base} / {peak} peak TFLOPS")
            lines.append(f"| {run['notebook']} | {cls} | {precision} | {seconds:.1f} | "
                         f"{epochs} | {source} |")
    if not runs:
        lines.append("| no full-mode GPU run recorded yet | | | | | |")
    return f"{BUDGET_BEGIN}\n" + "\n".join(lines) + f"\n{BUDGET_END}"


def _measured_cells(book) -> list:
    """The cells tagged ``measured`` of a notebook (nbformat's)."""
    return [c for c in book.cells if TAG in c.metadata.get("tags", [])]


def expected_texts(course_dir: Path, readme: Path = README,
                   results_dir: Path = RESULTS_DIR) -> dict[Path, tuple[str, str]]:
    """path -> (text now, text the records give) for each master with a measured cell and
    the README."""
    records = load_records(results_dir)
    out = {}
    for path in all_masters(course_dir):
        for cell in _measured_cells(read_notebook(path)):
            out[path] = (cell.source, notebook_cell(path.stem, records))
    text = readme.read_text(encoding="utf-8")
    expected = replace_between(text, BEGIN, END, readme_section(records))
    out[readme] = (text, replace_between(expected, BUDGET_BEGIN, BUDGET_END,
                                         budget_table(records)))
    return out


def write(course_dir: Path, readme: Path = README, results_dir: Path = RESULTS_DIR) -> list[Path]:
    """Rewrite every measured cell and the README's section; the paths that changed."""
    changed = []
    for path, (now, expected) in expected_texts(course_dir, readme, results_dir).items():
        if now == expected:
            continue
        if path == readme:
            readme.write_text(expected, encoding="utf-8")
        else:
            book = read_notebook(path)
            for cell in _measured_cells(book):
                cell.source = expected
            write_notebook(book, path)
        changed.append(path)
    return changed


def check(course_dir: Path, readme: Path = README, results_dir: Path = RESULTS_DIR) -> list[str]:
    """What differs from the records, one line each (empty when all agree)."""
    problems = [f"{path.name}: the measured figures differ from benchmarks/results/"
                for path, (now, expected) in expected_texts(course_dir, readme,
                                                            results_dir).items()
                if now != expected]
    for marker in (BEGIN, BUDGET_BEGIN):
        if readme.exists() and marker not in readme.read_text(encoding="utf-8"):
            problems.append(f"{readme.name}: no generated section ({marker!r})")
    return problems
