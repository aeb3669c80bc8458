"""zip_collect plugin: file an LMS download under the assignment's own notebook name.

LMS downloads rename files ('doejohn_12345_67890_01_simclr_ntxent.ipynb', 'alice_Copy of
01_simclr_ntxent.ipynb'). nbgrader's FileNameCollectorPlugin takes the student id and a
file id from the name (`named_regexp`, set in nbgrader_config.py); this subclass then maps
the file id to a notebook of the released assignment: the one whose name it contains, or
the only one when the assignment has a single notebook. Anything else is skipped, loudly.
"""
import glob
import os

from nbgrader.plugins import FileNameCollectorPlugin


class AnyNameCollector(FileNameCollectorPlugin):

    def released_notebooks(self):
        coursedir = self.parent.coursedir
        folder = coursedir.format_path(coursedir.release_directory, ".", coursedir.assignment_id)
        return sorted(os.path.splitext(os.path.basename(p))[0]
                      for p in glob.glob(os.path.join(folder, "*.ipynb")))

    def collect(self, submitted_file):
        info = super().collect(submitted_file)
        if not info:
            return info
        notebooks = self.released_notebooks()
        file_id = os.path.splitext(info["file_id"])[0]
        named = [nb for nb in notebooks if nb in file_id]
        if file_id in notebooks:
            return info
        if named:
            info["file_id"] = max(named, key=len)
        elif len(notebooks) == 1:
            info["file_id"] = notebooks[0]
        else:
            self.log.warning("Skipped %s: it names none of the notebooks %s",
                             submitted_file, notebooks)
            return None
        self.log.info("Collecting %s as %s.ipynb of student %s",
                      os.path.basename(submitted_file), info["file_id"], info["student_id"])
        return info
