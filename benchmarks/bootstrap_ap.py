"""Cost of the mask-AP bootstrap against the per-image matching every instances run does.

    python benchmarks/bootstrap_ap.py [--images 500] [--lvis] [--resamples 1000] [--seed 0]

Synthetic COCO-like scenes (640x480, Poisson(7) objects of Zipf-distributed categories, rectangle and
masks; per object 1-3 jittered detections, the rest of `max_dets` random ones, float32 scores as a
detector writes them) go through the CPU work an instances run does for every image on any device
after the model: RLE encoding of the predicted masks (`encode_masks`) and the libraries' matching
(`SegmEvaluator.evaluate_image`), timed together: a floor of the task's wall time. Then `--resamples` bootstrap replicates of the mask AP are computed from the
stored records (`UnitSample.replicates`), and a few with the libraries' own `accumulate` to show
the replicates are the libraries' numbers. `--lvis`: 1,203 categories with LVIS frequencies,
negative / not-exhaustive lists and 300 detections per image.

The bootstrap's cost and the matching's both grow linearly with the number of images (and of
detections), so their ratio on a subset is the ratio on the full set. The last line is
`mask-AP bootstrap (<n> resamples) / per-image encoding + matching: <ratio>x`; the limit is 0.1x.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from pycocotools import mask as mask_utils

from sam_bench.data.coco_results import encode_masks
from sam_bench.metrics.bootstrap import resample_indices
from sam_bench.metrics.coco import SegmEvaluator

H, W = 480, 640


def categories(lvis: bool) -> list[dict]:
    n = 1203 if lvis else 80
    rng = np.random.default_rng(7)
    freq = rng.choice(["r", "c", "f"], n, p=[0.28, 0.38, 0.34])
    return [{"id": k + 1, "name": f"c{k}", **({"frequency": str(freq[k])} if lvis else {})} for k in range(n)]


def scene(rng: np.random.Generator, image_id: int, n_cats: int, lvis: bool, max_dets: int):
    """(image, ground-truth annotations, (N, H, W) detection masks, their categories and scores)."""
    zipf = 1.0 / np.arange(1, n_cats + 1)
    zipf /= zipf.sum()
    anns, dets = [], []
    for k in range(max(1, rng.poisson(7))):
        mask = np.zeros((H, W), np.uint8)
        w, h = (np.exp(rng.uniform(np.log(6), np.log(400), 2))).astype(int)
        x, y = rng.integers(0, W - w + 1), rng.integers(0, H - h + 1)
        mask[y:y + h, x:x + w] = 1
        cat = int(rng.choice(n_cats, p=zipf)) + 1
        rle = mask_utils.encode(np.asfortranarray(mask))
        anns.append({"id": k + 1, "image_id": image_id, "category_id": cat, "segmentation": rle,
                     "area": float(mask.sum()), "iscrowd": 0, "bbox": [float(v) for v in mask_utils.toBbox(rle)]})
        for _ in range(rng.integers(1, 4)):  # jittered copies: matches at a range of IoUs
            dx, dy = rng.integers(-w // 5 - 1, w // 5 + 2), rng.integers(-h // 5 - 1, h // 5 + 2)
            det = np.zeros((H, W), np.uint8)
            det[max(0, y + dy):y + h + dy, max(0, x + dx):x + w + dx] = 1
            dets.append((det, cat, float(np.float32(rng.uniform(0.3, 1.0)))))
    cats_here = sorted({a["category_id"] for a in anns})
    neg = [int(c) for c in rng.choice(n_cats, 3, replace=False) + 1 if c not in cats_here] if lvis else []
    pool = cats_here + neg
    while len(dets) < max_dets:  # background detections of the image's (or its negative) categories
        det = np.zeros((H, W), np.uint8)
        w, h = (np.exp(rng.uniform(np.log(6), np.log(300), 2))).astype(int)
        x, y = rng.integers(0, W - w + 1), rng.integers(0, H - h + 1)
        det[y:y + h, x:x + w] = 1
        dets.append((det, int(rng.choice(pool)), float(np.float32(rng.uniform(0.05, 0.6)))))
    image = {"id": image_id, "height": H, "width": W, "neg_category_ids": neg, "not_exhaustive_category_ids": []}
    return image, anns, np.stack([d[0] for d in dets]).astype(bool), [d[1] for d in dets], [d[2] for d in dets]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--lvis", action="store_true")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cats = categories(args.lvis)
    evaluator = SegmEvaluator(cats, args.lvis)
    rng = np.random.default_rng(args.seed)
    records, encoding, matching = [], 0.0, 0.0
    for image_id in range(1, args.images + 1):
        image, anns, masks, det_cats, scores = scene(rng, image_id, len(cats), args.lvis, evaluator.max_dets)
        start = time.perf_counter()
        results = [{"image_id": image_id, "category_id": c, "segmentation": rle, "score": s}
                   for rle, c, s in zip(encode_masks(masks), det_cats, scores)]
        encoded = time.perf_counter()
        records.append(evaluator.evaluate_image(image, anns, results))
        encoding, matching = encoding + encoded - start, matching + time.perf_counter() - encoded
    n_dets = sum(len(r["score"]) * 3 // 4 // 8 for r in records)  # base64 of float64 scores
    print(f"{'LVIS' if args.lvis else 'COCO'}-like: {args.images} images, {len(cats)} categories, "
          f"{n_dets} detections; per image: encoding {1000 * encoding / args.images:.1f} ms, matching "
          f"{1000 * matching / args.images:.1f} ms ({encoding + matching:.1f} s in all)")

    sample = evaluator.unit_sample([str(i) for i in range(len(records))], records)
    start = time.perf_counter()
    replicates = sample.replicates(args.resamples, args.seed)
    boot = time.perf_counter() - start
    print(f"bootstrap: {args.resamples} resamples in {boot:.1f} s ({1000 * boot / args.resamples:.1f} ms each)")

    checks = list(resample_indices(len(records), 3, args.seed))
    start = time.perf_counter()
    # a resample is a multiset: listed in image order, as the bootstrap lists it
    library = [evaluator.summarize([(k, records[i]) for k, i in enumerate(np.sort(index))]) for index in checks]
    per_library = (time.perf_counter() - start) / len(checks)
    worst = max(abs(library[k][m] - replicates[m][k]) for k in range(len(checks)) for m in library[k])
    print(f"the libraries' accumulate: {per_library:.2f} s per resample ({per_library * args.resamples / 60:.1f} min "
          f"for {args.resamples}); largest difference from the replicates over {len(checks)} resamples: {worst:.1e}")
    print(f"bootstrap / matching alone: {boot / matching:.3f}")
    print(f"mask-AP bootstrap ({args.resamples} resamples) / per-image encoding + matching: "
          f"{boot / (encoding + matching):.3f}x")


if __name__ == "__main__":
    main()
