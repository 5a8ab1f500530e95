"""Edge evaluation time: plain single-process pyEdgeEval vs sam-bench's evaluator, same numbers.

    python benchmarks/edges_eval.py [--images N] [--thresholds 99] [--models sobel,canny,felzenszwalb]
                                    [--workers 0] [--data-root ../shared/data/bsds500] [--split val]

For each weight-free baseline, edge maps of the first N images of the split are written as PNGs,
then scored twice: by pyEdgeEval's `calculate_metrics` + BSDS routine with nproc=1 ("plain"), and
by `sam_bench.metrics.bsds` (threshold de-duplication + parallel processes). Both reseed the
matcher identically, so the metrics must agree to 1e-6; the script checks it. The plain runs are
profiled (matcher, thinning, rest) to show where the time goes. A full plain run (~2-5 min per dense image per core)
is too slow for a benchmark, so this runs on a subset (N images) and says so. The last line is
`edge eval vs pyedgeeval: <ratio>x` (total plain time / total optimised time over all models).
"""
from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2

from sam_bench.core.workers import available_cpus
from sam_bench.data.images import read_rgb
from sam_bench.core.edge_maps import to_uint8
from sam_bench.metrics.bsds import (BoundaryEvalParams, EvalItem, EvalStats, _pee_boundaries,
                                     evaluate_counts, seeded_matching, summarize)
from sam_bench.plugins import load_plugins
from sam_bench.registry import MODELS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "bsds500"


def write_maps(model_name: str, images: list[Path], gt_dir: Path, out: Path) -> list[EvalItem]:
    model = MODELS.get(model_name)()
    items = []
    for path in images:
        png = out / model_name / f"{path.stem}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(png), to_uint8(model.detect_edges(read_rgb(path))))
        items.append(EvalItem(path.stem, png, gt_dir / f"{path.stem}.mat"))
    return items


@contextlib.contextmanager
def profiled(spent: dict[str, float]):
    """Time spent in pyEdgeEval's matcher and thinning while the block runs."""
    def timed(name, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return wrapper

    matcher, thin = _pee_boundaries.correspond_pixels, _pee_boundaries.binary_thin
    _pee_boundaries.correspond_pixels = timed("matcher (C++ correspond_pixels)", matcher)
    _pee_boundaries.binary_thin = timed("thinning (binary_thin)", thin)
    try:
        yield
    finally:
        _pee_boundaries.correspond_pixels, _pee_boundaries.binary_thin = matcher, thin


def plain(items: list[EvalItem], thresholds: int, spent: dict[str, float]) -> dict[str, float]:
    from pyEdgeEval.common.binary_label import calculate_metrics
    from pyEdgeEval.datasets import bsds_eval_single

    samples = [dict(name=i.image_id, thresholds=thresholds, gt_path=str(i.ground_truth), pred_path=str(i.prediction),
                    scale=1.0, apply_thinning=True, apply_nms=False, max_dist=0.0075) for i in items]
    with seeded_matching(1), profiled(spent):
        _, _, overall = calculate_metrics(eval_single=bsds_eval_single, thresholds=thresholds, samples=samples,
                                          nproc=1)
    return {"ODS": overall["ODS_f1"], "OIS": overall["OIS_f1"], "AP": overall["AP"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=SHARED)
    parser.add_argument("--split", default="val")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--thresholds", type=int, default=99)
    parser.add_argument("--models", default="sobel,canny,felzenszwalb")
    parser.add_argument("--workers", type=int, default=0, help="processes for the optimised path (0: all cores)")
    args = parser.parse_args()
    load_plugins()
    images = sorted((args.data_root / "images" / args.split).glob("*.jpg"))[: args.images]
    if not images:
        raise SystemExit(f"no images under {args.data_root / 'images' / args.split}")
    gt_dir = args.data_root / "groundTruth" / args.split
    params = BoundaryEvalParams(thresholds=args.thresholds)
    workers = args.workers or available_cpus()
    print(f"subset: {len(images)} {args.split} images of {args.data_root} (a full plain run is hours on a "
          f"2-core machine), {args.thresholds} thresholds; optimised path with {workers} processes")
    totals = {"plain": 0.0, "ours": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        maps = {m: write_maps(m, images, gt_dir, Path(tmp)) for m in args.models.split(",")}
        for model, items in maps.items():
            spent: dict[str, float] = defaultdict(float)
            start = time.perf_counter()
            reference = plain(items, args.thresholds, spent)
            t_plain = time.perf_counter() - start
            spent["rest (loading, thresholding, sums)"] = t_plain - sum(spent.values())
            stats = EvalStats()
            start = time.perf_counter()
            ours = summarize(evaluate_counts(items, params, workers=workers, stats=stats), params.threshold_values())
            t_ours = time.perf_counter() - start
            same = all(abs(reference[k] - v) <= 1e-6 for k, v in (("ODS", ours.ods), ("OIS", ours.ois), ("AP", ours.ap)))
            if not same:
                raise SystemExit(f"{model}: metrics differ: pyEdgeEval {reference} vs ours "
                                 f"ODS {ours.ods} OIS {ours.ois} AP {ours.ap}")
            totals["plain"] += t_plain
            totals["ours"] += t_ours
            print(f"{model}: where plain pyEdgeEval spends its {t_plain:.1f} s: " + ", ".join(
                f"{name} {100 * sec / t_plain:.1f}%" for name, sec in sorted(spent.items(), key=lambda kv: -kv[1])))
            print(f"{model:<13} plain {t_plain:8.1f} s   ours {t_ours:8.1f} s   ({t_plain / t_ours:.2f}x; "
                  f"{stats.maps_evaluated}/{stats.maps_total} distinct maps; ODS {ours.ods:.6f} OIS {ours.ois:.6f} "
                  f"AP {ours.ap:.6f}, identical to pyEdgeEval)")
    print(f"total         plain {totals['plain']:8.1f} s   ours {totals['ours']:8.1f} s")
    print(f"edge eval vs pyedgeeval: {totals['plain'] / totals['ours']:.2f}x")


if __name__ == "__main__":
    main()
