"""The BSDS boundary benchmark through pyEdgeEval: ODS, OIS, AP and R50, evaluated in parallel.

Per image, pyEdgeEval's own routine (`evaluate_boundaries_threshold_multiple_gts`: threshold,
thin, match against every annotator with the BSDS pixel-correspondence code) yields four count
arrays over the thresholds; the dataset metrics follow from their sums.

What this module adds, without changing any number:
- Reproducibility. The correspondence code builds a sparse random outlier graph from a C++ RNG
  seeded from the clock, so plain pyEdgeEval returns slightly different matches from run to run
  (about one pixel in a few thousand; ODS/OIS/AP moved by 1e-5 to 1e-4 between identical runs on
  two val images). We reseed that RNG before every match (`match_seed`), which makes each match a
  pure function of its inputs: the same numbers on every run, in any order, in any number of
  processes, and equal to pyEdgeEval's own evaluator run under the same seeding (tested).
  `match_seed=0` keeps the library's clock seeding.
- Speed. ~99% of the time is the C++ matcher (profile in benchmarks/edges_eval.py). Thresholds
  that give the same binary map (common on maps with few distinct values) are evaluated once and
  the work is spread over processes in (image, threshold subset) units; finished images are cached.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import json
import math
import multiprocessing
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from ..core.workers import available_cpus, die_with_parent
from ..errors import ConfigError, DataError

with contextlib.redirect_stdout(io.StringIO()):
    # pyEdgeEval prints a warning about an optional loader for MATLAB v7.3 files (BSDS uses v5).
    import pyEdgeEval.common.binary_label.evaluate_boundaries as _pee_boundaries
    from pyEdgeEval.common.metrics import compute_rec_prec_f1, f1, interpolated_max_scores
    from pyEdgeEval.common.utils import check_thresholds
    from pyEdgeEval.datasets.bsds import load_bsds_gt_boundaries, load_predictions

THRESHOLDS_PER_UNIT = 25  # thresholds per work unit: 4 units per image at 99 thresholds


@dataclass(frozen=True)
class BoundaryEvalParams:
    thresholds: int = 99  # evenly spaced in (0, 1), as the BSDS benchmark
    max_dist: float = 0.0075  # match tolerance as a fraction of the image diagonal
    thinning: bool = True  # thin each thresholded map before matching
    match_seed: int = 1  # seed of the matcher's RNG before every match; 0: clock (not reproducible)

    def threshold_values(self) -> np.ndarray:
        return check_thresholds(int(self.thresholds))


@dataclass(frozen=True)
class EvalItem:
    image_id: str
    prediction: Path  # uint8 PNG edge map
    ground_truth: Path  # BSDS groundTruth .mat, or .npz with "boundaries" (K, H, W)


# -- deterministic matching ------------------------------------------------------------------------

def _matcher_reseed():
    """ctypes handle on `Random::reseed` of the RNG inside pyEdgeEval's correspondence library."""
    library = sys.modules[_pee_boundaries.correspond_pixels.__module__]
    try:
        lib = ctypes.CDLL(library.__file__)
        state = ctypes.addressof(ctypes.c_char.in_dll(lib, "_ZN6Random4randE"))
        reseed = lib._ZN6Random6reseedEm
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{library.__file__}: cannot reach the matcher's RNG to seed it ({exc}); "
                          "use --match-seed 0 for pyEdgeEval's unseeded matching") from None
    reseed.argtypes, reseed.restype = [ctypes.c_void_p, ctypes.c_uint64], None
    return lambda seed: reseed(state, seed)


@contextlib.contextmanager
def seeded_matching(seed: int) -> Iterator[None]:
    """Within the block, pyEdgeEval's pixel matcher reseeds its RNG with `seed` before every call."""
    if seed == 0:
        yield
        return
    reseed = _matcher_reseed()
    original = _pee_boundaries.correspond_pixels

    def correspond_pixels(*args: Any, **kwargs: Any):
        reseed(seed)
        return original(*args, **kwargs)

    _pee_boundaries.correspond_pixels = correspond_pixels
    try:
        yield
    finally:
        _pee_boundaries.correspond_pixels = original


# -- loading ---------------------------------------------------------------------------------------

