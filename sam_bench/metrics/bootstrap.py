"""Seeded bootstrap: 95% intervals of every headline metric, paired differences between runs.

A metric is a statistic of evaluation *units*: objects (mIoU, NoC), images (AP, AR, ODS / OIS,
text), sequences (J&F), queries (cgF1). One replicate draws as many units as there are, with
replacement (`resample_indices`: numpy's PCG64 seeded with the run's seed, one index array per
replicate, so the draws depend only on the seed and the number of units), and recomputes the
statistic; the interval is the 2.5th and 97.5th percentile of the replicates (percentile
bootstrap). `--ci N|off` sets N (default 1000); it is part of the run identity.

Two ways to use it:

- Direct: ``bootstrap_ci(values, np.mean, n, seed)`` -> ``(low, high)`` for any statistic of a
  sequence of units, or ``bootstrap_cis(records, summarize, n, seed)`` -> ``{metric: (low, high)}``
  when one resample feeds several metrics, e.g. a reference library's accumulation run on the
  resampled per-image records (COCOeval's evaluateImg results are computed once per image; only
  ``accumulate`` runs per replicate).
- Stored (what the runner and the report use): a task returns a `UnitSample` from
  ``Task.bootstrap_units``: unit ids, per-unit data and the name of a registered statistic
  (`STATISTICS`: ``mean``, ``ratio``, ``ratios``, ``coco_segm``, ``bsds``, ``cgf1``; add one with
  ``@STATISTICS.register("name")`` on a function ``(columns, params) -> (indices -> metrics)``; a
  returned object with a ``many(list of index arrays)`` method computes all replicates in one
  pass). The runner writes it to ``units.json`` beside ``metrics.json`` and adds
  ``<metric>_ci_low`` / ``<metric>_ci_high`` from ``UnitSample.intervals``; the report reads it back for `paired_difference` (two runs, their
  common units, the same resamples for both) and `stratified_mean` (a mean over datasets with
  units resampled within each dataset, e.g. the SA-23 mean). A new task needs only, e.g. for J&F
  over sequences::

      def bootstrap_units(self, ctx, results):
          return UnitSample("sequence", [r.image_id for r in results], "mean",
                            {"J&F": [r.payload["jf"] for r in results]})
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from ..registry import Registry

DEFAULT_RESAMPLES = 1000
LEVEL = 0.95
UNITS_FILE = "units.json"

#: f(unit indices, repeats allowed) -> {metric: value}
Statistic = Callable[[np.ndarray], dict[str, float]]
#: name -> f({column: one entry per unit, as an array}, params) -> Statistic (built once per sample)
STATISTICS: Registry = Registry("bootstrap statistic")


def resample_indices(n_units: int, n: int, seed: int) -> Iterator[np.ndarray]:
    """`n` index arrays of length `n_units` drawn with replacement; the same for the same arguments."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield rng.integers(0, n_units, n_units)


