"""nbgrader's Execute preprocessor with bounded outputs (``c.Autograde.autograde_preprocessors``).

nbgrader's ``LimitOutput`` cuts streams by lines after the notebook has run; a submission can
still send one 60 MB line, a 60 MB image or a million outputs, all of which nbclient keeps in
the grader's memory and nbgrader writes into the graded notebook and the feedback HTML.
``BoundedExecute`` bounds them as they arrive:

* each output to ``max_output_bytes`` (text cut, large media types dropped, with a note);
* each cell's outputs to ``max_cell_bytes`` and the notebook's to ``max_notebook_bytes``:
  what comes after is dropped and a note says how much, except what nbgrader grades by
  (errors and results are kept, shortened; stderr leaves a marker, so it still costs the
  test cell its points);
* each kernel message to ``max_message_bytes`` (ZMQ drops a larger one before it is read);
* no widget state and no comm messages are kept.
"""
from __future__ import annotations

from nbformat.v4 import new_output
from traitlets import Bool, Integer

from nbconvert.preprocessors import Preprocessor
from nbgrader.preprocessors import Execute

OUTPUT_TYPES = {"stream", "display_data", "execute_result", "error"}
CUT = "[output cut by the grader: {what}]"


def output_size(content: dict) -> int:
    """Characters an output message's content would add to the notebook."""
    size = len(content.get("text", "") or "") + len(content.get("evalue", "") or "")
    size += sum(len(line) for line in content.get("traceback", []) or [])
    for value in (content.get("data") or {}).values():
        size += len(value) if isinstance(value, str) else len(str(value))
    return size


def note(text: str):
    return new_output("stream", name="stdout", text=CUT.format(what=text) + "\n")


def shrink(output, limit: int):
    """An output cut to about ``limit`` characters (the same object, changed)."""
    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text", "")
        if len(text) > limit:
            output["text"] = text[:limit] + "\n" + CUT.format(
                what=f"{len(text) - limit:,} more characters") + "\n"
    elif kind == "error":
        lines = [line[:limit] for line in output.get("traceback", [])][:200]
        while lines and sum(map(len, lines)) > limit:
            lines.pop(len(lines) // 2)
        output["traceback"] = lines
        output["evalue"] = output.get("evalue", "")[:limit]
    elif kind in ("display_data", "execute_result"):
        data = output.get("data", {})
        for mime in sorted(data, key=lambda m: -len(str(data[m]))):
            if output_size({"data": data}) <= limit:
                break
            if mime == "text/plain" and len(data) == 1:
                data[mime] = str(data[mime])[:limit] + "\n" + CUT.format(what="text cut")
            else:
                del data[mime]
                data.setdefault("text/plain", CUT.format(what=f"{mime} output too large"))
    return output


class BoundedExecute(Execute):
    """Execute, keeping at most so much output per output, cell and notebook."""

    max_output_bytes = Integer(1_000_000, help="characters of one output").tag(config=True)
    max_cell_bytes = Integer(2_000_000, help="characters of one cell's outputs").tag(config=True)
    max_notebook_bytes = Integer(8_000_000, help="characters of all outputs").tag(config=True)
    max_message_bytes = Integer(256 * 2**20, help="bytes of one kernel message").tag(config=True)
    store_widget_state = Bool(False).tag(config=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._cell_bytes: dict[int, int] = {}
        self._dropped: dict[int, int] = {}
        self._total = 0

    def create_kernel_manager(self):
        import zmq
        manager = super().create_kernel_manager()
        manager.context.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        return manager

    def process_message(self, msg, cell, cell_index):
        kind = msg.get("msg_type", "")
        content = msg.get("content") or {}
        if kind.startswith("comm"):
            return None                                    # widgets: nothing is kept
        if kind in OUTPUT_TYPES or kind == "update_display_data":
            size = min(output_size(content), self.max_output_bytes)
            used = self._cell_bytes.get(cell_index, 0)
            if used + size > self.max_cell_bytes or self._total + size > self.max_notebook_bytes:
                return self._over_budget(msg, kind, content, cell, cell_index)
            self._cell_bytes[cell_index] = used + size
            self._total += size
        output = super().process_message(msg, cell, cell_index)
        if output is not None:
            shrink(output, self.max_output_bytes)
        return output

    def _over_budget(self, msg, kind, content, cell, cell_index):
        """Past the budget an output is dropped, except what decides a test cell's grade
        (nbgrader's determine_grade): an error or an execute_result is kept, shortened, and
        stderr leaves one marker on the cell (a test cell that writes to stderr scores 0, so
        cutting stderr must not turn that into points)."""
        self._dropped[cell_index] = self._dropped.get(cell_index, 0) + 1
        if kind in ("error", "execute_result"):
            output = super().process_message(msg, cell, cell_index)
            return shrink(output, 10_000) if output is not None else None
        if kind == "stream" and content.get("name") == "stderr":
            if not any(o.get("name") == "stderr" and CUT.format(what="stderr") in o.get("text", "")
                       for o in cell.outputs):
                cell.outputs.append(new_output("stream", name="stderr",
                                               text=CUT.format(what="stderr") + "\n"))
        return None

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
        cell = await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        for output in cell.get("outputs", []):          # e.g. an error nbgrader appends
            shrink(output, self.max_output_bytes)
        dropped = self._dropped.pop(cell_index, 0)
        if dropped:
            cell.outputs.append(note(f"{dropped:,} more outputs, past the limit of "
                                     f"{self.max_cell_bytes:,} characters a cell or "
                                     f"{self.max_notebook_bytes:,} a notebook"))
        return cell


class ResultsAsDisplays(Preprocessor):
    """In graded cells, a value the kernel returned (an execute_result) is shown as a
    display instead: nbgrader would read it as the cell's partial credit, and fail the
    whole submission when it is over the cell's points. No grade comes from the kernel
    (the trusted grader's properties replace it), so its results only need to be seen."""

    enabled = Bool(True).tag(config=True)     # nbconvert's preprocessors are off by default

    def preprocess_cell(self, cell, resources, index):
        if cell.get("cell_type") == "code" and cell.get("metadata", {}).get(
                "nbgrader", {}).get("grade"):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "execute_result":
                    output["output_type"] = "display_data"
                    output.pop("execution_count", None)
        return cell, resources