def load_ground_truth(path: Path) -> list[np.ndarray]:
    """Boundary maps of every annotator, read the way pyEdgeEval reads them."""
    path = Path(path)
    try:
        if path.suffix == ".mat":
            return load_bsds_gt_boundaries(str(path))
        with np.load(path) as data:
            return list(data["boundaries"].astype(np.uint8))
    except Exception as exc:  # scipy's MatReadError, zip errors, a missing field: all "unreadable"
        raise DataError(f"{path}: cannot read edge ground truth ({type(exc).__name__}: {exc})") from None


def load_edge_map(path: Path) -> np.ndarray:
    """A uint8 PNG edge map as float64 in [0, 1], exactly as pyEdgeEval reads it."""
    try:
        return load_predictions(str(path))
    except AssertionError:
        raise DataError(f"{path}: edge maps must be 8-bit grey PNGs") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read edge map ({exc})") from None


def threshold_groups(edge: np.ndarray, thresholds: np.ndarray) -> list[list[int]]:
    """Indices of thresholds grouped by identical binary maps `edge >= t` (in threshold order).

    Two thresholds give the same map exactly when no edge value lies between them, i.e. when the
    smallest value >= t is the same for both.
    """
    values = np.unique(edge)
    keys = np.searchsorted(values, thresholds, side="left")
    groups: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(int(key), []).append(index)
    return list(groups.values())


# -- evaluation ------------------------------------------------------------------------------------

def _evaluate_unit(item: EvalItem, thresholds: np.ndarray, params: BoundaryEvalParams) -> np.ndarray:
    """(4, len(thresholds)) counts (count_r, sum_r, count_p, sum_p) of one image: pyEdgeEval's routine."""
    edge = load_edge_map(item.prediction)
    gts = load_ground_truth(item.ground_truth)
    for gt in gts:
        if gt.shape != edge.shape:
            raise DataError(f"{item.prediction}: edge map is {edge.shape[1]}x{edge.shape[0]} but the "
                            f"ground truth {item.ground_truth} is {gt.shape[1]}x{gt.shape[0]}")
    with seeded_matching(params.match_seed):
        counts = _pee_boundaries.evaluate_boundaries_threshold_multiple_gts(
            thresholds=np.asarray(thresholds, dtype=np.float64), pred=edge, gts=gts,
            max_dist=params.max_dist, apply_thinning=params.thinning, apply_nms=False)
    return np.stack(counts).astype(np.float64)


def _run_unit(args: tuple[int, list[int], EvalItem, BoundaryEvalParams]) -> tuple[int, list[int], np.ndarray, float]:
    index, columns, item, params = args
    start = time.process_time()
    counts = _evaluate_unit(item, params.threshold_values()[columns], params)
    return index, columns, counts, time.process_time() - start


def _cache_key(item: EvalItem, params: BoundaryEvalParams) -> str:
    digest = hashlib.sha256(Path(item.prediction).read_bytes())
    gt = Path(item.ground_truth)
    digest.update(json.dumps([str(gt.resolve()), gt.stat().st_size, asdict(params)]).encode())
    return digest.hexdigest()


@dataclass
class EvalStats:
    """Where the evaluation went: recorded beside the results (edge_eval.json)."""

    images: int = 0
    cached_images: int = 0  # taken from the cache of an earlier (interrupted) evaluation
    workers: int = 1
    units: int = 0
    maps_total: int = 0  # thresholded maps the plain benchmark matches (images x thresholds)
    maps_evaluated: int = 0  # distinct ones actually matched
    cpu_seconds: float = 0.0  # summed over processes: independent of the number of workers
    wall_seconds: float = 0.0


