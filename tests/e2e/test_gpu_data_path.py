"""The masters' GPU data path, run on the CPU.

On CUDA every notebook trains on views that ``data.view_loader`` augments in batches on the
device, with the recipe read from the notebook's own transform (a student's
``simclr_transform``, ``MultiCropTransform``, ...). CI has no GPU: ``COURSE_GPU_AUGMENT=1``
forces that path on the CPU, and each master runs at grading scale with it.
"""

import nbformat
import pytest
from nbclient import NotebookClient

from autograder import course

PROBE = """
_loader = loader
_views, _labels = next(iter(_loader))
_views = _views if isinstance(_views, list) else [_views]
print("loader:", type(_loader).__name__)
print("views:", [tuple(v.shape) for v in _views], "labels:", tuple(_labels.shape))
print("finite:", all(bool(v.isfinite().all()) for v in _views))
"""

# grading scale: batch 32 (16 for DINO and 05), 2 global + 2 local crops for DINO
EXPECTED_VIEWS = {
    "01_simclr_ntxent": [(32, 3, 32, 32)] * 2,
    "02_moco_queue": [(32, 3, 32, 32)] * 2,
    "03_mae_masking": [(32, 3, 32, 32)],
    "04_dino_self_distillation": [(16, 3, 32, 32)] * 2 + [(16, 3, 16, 16)] * 2,
    "05_paradigms_and_segments": [(16, 3, 32, 32)],
}


def printed(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.notebook
@pytest.mark.parametrize("assignment", sorted(EXPECTED_VIEWS))
def test_master_trains_on_batched_augmentation(assignment, tmp_path, monkeypatch):
    assert assignment in course.source_assignments(course.COURSE_DIR)
    [master] = course.master_notebooks(course.COURSE_DIR, assignment)
    notebook = nbformat.read(master, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE.format(assignment=assignment)))
    monkeypatch.setenv("COURSE_MODE", "grading")
    monkeypatch.setenv("COURSE_GPU_AUGMENT", "1")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    everything = "".join(printed(c) for c in notebook.cells if c.cell_type == "code")
    assert "GPU augmentation is off" not in everything, "the notebook fell back to PIL workers"
    probe = printed(notebook.cells[-1])
    assert "loader: GPUViewLoader" in probe
    assert f"views: {EXPECTED_VIEWS[assignment]}" in probe
    assert "finite: True" in probe
