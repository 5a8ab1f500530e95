"""`data check D --data-root DIR [--split S]`: validate a user's download of a registered dataset.

Checks, in order: the layout the config promises is there (the reader indexes it), image ids are
unique, every image file the annotations name exists and is complete (JPEG/PNG end marker), a
spread of images fully decode and their annotations parse with matching sizes; then prints the images and masks found beside the paper's counts and what the
paper's subsampling would keep. Exits 1 naming what is missing or broken, 0 when all is well.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import DataError, SamBenchError
from .images import check_complete, check_size, verify_decodes
from ..registry import READERS
from .registry import DatasetConfig, load_dataset_config
from .check_video import check_videos
from .readers.vos import VideoFolderDataset
from .subsample import choose_images, object_counts

SPOT_CHECKS = 12  # images fully decoded (pixels + masks), spread over the dataset
MAX_LISTED = 5  # problems printed per kind


def _spread(n: int, k: int) -> list[int]:
    return sorted(set(np.linspace(0, n - 1, num=min(n, k)).round().astype(int).tolist())) if n else []


def check_dataset(name: str, data_root: str, split: Optional[str] = None,
                  out: Callable[[str], None] = print) -> int:
    """Validate `data_root` for dataset `name`; print a summary; 0 if usable, 1 otherwise."""
    from . import readers  # noqa: F401  (registers the readers)

    cfg = load_dataset_config(name)
    split = split or cfg.default_split
    root = Path(data_root).expanduser()
    out(f"dataset    {name}: {cfg.title}")
    out(f"data root  {root}" + (f"   split: {split}" if split else ""))
    if not root.is_dir():
        return _fail(out, cfg, [f"{root}: not a directory"])
    try:
        dataset = READERS.get(cfg.reader)(root, **cfg.reader_arguments(split))
        if isinstance(dataset, VideoFolderDataset):
            problems = check_videos(dataset, cfg.paper or {}, out)
            if problems:
                return _fail(out, cfg, [f"{len(problems)} problem(s) in the videos: " + "; ".join(problems[:MAX_LISTED])])
            out("OK")
            return 0
        counts = object_counts(dataset)
    except SamBenchError as exc:
        return _fail(out, cfg, [str(exc), *_splits_found(cfg, root, split)])

    problems: list[str] = []
    n = len(dataset)
    if n == 0:
        problems.append(f"{root}: no images found")
    ids = dataset.image_ids()
    repeated = sorted({str(i) for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if repeated:
        problems.append(f"{len(repeated)} image ids are not unique: " + ", ".join(repeated[:MAX_LISTED]))
    locate = getattr(dataset, "image_path", None)
    missing, truncated = [], []
    if callable(locate):
        for i in range(n):
            try:
                path = locate(i)
            except NotImplementedError:
                break
            if not Path(path).is_file():
                missing.append(str(path))
                continue
            try:
                check_complete(path)  # every image: one small read at its end
            except DataError as exc:
                truncated.append(str(exc))
    encodings = _encoding_problems(dataset, n)
    if encodings:
        problems.append(f"{len(encodings)} mask files do not match the declared encoding: " + "; ".join(encodings[:MAX_LISTED]))
    if missing:
        problems.append(f"{len(missing)} of {n} image files missing: " + ", ".join(missing[:MAX_LISTED]))
    if truncated:
        problems.append(f"{len(truncated)} of {n} image files truncated: " + "; ".join(truncated[:MAX_LISTED]))
    broken = []
    for i in _spread(n, SPOT_CHECKS):
        try:
            sample = dataset.get(i)
            if sample.path is not None and Path(sample.path).is_file():
                verify_decodes(sample.path)  # full decode: damage beyond a cut end
            check_size(sample.load_image(), sample.height, sample.width, sample.path)
        except SamBenchError as exc:
            broken.append(str(exc))
    if broken:
        problems.append(f"{len(broken)} of {len(_spread(n, SPOT_CHECKS))} spot-checked images failed: "
                        + "; ".join(broken[:MAX_LISTED]))

    masks = sum(counts)
    paper = cfg.paper or {}
    out(f"images     {n:<8}  paper: {paper.get('images') or '-'}" + (f" ({paper['split']})" if paper.get("split") else ""))
    out(f"masks      {masks:<8}  paper: {paper.get('masks') or '-'}")
    rule = cfg.subsample or {}
    if rule and masks > int(rule.get("max_masks", masks)):
        kept = choose_images(counts, int(rule["target_masks"]), int(rule.get("seed", 0)))
        out(f"subsample  {masks} > {rule['max_masks']} masks: runs use {len(kept)} images / "
            f"{sum(counts[i] for i in kept)} masks (seed {rule.get('seed', 0)})")
    elif rule:
        out(f"subsample  not needed ({masks} <= {rule.get('max_masks')} masks)")
    if problems:
        return _fail(out, cfg, problems)
    out(f"checked    {len(_spread(n, SPOT_CHECKS))} images decoded with their annotations")
    out("OK")
    return 0


def _splits_found(cfg: DatasetConfig, root: Path, split: Optional[str]) -> list[str]:
    """When the requested split cannot be read: the dataset's splits that can be, under `root`."""
    if not cfg.splits:
        return []
    found = []
    for name in sorted(set(cfg.splits) - {split}):
        try:
            READERS.get(cfg.reader)(root, **cfg.reader_arguments(name))
            found.append(name)
        except SamBenchError:
            continue
    return [f"split '{split}' not readable under {root}; splits found there: {', '.join(found) or 'none'}"]


def _encoding_problems(dataset: object, n: int) -> list[str]:
    """Masks whose values do not match the dataset's declared encoding, over every image (readers
    with a declared mask encoding have `check_encoding`; the mask files are small)."""
    check = getattr(dataset, "check_encoding", None)
    found: list[str] = []
    for i in range(n) if callable(check) else ():
        try:
            found += check(i)
        except SamBenchError as exc:
            found.append(str(exc))
    return found


def _fail(out: Callable[[str], None], cfg: DatasetConfig, problems: list[str]) -> int:
    for p in problems:
        out(f"PROBLEM    {p}")
    out("expected layout under --data-root:")
    for line in cfg.layout.strip().splitlines():
        out(f"  {line}")
    out(f"FAILED: {len(problems)} problem(s); see the layout above and {cfg.homepage or 'the dataset page'}")
    return 1