def evaluate_counts(items: Sequence[EvalItem], params: BoundaryEvalParams, workers: int = 0,
                    cache_dir: Optional[Path] = None, progress: bool = False,
                    stats: Optional[EvalStats] = None) -> list[np.ndarray]:
    """(4, T) count arrays per item, in item order; identical for any `workers` (0: all cores)."""
    stats = stats if stats is not None else EvalStats()
    started = time.perf_counter()
    thresholds = params.threshold_values()
    counts: list[np.ndarray] = [np.zeros((4, len(thresholds))) for _ in items]
    keys: dict[int, str] = {}
    plans: dict[int, list[list[int]]] = {}  # image -> thresholds grouped by identical binary maps
    units = []
    for index, item in enumerate(items):
        if cache_dir is not None:
            keys[index] = _cache_key(item, params)
            cached = _read_cache(Path(cache_dir), item.image_id, keys[index])
            if cached is not None and cached.shape == counts[index].shape:
                counts[index] = cached
                stats.cached_images += 1
                continue
        plans[index] = threshold_groups(load_edge_map(item.prediction), thresholds)
        representatives = [group[0] for group in plans[index]]
        stats.maps_total += len(thresholds)
        stats.maps_evaluated += len(representatives)
        n_units = math.ceil(len(representatives) / THRESHOLDS_PER_UNIT)
        # Interleaved subsets: low thresholds (dense maps) cost the most, so spread them out.
        units += [(index, representatives[k::n_units], item, params) for k in range(n_units)]
    pending = Counter(unit[0] for unit in units)

    def finish(index: int, columns: list[int], result: np.ndarray, cpu: float) -> None:
        counts[index][:, columns] = result
        stats.cpu_seconds += cpu
        pending[index] -= 1
        if pending[index] == 0:
            for group in plans[index]:  # same binary map, same counts
                counts[index][:, group] = counts[index][:, [group[0]]]
            if cache_dir is not None:
                _write_cache(Path(cache_dir), items[index].image_id, keys[index], counts[index])

    workers = min(available_cpus() if workers <= 0 else workers, max(1, len(units)))
    stats.images, stats.workers, stats.units = len(items), workers, len(units)
    bar = _progress(len(units), progress)
    if workers == 1:
        for unit in units:
            finish(*_run_unit(unit))
            bar.update()
    else:
        # fork: workers start at once and scripts need no main guard; they run no torch/OpenMP code.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as pool:  # no orphans after a kill -9
            futures = [pool.submit(_run_unit, unit) for unit in units]
            try:
                for future in as_completed(futures):
                    finish(*future.result())
                    bar.update()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    bar.close()
    stats.wall_seconds = time.perf_counter() - started
    return counts


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="edge evaluation", unit="unit", disable=not enabled or total == 0,
                dynamic_ncols=True)


def _read_cache(cache_dir: Path, image_id: str, key: str) -> Optional[np.ndarray]:
    path = cache_dir / f"{image_id}.json"
    try:
        record = json.loads(path.read_text())
        return np.asarray(record["counts"], dtype=np.float64) if record.get("key") == key else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(cache_dir: Path, image_id: str, key: str, counts: np.ndarray) -> None:
    from ..io import write_json

    write_json(cache_dir / f"{image_id}.json", {"key": key, "counts": counts.tolist()})


# -- dataset metrics -------------------------------------------------------------------------------

@dataclass
class BoundaryMetrics:
    thresholds: np.ndarray
    recall: np.ndarray  # dataset-wide, per threshold
    precision: np.ndarray
    f1: np.ndarray
    ods_threshold: float
    ods_recall: float
    ods_precision: float
    ods: float
    ois_recall: float
    ois_precision: float
    ois: float
    ap: float
    r50: float
    per_image: list[dict[str, float]] = field(default_factory=list)

    def headline(self) -> dict[str, float]:
        """metrics.json: the four numbers of the paper's Table 3, then the operating points."""
        return {"ODS": self.ods, "OIS": self.ois, "AP": self.ap, "R50": self.r50,
                "ODS_threshold": self.ods_threshold, "ODS_recall": self.ods_recall,
                "ODS_precision": self.ods_precision, "OIS_recall": self.ois_recall,
                "OIS_precision": self.ois_precision}


