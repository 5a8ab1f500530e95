"""Concept queries: (image, noun phrase) pairs with every annotator's instances, what the `concepts`
task scores. SA-Co readers put them on the sample (`sample.extra["concept_queries"]`); COCO and LVIS
samples are turned into queries here: every category is a phrase, the images containing it are its
positives, and the negatives are LVIS's verified `neg_category_ids` or, for COCO, a seeded sample of
the categories absent from the image."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from .types import ImageSample

QUERIES_KEY = "concept_queries"


@dataclass
class TruthMask:
    """One annotated instance of a query, as the evaluator sees it."""

    rle: dict[str, Any]  # pycocotools RLE at the image's size
    iscrowd: bool = False


@dataclass
class ConceptQuery:
    query_id: str  # unique in the dataset; a predictions file names it as `image_id`
    phrase: str
    truths: list[list[TruthMask]]  # per annotator file (SA-Co Gold: three), possibly empty = negative
    exhaustive: bool = True  # instance-exhaustive in every file: only those are scored
    source_id: Any = None  # the id as the annotation file writes it (SA-Co: an int), for results files
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def positive(self) -> bool:
        return any(not t.iscrowd for truth in self.truths for t in truth)


def category_phrase(name: str) -> str:
    """A category name as a noun phrase (LVIS writes "baseball_bat")."""
    return name.replace("_", " ").strip()


def mask_rle(mask: np.ndarray) -> dict[str, Any]:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def coco_concept_queries(sample: ImageSample, categories: dict[int, str], negatives: int, seed: int,
                         federated: bool) -> list[ConceptQuery]:
    """The queries of one COCO / LVIS image: one per category present (crowd regions kept as crowd
    truth), then its negatives: LVIS (`federated`) its `neg_category_ids`, COCO `negatives` absent
    categories drawn with a generator seeded by (seed, image id), so a query set does not depend on
    which other images a run holds. LVIS positives of `not_exhaustive_category_ids` are not exhaustive."""
    truths: dict[int, list[TruthMask]] = {}
    for obj in sample.objects:
        if obj.category_id is not None:
            truths.setdefault(int(obj.category_id), []).append(
                TruthMask(mask_rle(obj.mask), bool(obj.extra.get("iscrowd"))))
    coco = sample.coco
    image_id = coco.id if coco is not None else sample.image_id
    not_exhaustive = set(coco.not_exhaustive_category_ids) if coco is not None else set()
    if federated:
        negative_ids = [int(c) for c in (coco.neg_category_ids if coco is not None else ()) if int(c) in categories]
    else:
        absent = np.array(sorted(set(categories) - set(truths)), np.int64)
        rng = np.random.default_rng([int(seed), _stable_int(image_id)])
        take = min(int(negatives), len(absent))
        negative_ids = sorted(int(c) for c in rng.choice(absent, size=take, replace=False)) if take else []

    def query(cid: int, truth: list[TruthMask]) -> ConceptQuery:
        qid = f"{image_id}_{cid}"
        return ConceptQuery(qid, category_phrase(categories.get(cid, str(cid))), [truth],
                            exhaustive=cid not in not_exhaustive, source_id=qid, extra={"category_id": cid})

    return [query(c, truths[c]) for c in sorted(truths)] + [query(c, []) for c in negative_ids if c not in truths]


def _stable_int(value: Any) -> int:
    """An image id as a non-negative int for seeding (COCO ids are ints; others hashed stably)."""
    try:
        return abs(int(value))
    except (TypeError, ValueError):
        return int.from_bytes(hashlib.sha256(str(value).encode()).digest()[:8], "little")


def sample_queries(sample: ImageSample, coco_rule: Optional[dict[str, Any]] = None) -> Sequence[ConceptQuery]:
    """The sample's queries: the reader's (SA-Co), else built from its COCO / LVIS objects with
    `coco_rule` (keyword arguments of `coco_concept_queries` but the sample)."""
    if QUERIES_KEY in sample.extra:
        return sample.extra[QUERIES_KEY]
    if coco_rule is None:
        raise ValueError("not a concept dataset")
    return coco_concept_queries(sample, **coco_rule)
