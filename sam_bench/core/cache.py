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

from ..errors import ConfigError
from ..io import atomic_write, write_json
from .types import ImageEmbedding

log = logging.getLogger(__name__)


def image_sha256(image: np.ndarray) -> str:
    digest = hashlib.sha256(f"{image.shape}|{image.dtype}".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


class EmbeddingCache:
    """Entries under `root`; a cache folder the user cannot write is still read (and never written).

    Each model fingerprint has a shape signature (`signatures/<hash>.json`: feature name -> shape,
    dtype), written with its first entry; an entry that disagrees with it (a valid npz of the wrong
    shape, e.g. copied from another model) is treated like a corrupt one: warned about and recomputed.
    """

    def __init__(self, root: str | Path) -> None:
        from .preflight import writable

        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{self.root}: cannot create the --cache-dir folder: {exc.strerror or exc}") from None
        self.writable = writable(self.root)
        if not self.writable:
            log.warning("embedding cache %s is read-only: its entries are used, new ones are not stored", self.root)
        self.hits = 0
        self.misses = 0
        self._signatures: dict[str, dict[str, list] | None] = {}

    def key(self, fingerprint: str, image: np.ndarray) -> str:
        return hashlib.sha256(f"{fingerprint}|{image_sha256(image)}".encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def _drop(self, path: Path, why: str) -> None:
        log.warning("embedding cache entry %s %s; recomputing", path, why)
        if self.writable:
            path.unlink(missing_ok=True)

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        path = self._path(key)
        if not path.exists():
            self.misses += 1
            return None
        try:
            with np.load(path) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            self._drop(path, f"is unreadable ({exc})")
            self.misses += 1
            return None
        self.hits += 1
        return arrays

    def store(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        if self.writable:
            atomic_write(self._path(key), lambda f: np.savez(f, **arrays), mode="wb")

    def load_embedding(self, key: str, device: torch.device, fingerprint: str | None = None) -> ImageEmbedding | None:
        arrays = self.load(key)
        if arrays is None:
            return None
        try:
            expected = self.signature(fingerprint) if fingerprint else None
            found = _signature(arrays)
            if expected is not None and found != expected:
                raise ValueError(f"features {found} do not match this model's {expected}")
            features = {name[2:]: torch.from_numpy(arrays[name].astype(np.float32)).to(device)
                        for name in arrays if name.startswith("f:")}
            return ImageEmbedding(features, tuple(int(v) for v in arrays["original_size"]),
                                  tuple(int(v) for v in arrays["input_size"]),
                                  json.loads(str(arrays["meta"])))
        except (KeyError, ValueError) as exc:
            self._drop(self._path(key), f"is not an embedding of this model ({exc})")
            self.hits -= 1
            self.misses += 1
            return None

    def store_embedding(self, key: str, embedding: ImageEmbedding, fingerprint: str | None = None) -> None:
        arrays = {f"f:{name}": t.detach().cpu().numpy().astype(np.float16) for name, t in embedding.features.items()}
        arrays.update(original_size=np.array(embedding.original_size), input_size=np.array(embedding.input_size),
                      meta=np.array(json.dumps(embedding.meta)))
        if fingerprint and self.writable and self.signature(fingerprint) is None:
            self._signatures[fingerprint] = _signature(arrays)
            write_json(self._signature_path(fingerprint), self._signatures[fingerprint])
        self.store(key, arrays)

    def signature(self, fingerprint: str) -> dict[str, list] | None:
        """Feature name -> [shape, dtype] of this model's entries, once one has been stored."""
        if fingerprint not in self._signatures:
            path = self._signature_path(fingerprint)
            try:
                self._signatures[fingerprint] = json.loads(path.read_text()) if path.exists() else None
            except (OSError, ValueError):
                log.warning("%s: unreadable cache signature; entries are not shape-checked", path)
                self._signatures[fingerprint] = None
        return self._signatures[fingerprint]

    def _signature_path(self, fingerprint: str) -> Path:
        return self.root / "signatures" / f"{hashlib.sha256(fingerprint.encode()).hexdigest()[:32]}.json"


def _signature(arrays: dict[str, np.ndarray]) -> dict[str, list]:
    return {name[2:]: [list(a.shape), str(a.dtype)] for name, a in sorted(arrays.items()) if name.startswith("f:")}