def summarize(counts: Sequence[np.ndarray], thresholds: np.ndarray) -> BoundaryMetrics:
    """ODS, OIS, AP (pyEdgeEval's formulas) and R50 from per-image (4, T) count arrays.

    pyEdgeEval's `calculate_metrics` fuses this arithmetic with its own per-image loop and progress
    bar, so it is mirrored here from the library's helpers (tests check equality with it).
    """
    if not counts:
        raise DataError("edge evaluation: no images to evaluate")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    per_image_curves = []
    for c in counts:
        rec, prec, f1 = compute_rec_prec_f1(*c)
        per_image_curves.append((int(np.argmax(f1)), rec, prec, f1))
    best = np.sum([c[:, k] for c, (k, *_) in zip(counts, per_image_curves)], axis=0)
    total = np.sum(counts, axis=0)
    rec_all, prec_all, f1_all, ods_t, ods_r, ods_p, ods_f, ap, ois_r, ois_p, ois_f = _dataset_scores(
        total, best, thresholds)
    per_image = []
    for k, rec, prec, f1 in per_image_curves:
        # The image's curve read at the (interpolated) ODS threshold, as ODS reads the dataset curve.
        r_at, p_at = float(np.interp(ods_t, thresholds, rec)), float(np.interp(ods_t, thresholds, prec))
        f_at = 2 * p_at * r_at / (p_at + r_at) if p_at + r_at > 0 else 0.0
        per_image.append({"ods_recall": r_at, "ods_precision": p_at, "ods_f": f_at,
                          "ois_threshold": float(thresholds[k]), "ois_recall": float(rec[k]),
                          "ois_precision": float(prec[k]), "ois_f": float(f1[k])})
    return BoundaryMetrics(thresholds, rec_all, prec_all, f1_all, float(ods_t), float(ods_r), float(ods_p),
                           float(ods_f), float(ois_r), float(ois_p), float(ois_f), float(ap),
                           recall_at_50(thresholds, rec_all, prec_all, f1_all), per_image)


def best_counts(counts: np.ndarray) -> np.ndarray:
    """An image's four counts at its own best-F threshold (what OIS sums over images)."""
    return counts[:, int(np.argmax(compute_rec_prec_f1(*counts)[2]))]


def _dataset_scores(total: np.ndarray, best: np.ndarray, thresholds: np.ndarray) -> tuple:
    """Dataset curve, ODS point, AP and OIS from the summed counts and summed best-threshold counts."""
    rec_all, prec_all, f1_all = compute_rec_prec_f1(*total)
    ods_t, ods_r, ods_p, ods_f = interpolated_max_scores(thresholds, rec_all, prec_all)
    ap = _average_precision(rec_all, prec_all)
    ois_r, ois_p, ois_f = compute_rec_prec_f1(*(float(v) for v in best))
    return rec_all, prec_all, f1_all, ods_t, ods_r, ods_p, ods_f, ap, ois_r, ois_p, ois_f


def _average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """pyEdgeEval's AP: the best precision at recall >= r, averaged over r = 0, .01, .., .99 (/ 101)."""
    return sum(np.max(precision[recall >= t], initial=0) / 101 for t in np.arange(0, 1, 0.01))


def best_interpolated_f1(recall: np.ndarray, precision: np.ndarray) -> float:
    """ODS: the best F of `interpolated_max_scores` (pyEdgeEval), which walks 101 linear steps
    between neighbouring thresholds in a 10,000-iteration Python loop; here the same float operations
    on arrays (the bootstrap needs it once per resample; tested equal to the library's)."""
    d = np.linspace(0, 1, num=101)
    r = recall[1:, None] * d + recall[:-1, None] * (1 - d)
    p = precision[1:, None] * d + precision[:-1, None] * (1 - d)
    return float(max(f1(precision[0], recall[0]), f1(p, r).max(initial=-np.inf)))


def headline_from_sums(total: np.ndarray, best: np.ndarray, thresholds: np.ndarray) -> dict[str, float]:
    """ODS, OIS, AP, R50 from summed counts (4, T) and summed best-threshold counts (4,): equal to
    `summarize(...).headline()` on the images summed, without the per-image curves (the bootstrap
    recomputes these for every resample)."""
    rec, prec, f1_all = compute_rec_prec_f1(*total)
    ois = compute_rec_prec_f1(*(float(v) for v in best))[2]
    return {"ODS": best_interpolated_f1(rec, prec), "OIS": float(ois), "AP": float(_average_precision(rec, prec)),
            "R50": recall_at_50(thresholds, rec, prec, f1_all)}


def recall_at_50(thresholds: np.ndarray, recall: np.ndarray, precision: np.ndarray, f1: np.ndarray) -> float:
    """R50, recall at 50% precision, as pyEdgeEval's PR-curve code (from edgesEvalPlot.m) computes it."""
    from pyEdgeEval.visualization.pr_curve import _calc_r50

    pr = np.stack([thresholds, recall, precision, f1], axis=1)
    pr = pr[pr[:, 1] >= 1e-3]  # the rows the library's curve loader keeps
    if len(pr) == 0:  # no threshold recalls anything
        return float("nan")
    try:
        return float(_calc_r50(pr))
    except ValueError:  # interpolation impossible (older scipy with a single point)
        return float("nan")
