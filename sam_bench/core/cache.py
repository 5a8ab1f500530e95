"""On-disk cache of image embeddings, shared by all tasks and reruns.

Key = sha256(model fingerprint (weights hash + preprocessing) | image content hash). Entries are
fp16 .npz files written to a temporary name and renamed into place, so a killed or concurrent
writer never leaves a half-written entry under a real key. Because entries are fp16, a run with
the cache enabled rounds freshly computed embeddings to fp16 too (models/cached.py): a hit and a
miss then give exactly the same masks. Any embedding whose features are a dict of tensors is
stored, so model families need no cache code of their own.
"""
from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_write
from .types import ImageEmbedding

log = logging.getLogger(__name__)


def image_sha256(image: np.ndarray) -> str:
    digest = hashlib.sha256(f"{image.shape}|{image.dtype}".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


class EmbeddingCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def key(self, fingerprint: str, image: np.ndarray) -> str:
        return hashlib.sha256(f"{fingerprint}|{image_sha256(image)}".encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        path = self._path(key)
        if not path.exists():
            self.misses += 1
            return None
        try:
            with np.load(path) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            log.warning("embedding cache entry %s is unreadable (%s); recomputing", path, exc)
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return arrays

    def store(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        atomic_write(self._path(key), lambda f: np.savez(f, **arrays), mode="wb")

    def load_embedding(self, key: str, device: torch.device) -> ImageEmbedding | None:
        arrays = self.load(key)
        if arrays is None:
            return None
        try:
            features = {name[2:]: torch.from_numpy(arrays[name].astype(np.float32)).to(device)
                        for name in arrays if name.startswith("f:")}
            return ImageEmbedding(features, tuple(int(v) for v in arrays["original_size"]),
                                  tuple(int(v) for v in arrays["input_size"]),
                                  json.loads(str(arrays["meta"])))
        except (KeyError, ValueError) as exc:
            log.warning("embedding cache entry %s is not an embedding (%s); recomputing", self._path(key), exc)
            self._path(key).unlink(missing_ok=True)
            self.hits -= 1
            self.misses += 1
            return None

    def store_embedding(self, key: str, embedding: ImageEmbedding) -> None:
        arrays = {f"f:{name}": t.detach().cpu().numpy().astype(np.float16) for name, t in embedding.features.items()}
        arrays.update(original_size=np.array(embedding.original_size), input_size=np.array(embedding.input_size),
                      meta=np.array(json.dumps(embedding.meta)))
        self.store(key, arrays)
