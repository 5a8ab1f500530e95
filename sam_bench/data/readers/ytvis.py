"""YouTube-VIS style video instance json (YouTube-VIS 2019/2021, OVIS): each annotated frame of
each video is one image.

`videos: [{id, height, width, file_names: [frame paths]}]`, `annotations: [{id, video_id,
category_id, iscrowd, segmentations: [RLE or polygon or null, one per frame]}]`. Frames without
any object are skipped; the image id is the frame's path without its suffix (`<video>/<frame>`).
Crowd tracks are handled like the coco reader's `crowd: ignore` (pixels not under an object are void).
"""
from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

from ...errors import DataError
from ...registry import READERS
from ..images import read_rgb
from ..types import ImageSample, ObjectAnnotation
from .coco import load_json
from .common import IndexedDataset, decode_segmentation, optional_ignore, require_file, union


@READERS.register("ytvis", help="YouTube-VIS / OVIS video instance json, one image per annotated frame")
class YouTubeVISDataset(IndexedDataset):
    def __init__(self, root: Path, annotations: str, images: str = ".", frame_stride: int = 1) -> None:
        super().__init__(root)
        self.annotation_file = require_file(self.root, annotations, "video annotation json")
        self.image_dir = self.root / images
        data = load_json(self.annotation_file)
        if not isinstance(data, dict) or not isinstance(data.get("videos"), list) \
                or not isinstance(data.get("annotations"), list):
            raise DataError(f"{self.annotation_file}: not a YouTube-VIS json (needs 'videos' and 'annotations')")
        self.categories: list[dict[str, Any]] = list(data.get("categories") or [])
        names = {c.get("id"): c.get("name") for c in self.categories}
        tracks: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for ann in data["annotations"]:
            tracks[ann.get("video_id")].append(ann)
        # frame records: (video, frame index, tracks present in that frame)
        self._frames: list[tuple[dict[str, Any], int, list[dict[str, Any]]]] = []
        for video in data["videos"]:
            try:
                files, vid = video["file_names"], video["id"]
            except (KeyError, TypeError):
                raise DataError(f"{self.annotation_file}: video entry without 'id'/'file_names'") from None
            for t in range(0, len(files), frame_stride):
                present = [a for a in tracks.get(vid, []) if t < len(a.get("segmentations") or [])
                           and a["segmentations"][t]]
                if present:
                    self._frames.append((video, t, present))
        self._names = names
        self._ids = [str(PurePosixPath(v["file_names"][t]).with_suffix("")) for v, t, _ in self._frames]
        self.metadata = {"annotation_file": str(self.annotation_file), "frame_stride": frame_stride}

    def object_counts(self) -> list[int]:
        return [sum(1 for a in present if not a.get("iscrowd", 0)) for _, _, present in self._frames]

    def image_path(self, index: int) -> Path:
        video, t, _ = self._frames[index]
        return self.image_dir / video["file_names"][t]

    def get(self, index: int) -> ImageSample:
        self._check_index(index)
        video, t, present = self._frames[index]
        height, width = int(video["height"]), int(video["width"])
        objects, crowd = [], []
        for ann in present:
            where = f"{self.annotation_file} (video {video['id']}, frame {t}, track {ann.get('id')})"
            mask = decode_segmentation(ann["segmentations"][t], height, width, where)
            if ann.get("iscrowd", 0):
                crowd.append(mask)
                continue
            objects.append(ObjectAnnotation(
                object_id=str(ann.get("id")), mask=mask, category_id=ann.get("category_id"),
                category=self._names.get(ann.get("category_id")),
                extra={"video_id": video["id"], "frame": t, "track_id": ann.get("id")}))
        ignore = None
        if crowd:
            ignore = optional_ignore(union(crowd, (height, width)) & ~union((o.mask for o in objects), (height, width)))
        path = self.image_path(index)
        return ImageSample(image_id=self._ids[index], load_image=functools.partial(read_rgb, path),
                           height=height, width=width, objects=objects, ignore=ignore, path=path,
                           extra={"video_id": video["id"], "frame": t})