def percentile_interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[Optional[float], Optional[float]]:
    """(low, high) percentiles of the finite replicates; (None, None) when none is finite."""
    finite = np.asarray(replicates, float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return None, None
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_cis(units: Sequence[Any], statistic: Callable[[list[Any]], dict[str, float]], n: int = DEFAULT_RESAMPLES,
                  seed: int = 0, level: float = LEVEL) -> dict[str, tuple[Optional[float], Optional[float]]]:
    """{metric: (low, high)} of a statistic that maps a list of units to several metrics."""
    names = list(statistic(list(units)))
    reps: dict[str, list[float]] = {name: [] for name in names}
    for index in resample_indices(len(units), n, seed):
        drawn = statistic([units[i] for i in index])
        for name in names:
            reps[name].append(_value(drawn.get(name)))
    return {name: percentile_interval(np.array(values), level) for name, values in reps.items()}


def bootstrap_ci(units: Sequence[Any], statistic: Callable[[list[Any]], float], n: int = DEFAULT_RESAMPLES,
                 seed: int = 0, level: float = LEVEL) -> tuple[Optional[float], Optional[float]]:
    """(low, high) of a scalar statistic of a list of units, e.g. ``bootstrap_ci(ious, np.mean)``."""
    return bootstrap_cis(units, lambda drawn: {"value": statistic(drawn)}, n, seed, level)["value"]


@dataclass
class UnitSample:
    """Per-unit data of one (run, dataset) and the statistic that turns it into metrics."""

    unit: str  # object | image | sequence | query
    ids: list[str]  # unique, stable across runs: how two runs' units are matched
    statistic: str  # a STATISTICS name
    data: dict[str, list[Any]]  # column -> one entry per unit
    params: dict[str, Any] = field(default_factory=dict)
    # The run's own replicates, kept in units.json: a report comparing two runs over the same
    # units with the same resamples and seed subtracts them instead of re-running the statistic.
    stored: dict[str, list[Optional[float]]] = field(default_factory=dict)
    resamples: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        self.ids = [str(i) for i in self.ids]
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"bootstrap units ({self.unit}s) have repeated ids")
        if any(len(column) != len(self.ids) for column in self.data.values()):
            raise ValueError(f"bootstrap units: every column needs one entry per {self.unit}")
        self._evaluate: Optional[Statistic] = None

    def evaluate(self, index: np.ndarray) -> dict[str, float]:
        """The metrics of the units at `index` (repeats allowed: a resample)."""
        return self._statistic()(np.asarray(index))

    def _statistic(self) -> Statistic:
        if self._evaluate is None:  # caches what every resample needs (arrays, decoded records)
            columns = {name: _as_array(column) for name, column in self.data.items()}
            self._evaluate = STATISTICS.get(self.statistic)(columns, self.params)
        return self._evaluate

    def subset(self, ids: Sequence[str]) -> "UnitSample":
        where = {u: k for k, u in enumerate(self.ids)}
        index = [where[u] for u in ids]
        return UnitSample(self.unit, list(ids), self.statistic,
                          {name: [column[i] for i in index] for name, column in self.data.items()}, self.params)

    def replicates(self, n: int, seed: int) -> dict[str, np.ndarray]:
        """{metric: n replicate values} (NaN where a resample leaves the metric undefined)."""
        if self.stored and (self.resamples, self.seed) == (n, seed):
            return {name: np.array([_value(v) for v in values], float) for name, values in self.stored.items()}
        names = list(self.evaluate(np.arange(len(self.ids))))
        drawn = self.evaluate_many(list(resample_indices(len(self.ids), n, seed)))
        # a metric a resample leaves undefined is absent or None: NaN
        return {name: np.array([_value(d.get(name)) for d in drawn], float) for name in names}

    def evaluate_many(self, indices: Sequence[np.ndarray]) -> list[dict[str, float]]:
        """`evaluate` of each index array; statistics with a `many` method do them all in one pass."""
        statistic = self._statistic()
        many = getattr(statistic, "many", None)
        return many(indices) if many is not None else [statistic(np.asarray(i)) for i in indices]

    def keep_replicates(self, n: int, seed: int) -> None:
        """Compute the replicates once and keep them (written to units.json with the sample)."""
        reps = self.replicates(n, seed)
        self.stored = {name: [None if not np.isfinite(v) else float(v) for v in values] for name, values in reps.items()}
        self.resamples, self.seed = n, seed

    def intervals(self, n: int, seed: int, level: float = LEVEL) -> dict[str, Optional[float]]:
        """metrics.json entries `<metric>_ci_low` / `<metric>_ci_high`."""
        out: dict[str, Optional[float]] = {}
        for name, values in self.replicates(n, seed).items():
            out[f"{name}_ci_low"], out[f"{name}_ci_high"] = percentile_interval(values, level)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "ids": self.ids, "statistic": self.statistic, "data": self.data,
                "params": self.params, "replicates": self.stored, "resamples": self.resamples, "seed": self.seed}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "UnitSample":
        return cls(data["unit"], data["ids"], data["statistic"], data["data"], data.get("params", {}),
                   data.get("replicates", {}), data.get("resamples", 0), data.get("seed", 0))


@dataclass
class Difference:
    """metric(a) - metric(b) on the units both runs evaluated, with its paired-bootstrap interval."""

    value: Optional[float]
    low: Optional[float]
    high: Optional[float]
    common: int  # units in both runs
    only_a: int
    only_b: int
    replicates: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def contains_zero(self) -> bool:
        return self.low is None or self.high is None or self.low <= 0 <= self.high


def paired_difference(a: UnitSample, b: UnitSample, n: int = DEFAULT_RESAMPLES, seed: int = 0,
                      level: float = LEVEL) -> dict[str, Difference]:
    """Paired bootstrap of a - b over their common units: both are resampled with the same indices.

    Empty when the runs share no unit (the caller says so instead of printing a difference).
    """
    in_b = set(b.ids)
    common = [u for u in a.ids if u in in_b]
    counts = dict(common=len(common), only_a=len(a.ids) - len(common), only_b=len(b.ids) - len(common))
    if not common:
        return {}
    everything = np.arange(len(common))
    if a.ids == b.ids and all(s.stored and (s.resamples, s.seed) == (n, seed) for s in (a, b)):
        # the same units in the same order: the runs' own replicates used the same indices
        point_a, point_b = a.evaluate(everything), b.evaluate(everything)
        ra, rb = a.replicates(n, seed), b.replicates(n, seed)
        return {m: Difference(_minus(point_a[m], point_b[m]), *percentile_interval(ra[m] - rb[m], level), **counts,
                              replicates=ra[m] - rb[m]) for m in point_a if m in point_b and m in ra and m in rb}
    a, b = a.subset(common), b.subset(common)
    point_a, point_b = a.evaluate(everything), b.evaluate(everything)
    names = [m for m in point_a if m in point_b]
    indices = list(resample_indices(len(common), n, seed))
    drawn = zip(a.evaluate_many(indices), b.evaluate_many(indices))
    reps: dict[str, list[float]] = {m: [] for m in names}
    for ra, rb in drawn:
        for m in names:
            reps[m].append(_minus(ra.get(m), rb.get(m)))
    return {m: Difference(_minus(point_a[m], point_b[m]), *percentile_interval(np.array(reps[m]), level), **counts,
                          replicates=np.array(reps[m])) for m in names}


