"""Zero-shot edge detection on BSDS500 (paper §7.2, D.2, Table 3): ODS, OIS, AP, R50.

A model that is an EdgeDetector (sobel, canny, felzenszwalb) gives its edge map directly. A
promptable segmenter goes through automatic mask generation (16x16 point grid -> 768 masks, no
predicted-IoU or stability filter, box NMS 0.7, no crops), then `sam_bench.core.edge_maps`: Sobel on each
mask's probability map kept on its boundary band, pixel-wise max, normalisation, edge NMS.
Each edge map is saved as `edge_maps/<image_id>.png` (uint8) and scored with pyEdgeEval
(`sam_bench.metrics.bsds`) against every annotator: 99 thresholds, max distance 0.0075, thinning.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pandas as pd

from ..data.types import ImageSample
from ..core.edge_maps import (BOUNDARY_MODES, NMS_METHODS, NORMALIZATIONS, edge_nms, mask_edge_map,
                     normalize_edges, to_uint8)
from ..errors import ConfigError, DataError
from ..io import atomic_write, write_json
from ..metrics.bootstrap import UnitSample
from ..metrics.bsds import (BoundaryEvalParams, BoundaryMetrics, EvalItem, EvalStats, best_counts,
                             evaluate_counts, summarize)
from ..models.base import EdgeDetector, PromptableSegmenter
from ..models.upsampling import upsampled_chunks
from ..reference import paper
from ..registry import TASKS
from ..reporting.markdown import markdown_table
from ..engine.context import ImageResult, RunContext
from ..reporting.entry import ReportEntry
from .base import Task

METRICS = ("ODS", "OIS", "AP", "R50")


@dataclass
class EdgesOptions:
    # Automatic mask generation (promptable segmenters only; paper D.2).
    points_per_side: int = 16  # 16x16 grid, 3 masks per point -> 768 masks
    box_nms_thresh: float = 0.7
    # Edge map from masks [open choices of the paper, PROTOCOLS.md §2].
    boundary: str = "outer"  # where a mask's response is kept: outer (dilation - mask) | inner | both
    boundary_width: int = 1  # band half-width in pixels: a (2w+1)x(2w+1) dilation/erosion
    sobel_ksize: int = 3  # OpenCV Sobel aperture on each mask's sigmoid(logits)
    normalize: str = "minmax"  # linear map of the max-over-masks map to [0, 1]: minmax | max | none
    edge_nms: str = "pyedgeeval"  # Dollar's structured-edge NMS as in pyEdgeEval | none
    nms_radius: int = 1  # NMS: compare with neighbours this far across the edge
    nms_border: int = 5  # NMS: fade out responses within this many pixels of the image border
    nms_multiplier: float = 1.01  # NMS: a pixel survives if > multiplier x its neighbours
    rescale_after_nms: bool = True  # divide by the max after NMS (its smoothing halves 1-px ridges),
    #                                 so the thresholds span the whole map; monotone, ranks unchanged
    # Evaluation (the BSDS benchmark through pyEdgeEval).
    thresholds: int = 99
    max_dist: float = 0.0075  # fraction of the image diagonal
    thinning: bool = True
    match_seed: int = 1  # reseed pyEdgeEval's matcher before each match (0: unseeded, not reproducible)
    eval_workers: int = 0  # scoring processes (0: all cores); never changes a number
    # `workers` was this option's name; it is the run's image-loading flag (--workers) too.
    renamed: ClassVar[dict[str, str]] = {"workers": "eval_workers"}


@TASKS.register("edges", help="zero-shot edge detection on BSDS500: ODS/OIS/AP/R50 (Table 3)")
class EdgesTask(Task):
    name = "edges"
    title = "Zero-shot edge detection (BSDS500, Table 3)"
    headline_metrics = METRICS
    Options = EdgesOptions
    paper_section = (7, 2)  # report order
    requires = (PromptableSegmenter, EdgeDetector)


    def __init__(self, options: EdgesOptions) -> None:
        super().__init__(options)
        o = options
        for name, value, allowed in (("boundary", o.boundary, BOUNDARY_MODES),
                                     ("normalize", o.normalize, NORMALIZATIONS),
                                     ("edge_nms", o.edge_nms, NMS_METHODS)):
            if value not in allowed:
                raise ConfigError(f"task 'edges': {name} must be one of {allowed}, got '{value}'")
        if o.points_per_side < 1 or o.boundary_width < 1 or o.sobel_ksize not in (1, 3, 5, 7):
            raise ConfigError("task 'edges': points_per_side and boundary_width must be >= 1, "
                              "sobel_ksize one of 1, 3, 5, 7")
        if not 0 < o.box_nms_thresh <= 1 or o.thresholds < 1 or not 0 < o.max_dist < 1 or o.match_seed < 0:
            raise ConfigError("task 'edges': box_nms_thresh in (0, 1], thresholds >= 1, max_dist in (0, 1), "
                              "match_seed >= 0")
        self.params = BoundaryEvalParams(o.thresholds, o.max_dist, o.thinning, o.match_seed)
        self.amg_settings = {"points_per_side": o.points_per_side, "pred_iou_thresh": 0.0,
                             "stability_score_thresh": 0.0, "box_nms_thresh": o.box_nms_thresh,
                             "crop_n_layers": 0, "return_low_res_logits": True}
        self.summary: BoundaryMetrics | None = None
        self.counts: list[np.ndarray] = []  # per-image pyEdgeEval counts, set by compute_metrics

    def describe(self) -> dict[str, Any]:
        import pyEdgeEval

        options = asdict(self.options)
        options.pop("eval_workers")  # how many processes evaluate is not a protocol choice
        return {**options, "amg": self.amg_settings, "evaluator": f"pyEdgeEval {pyEdgeEval.__version__}",
                "note": "mask settings apply to promptable segmenters; edge detectors give finished maps"}

    def setup(self, ctx: RunContext) -> None:
        self.generator = None
        if not isinstance(ctx.model, EdgeDetector):
            from ..amg import AmgSettings, AutomaticMaskGenerator

            model: PromptableSegmenter = ctx.model  # type: ignore[assignment]  # runner checked Task.requires
            self.generator = AutomaticMaskGenerator(model, AmgSettings(**self.amg_settings))

    # -- per image ------------------------------------------------------------------------------
    def edge_map(self, ctx: RunContext, image: np.ndarray) -> tuple[np.ndarray, int | None]:
        """(H, W) edge map in [0, 1] and the number of masks it came from (None for detectors)."""
        if self.generator is None:
            with ctx.timed("edge_map"):
                edge = np.asarray(ctx.model.detect_edges(image), dtype=np.float64)
            if edge.shape != image.shape[:2] or not np.isfinite(edge).all() or edge.min() < 0 or edge.max() > 1:
                raise ConfigError(f"model '{ctx.model.info.name}': detect_edges must return an "
                                  f"{image.shape[:2]} map in [0, 1]; got {edge.shape}, "
                                  f"range [{np.nanmin(edge):.3g}, {np.nanmax(edge):.3g}]")
            return edge, None
        model: PromptableSegmenter = ctx.model  # type: ignore[assignment]
        embedding = ctx.embed(image)
        with ctx.timed("amg"):
            generated = self.generator.generate(image, embedding=embedding)
        o = self.options
        with ctx.timed("edge_map"):
            low_res = generated.low_res_logits
            edge = np.zeros(image.shape[:2], np.float32)
            for _, logits in upsampled_chunks(model, generated.embedding or embedding, low_res):
                np.maximum(edge, mask_edge_map(logits[:, 0].float().cpu().numpy(), model.mask_threshold,
                                               o.boundary, o.boundary_width, o.sobel_ksize), out=edge)
            edge = normalize_edges(edge, o.normalize)
            edge = edge_nms(edge, o.edge_nms, o.nms_radius, o.nms_border, o.nms_multiplier)
            if o.rescale_after_nms:
                edge = normalize_edges(edge, "max")
        return np.clip(edge, 0.0, 1.0), len(low_res)

    def evaluate_image(self, ctx: RunContext, sample: ImageSample) -> ImageResult:
        where = sample.path or sample.image_id
        if sample.edges is None or not sample.edges.boundaries:
            raise DataError(f"{where}: no edge ground truth; task 'edges' needs a dataset with boundary "
                            "annotations such as bsds500")
        truth = sample.edges.boundaries
        image = sample.load_image()
        edge, n_masks = self.edge_map(ctx, image)
        if edge.shape != truth[0].shape:
            raise DataError(f"{where}: image is {edge.shape[1]}x{edge.shape[0]} but its edge ground "
                            f"truth is {truth[0].shape[1]}x{truth[0].shape[0]}")
        pixels = to_uint8(edge)
        relative = Path("edge_maps") / f"{sample.image_id}.png"
        ok, png = cv2.imencode(".png", pixels)
        if not ok:
            raise DataError(f"{where}: OpenCV could not encode the edge map as PNG")
        atomic_write(ctx.out_dir / relative, lambda f: f.write(png.tobytes()), mode="wb")
        ground_truth = sample.edges.source
        if ground_truth is None:  # a reader without .mat files: keep the maps beside the results
            ground_truth = ctx.out_dir / "ground_truth" / f"{sample.image_id}.npz"
            stacked = np.stack([np.asarray(b, dtype=bool) for b in truth])
            atomic_write(ground_truth, lambda f: np.savez_compressed(f, boundaries=stacked), mode="wb")
        row: dict[str, Any] = {"edge_pixels": int(np.count_nonzero(pixels)), "annotators": len(truth)}
        if n_masks is not None:
            row["masks"] = n_masks
        return ImageResult(sample.image_id, [row], {"edge_map": relative.as_posix(),
                                                    "ground_truth": str(ground_truth)})

    # -- dataset --------------------------------------------------------------------------------
    def compute_metrics(self, ctx: RunContext, results: list[ImageResult]) -> dict[str, float]:
        items = [EvalItem(r.image_id, ctx.out_dir / r.payload["edge_map"], Path(r.payload["ground_truth"]))
                 for r in results]
        self.stats = EvalStats()
        with ctx.timed("edge_eval"):
            counts = evaluate_counts(items, self.params, self.options.eval_workers,
                                     cache_dir=ctx.out_dir / "eval_cache", progress=True, stats=self.stats)
        self.counts = counts
        self.summary = summarize(counts, self.params.threshold_values())
        # items.csv: per-image F at the dataset's ODS threshold needs every image, so rows are
        # completed here, before the runner writes them.
        for result, scores in zip(results, self.summary.per_image):
            result.rows = [{**(result.rows[0] if result.rows else {}), **scores}]
        metrics = {**self.summary.headline(), "images": len(results)}
        masks = [r.rows[0]["masks"] for r in results if "masks" in r.rows[0]]
        if masks:  # edge maps built from automatic masks
            metrics["masks_per_image"] = float(np.mean(masks))
        return metrics

    def bootstrap_units(self, ctx: RunContext, results: list[ImageResult]) -> UnitSample:
        """Images: ODS / OIS / AP / R50 recomputed from resampled per-image pyEdgeEval counts."""
        return UnitSample("image", [r.image_id for r in results], "bsds",
                          {"counts": [np.asarray(c).tolist() for c in self.counts],
                           "best": [best_counts(np.asarray(c)).tolist() for c in self.counts]},
                          {"thresholds": self.params.threshold_values().tolist()})

    def finalize(self, ctx: RunContext, results: list[ImageResult], metrics: dict[str, float]) -> None:
        s = self.summary
        if s is None:
            return
        curve = pd.DataFrame({"threshold": s.thresholds, "recall": s.recall, "precision": s.precision,
                              "f1": s.f1})
        atomic_write(ctx.out_dir / "pr_curve.csv", lambda f: curve.to_csv(f, index=False))
        label = f"{ctx.model.info.label} on {ctx.dataset.name}"
        atomic_write(ctx.out_dir / "pr_curve.png", lambda f: plot_pr_curve(s, label, f), mode="wb")
        write_json(ctx.out_dir / "edge_eval.json", {**asdict(self.stats), "eval_workers": self.options.eval_workers})

    @classmethod
    def report_section(cls, entries: list[ReportEntry]) -> str:
        ref = paper()["edges_bsds500"]
        # The paper's rows are BSDS500 test numbers: beside a run of another split or dataset
        # (val, the demo's synthetic images) they would read as comparable, so they are left out.
        on_test = any(e.dataset == "bsds500" and e.record.get("dataset", {}).get("split") == "test" for e in entries)
        rows = {f"{method} (paper{', ViT-H' if method == 'SAM' else ''})": dict(zip(ref["columns"], values))
                for method, values in ref.items() if method != "columns" and on_test}
        notes = []
        for e in entries:
            split = e.record.get("config", {}).get("split") or "default split"
            label = f"{e.run_label} [{e.dataset} {split}, {e.record.get('images', '?')} images]"
            rows[label] = {m: e.metrics.get(m) for m in METRICS}
            o = e.record.get("task_options", {})
            if "masks_per_image" in e.metrics:
                source = (f"{e.metrics['masks_per_image']:.0f} masks per image after box NMS "
                          f"{o.get('box_nms_thresh')} ({o.get('points_per_side')}^2 grid); boundary "
                          f"{o.get('boundary')} (width {o.get('boundary_width')}), Sobel {o.get('sobel_ksize')}, "
                          f"normalise {o.get('normalize')}, edge NMS {o.get('edge_nms')} (r={o.get('nms_radius')}, "
                          f"s={o.get('nms_border')}, m={o.get('nms_multiplier')}, rescale "
                          f"{o.get('rescale_after_nms')})")
            else:
                source = "the model's own edge map"
            notes.append(f"- {label}: {source}; {o.get('thresholds')} thresholds, max distance "
                         f"{o.get('max_dist')}, thinning {o.get('thinning')}, matcher seed "
                         f"{o.get('match_seed')}, {o.get('evaluator')}{eval_note(e.task_dir)}; "
                         f"maps in `{e.task_dir / 'edge_maps'}`")
        table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(METRICS))
        table = table.apply(lambda column: column.map(paper_format))
        table.index.name = "method"
        return "\n".join([
            f"## {cls.title}", "",
            ("Paper rows: BSDS500 test split (200 images); HED and EDETR are trained on BSDS500, the "
             "others are zero-shot. Our rows: the split named in brackets, scored with pyEdgeEval." if on_test else
             "The paper's rows (BSDS500 test split, 200 images) are left out: no run here is on that split, so "
             "they would not be comparable. Our rows: the split named in brackets, scored with pyEdgeEval."), "",
            markdown_table(table), "", *notes]) + "\n"


def eval_note(task_dir: Path) -> str:
    """How long the evaluation took, from edge_eval.json (absent in older results)."""
    try:
        st = json.loads((task_dir / "edge_eval.json").read_text())
        asked = st.get("eval_workers")
        used = f" (--eval-workers {asked}{': all cores' if asked == 0 else ''})" if asked is not None else ""
        return (f"; evaluation {st['wall_seconds']:.0f} s wall with {st['workers']} processes{used}, "
                f"{st['cpu_seconds']:.0f} CPU s, {st['maps_evaluated']}/{st['maps_total']} distinct thresholded maps")
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def paper_format(value: Any) -> str:
    """.768, the way the paper prints edge metrics; missing -> '-'."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    text = f"{float(value):.3f}"
    return text[1:] if text.startswith("0.") else text


def plot_pr_curve(summary: BoundaryMetrics, label: str, file: Any) -> None:
    """Precision-recall curve over iso-F lines (pyEdgeEval's BSDS template), ODS point marked."""
    from matplotlib.figure import Figure
    from pyEdgeEval.visualization.pr_curve import _isometric_contour_line_template

    fig = Figure(figsize=(6, 6))
    ax = _isometric_contour_line_template(fig.add_subplot(1, 1, 1))
    keep = summary.recall >= 1e-3  # as pyEdgeEval's curve loader
    ax.plot(summary.recall[keep], summary.precision[keep], color="tab:red", linewidth=2.5,
            label=f"[F={paper_format(summary.ods)}] {label}")
    ax.plot(summary.ods_recall, summary.ods_precision, "o", color="tab:red")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"ODS {paper_format(summary.ods)}  OIS {paper_format(summary.ois)}  "
                 f"AP {paper_format(summary.ap)}  R50 {paper_format(summary.r50)}", fontsize=9)
    fig.savefig(file, format="png", dpi=100, bbox_inches="tight")
