"""What each finished image was computed from: the identity of its input files.

A progress record keeps, for every file an image's result was computed from (the image, its masks or
annotation file; `Dataset.input_files`), the size, modification time and sha256 of the content. On
resume, a file whose size and mtime are unchanged is taken as unchanged; when either moved, the
content hash decides (a copy or `touch` that left the bytes alone does not redo the image). A
finished image with a changed, missing or unrecorded input is redone, and the log names the file.
The finished task folder keeps the union as `inputs.json`, which `run --suite` checks the same way
before it calls a task "already done".
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core.checkpoint import file_sha256
from ..data.types import Dataset
from ..io import write_json

log = logging.getLogger(__name__)

INPUTS_FILE = "inputs.json"  # in a finished task folder: every input file's identity



class InputFiles:
    """Identities of input files; each file is hashed at most once per process while it is unchanged
    (a COCO annotation json is an input of every image)."""

    def __init__(self) -> None:
        self._known: dict[str, dict[str, Any]] = {}

    def identity(self, paths: Iterable[Path]) -> dict[str, dict[str, Any]]:
        """{absolute path: {size, mtime_ns, sha256}} of `paths`."""
        found = {}
        for path in paths:
            path = Path(path).absolute()
            stat = path.stat()
            known = self._known.get(str(path))
            if known is None or (known["size"], known["mtime_ns"]) != (stat.st_size, stat.st_mtime_ns):
                known = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": file_sha256(path)}
                self._known[str(path)] = known
            found[str(path)] = known
        return found

    def changed(self, recorded: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """The files of `recorded` that are gone or whose content is no longer what was recorded."""
        return [name for name, was in recorded.items() if not self._same(name, was)]

    def _same(self, name: str, was: Mapping[str, Any]) -> bool:
        try:
            stat = Path(name).stat()
        except OSError:
            return False
        if (stat.st_size, stat.st_mtime_ns) == (was.get("size"), was.get("mtime_ns")):
            return True
        if stat.st_size != was.get("size"):
            return False
        return self.identity([Path(name)])[name]["sha256"] == was.get("sha256")


def redo_changed(inputs: InputFiles, recorded: Mapping[str, Any]) -> set[str]:
    """Image ids among `recorded` (image id -> recorded inputs, None when the record has none) whose
    result must be recomputed; each is logged with the file that changed."""
    redo = set()
    for image_id, files in recorded.items():
        if files is None:  # written before records kept their inputs
            log.warning("%s: its progress record does not say what it was computed from; redoing it", image_id)
            redo.add(image_id)
            continue
        changed = inputs.changed(files)
        if changed:
            log.warning("%s: input changed since it was scored (%s); redoing it", image_id, ", ".join(changed))
            redo.add(image_id)
    return redo


def write_inputs(path: Path, per_image: Iterable[Mapping[str, Any]]) -> str:
    """The union of every image's input identities, written to `path`; returns its digest."""
    union: dict[str, Any] = {}
    for files in per_image:
        union.update(files or {})
    union = dict(sorted(union.items()))
    write_json(path, union)
    return inputs_digest(union)


def inputs_digest(files: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def finished_inputs_changed(task_dir: Path) -> list[str] | None:
    """Files a finished task folder was computed from that changed since; None when the folder does
    not say (results from before input identities were kept: treat as changed)."""
    try:
        recorded = json.loads((task_dir / INPUTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict):
        return None
    return InputFiles().changed(recorded)


def image_inputs(dataset: Dataset, index: int, inputs: InputFiles) -> dict[str, Any]:
    return inputs.identity(dataset.input_files(index))