def mean_difference(parts: Sequence[Difference], level: float = LEVEL) -> Difference:
    """The mean over datasets of per-dataset paired differences (drawn with the same n): each
    replicate averages the datasets' replicates, i.e. units are resampled within each dataset."""
    reps = np.mean([d.replicates for d in parts], axis=0)
    return Difference(float(np.mean([d.value for d in parts])), *percentile_interval(reps, level),
                      sum(d.common for d in parts), sum(d.only_a for d in parts), sum(d.only_b for d in parts), reps)


def stratified_mean(samples: Sequence[UnitSample], metric: str, n: int = DEFAULT_RESAMPLES, seed: int = 0,
                    level: float = LEVEL) -> tuple[float, Optional[float], Optional[float]]:
    """Mean of `metric` over several datasets and its interval, units resampled within each
    dataset (each dataset keeps its size, as its own bootstrap does)."""
    values = [s.evaluate(np.arange(len(s.ids)))[metric] for s in samples]
    reps = np.mean([s.replicates(n, seed)[metric] for s in samples], axis=0)
    return (float(np.mean(values)), *percentile_interval(reps, level))


def _as_array(column: list[Any]) -> np.ndarray:
    """Numbers (None -> NaN) as a float array, anything else (records) as an object array: a
    resample is then one fancy-indexing call, not a Python loop over units."""
    try:
        return np.asarray(column, float)
    except (TypeError, ValueError):
        out = np.empty(len(column), object)
        out[:] = column
        return out


def _value(x: Optional[float]) -> float:
    return np.nan if x is None else float(x)


def _minus(x: Optional[float], y: Optional[float]) -> float:
    return np.nan if x is None or y is None else float(x) - float(y)


# ------------------------------------------------------------------------- built-in statistics
@STATISTICS.register("mean", help="mean over units of each column (NaN entries: unit not counted)")
def _mean(columns: dict[str, np.ndarray], params: dict[str, Any]) -> Statistic:
    def statistic(index: np.ndarray) -> dict[str, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column with no defined entry -> NaN
            return {name: float(np.nanmean(column[index])) for name, column in columns.items()}
    return statistic


@STATISTICS.register("ratio", help="per unit [denominator, numerator_1..k]: mean_k(sum num_k / sum den)")
def _ratio(columns: dict[str, np.ndarray], params: dict[str, Any]) -> Statistic:
    def statistic(index: np.ndarray) -> dict[str, float]:
        out = {}
        for name, column in columns.items():
            total = column[index].sum(axis=0)
            out[name] = float(np.mean(total[1:] / total[0])) if total[0] > 0 else np.nan
        return out
    return statistic


@STATISTICS.register("coco_segm", help="COCOeval / LVISEval mask AP from the per-image match records")
def _coco_segm(columns: dict[str, np.ndarray], params: dict[str, Any]) -> Statistic:
    from .coco_resample import ResampledAP

    return ResampledAP(list(columns["records"]), params["lvis"], params["categories"], params["max_dets"])


@STATISTICS.register("bsds", help="pyEdgeEval's ODS / OIS / AP / R50 from per-image count arrays")
def _bsds(columns: dict[str, np.ndarray], params: dict[str, Any]) -> Statistic:
    from .bsds import headline_from_sums

    counts, best, thresholds = columns["counts"], columns["best"], np.asarray(params["thresholds"])
    # counts (units, 4, T); best (units, 4): each image's counts at its own best threshold (OIS)
    return lambda index: headline_from_sums(counts[index].sum(axis=0), best[index].sum(axis=0), thresholds)


@STATISTICS.register("ratios", help="per unit [denominators, numerators] (2, k): mean_k(sum num_k / sum den_k)")
def _ratios(columns: dict[str, np.ndarray], params: dict[str, Any]) -> Statistic:
    # `ratio` with a denominator per k: e.g. J&F@k over the objects scored at round k
    def statistic(index: np.ndarray) -> dict[str, float]:
        out = {}
        for name, column in columns.items():
            total = column[index].sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):  # a k with no unit drawn: NaN
                out[name] = float(np.mean(total[1] / total[0]))
        return out
    return statistic


@STATISTICS.register("cgf1", help="SAM 3's cgF1, pmF1, IL_MCC from the per-query count vectors (metrics/cgf1.py)")
def _cgf1(columns: dict[str, np.ndarray], params: dict[str, Any]) -> Statistic:
    from .cgf1 import INTERVAL_METRICS, from_totals

    counts = columns["counts"]

    def statistic(index: np.ndarray) -> dict[str, float]:
        metrics = from_totals(counts[index].sum(axis=0))
        return {name: metrics[name] for name in INTERVAL_METRICS}
    return statistic
