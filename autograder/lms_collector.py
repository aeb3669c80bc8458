"""zip_collect plugins: extract an LMS download safely, file each notebook under its name.

``SafeExtractor`` replaces nbgrader's extractor (which unpacks everything, nested archives
included, with no limit): it takes only ``.ipynb`` entries, at most ``max_entries`` entries
and ``max_total_bytes`` in all, each notebook at most ``max_entry_bytes`` (counted while
reading, whatever the archive's header claims), never a link, an absolute path or ``..``,
and no archive inside the archive. What it leaves out is logged as ``Skipped NAME: why``.

LMS downloads rename files ('doejohn_12345_67890_01_simclr_ntxent.ipynb', 'alice_Copy of
01_simclr_ntxent.ipynb'). nbgrader's FileNameCollectorPlugin takes the student id and a
file id from the name (`named_regexp`, set in nbgrader_config.py); ``AnyNameCollector``
refuses ids that are not plain names (``..``, '=1+2') and maps the file id to a notebook of
the released assignment: the one whose name it contains, or the only one when the
assignment has a single notebook. Anything else is skipped, loudly.
"""
import glob
import os
import stat
import zipfile

from traitlets import Integer

from nbgrader.plugins import ExtractorPlugin, FileNameCollectorPlugin

if __package__:            # imported as part of the grader package
    from . import safe_files
else:                      # loaded by nbgrader from the course folder (nbgrader_config.py)
    import safe_files


class SafeExtractor(ExtractorPlugin):

    max_entries = Integer(5000, help="entries an archive may hold").tag(config=True)
    max_entry_bytes = Integer(20 * 2**20, help="bytes of one extracted notebook").tag(config=True)
    max_total_bytes = Integer(2 * 2**30, help="bytes of an archive, unpacked").tag(config=True)

    def _target(self, extracted_path, name):
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or any(":" in p for p in parts[:1]):
            return None
        target = os.path.normpath(os.path.join(extracted_path, *[p for p in parts if p]))
        inside = os.path.commonpath([target, os.path.normpath(extracted_path)])
        return target if inside == os.path.normpath(extracted_path) else None

    def _entries(self, archive):
        with zipfile.ZipFile(archive) as z:
            infos = z.infolist()
            if len(infos) > self.max_entries:
                self.log.warning("Skipped %s: %d entries, over the limit of %d",
                                 archive, len(infos), self.max_entries)
                return
            for info in infos:
                yield z, info

    def _extract_one(self, z, info, extracted_path, budget):
        name = info.filename
        mode = info.external_attr >> 16
        if info.is_dir():
            return 0
        if stat.S_ISLNK(mode):
            self.log.warning("Skipped %s: a symbolic link", name)
            return 0
        if not name.lower().endswith(".ipynb"):
            if os.path.splitext(name)[1].lower() in (".zip", ".gz", ".tar", ".tgz"):
                self.log.warning("Skipped %s: an archive inside the archive", name)
            return 0
        target = self._target(extracted_path, name)
        if target is None:
            self.log.warning("Skipped %s: its path leaves the folder", name)
            return 0
        limit = min(self.max_entry_bytes, budget)
        if info.file_size > limit:
            self.log.warning("Skipped %s: %d bytes unpacked, over the limit of %d",
                             name, info.file_size, limit)
            return 0
        with z.open(info) as source:
            data = source.read(limit + 1)
        if len(data) > limit:
            self.log.warning("Skipped %s: over the limit of %d bytes", name, limit)
            return 0
        try:
            safe_files.real_folders(extracted_path, os.path.dirname(target))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with safe_files.open_for_writing(target, extracted_path, "wb") as out:
                out.write(data)
        except (safe_files.UnsafePath, OSError) as error:
            self.log.warning("Skipped %s: %s", name, error)
            return 0
        return len(data)

    def extract(self, archive_path, extracted_path):
        budget = self.max_total_bytes
        for root, _, files in os.walk(archive_path):
            for archive in sorted(os.path.join(root, f) for f in files):
                if not zipfile.is_zipfile(archive):
                    self.log.warning("Skipped %s: not a zip archive", archive)
                    continue
                self.log.info("Extracting from: %s", archive)
                for z, info in self._entries(archive):
                    budget -= self._extract_one(z, info, extracted_path, budget)
                    if budget <= 0:
                        self.log.warning("Skipped the rest of %s: over %d bytes unpacked",
                                         archive, self.max_total_bytes)
                        return


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
        problem = safe_files.student_id_problem(info["student_id"])
        if problem:
            self.log.warning("Skipped %s: %s", submitted_file, problem)
            return None
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
