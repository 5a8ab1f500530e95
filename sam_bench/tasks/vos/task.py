"""Task `vos`: semi-supervised video object segmentation, J&F as the official evaluators score it.

Each object is prompted on the frame where it is first annotated (`--prompt mask|box|clicks`,
`--clicks 1|3|5`), the model propagates through the video, the predictions are written in the
dataset's submission layout under `<task dir>/predictions/`, and J / F are scored per object on the
frames the dataset's evaluator scores (metrics/vos.py). One video is one progress record, so a
killed run resumes video by video. `--predictions DIR` scores a submission folder made elsewhere
(no model). Server-only splits write the submission and print no number.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from ...data.video import VideoSample
from ...engine.context import ImageResult, RunContext
from ...errors import ConfigError, DataError
from ...io import atomic_write
from ...metrics.bootstrap import UnitSample
from ...metrics.vos import BOUND_TH, METRIC_KEYS, ObjectScore, dataset_metrics
from ...models.base import PromptableSegmenter
from ...models.video import VideoSegmenter
from ...registry import TASKS
from ...reporting.entry import ReportEntry
from ..base import Task
from .video import VideoScorer, score_folder, track_video

PROMPTS = ("mask", "box", "clicks")
CLICKS = (1, 3, 5)


@dataclass
class VosOptions:
    prompt: str = "mask"  # mask (the standard semi-supervised setting) | box | clicks
    clicks: int = 1  # with --prompt clicks: 1, 3 or 5 (SAM 2's first-frame click settings)
    predictions: Optional[str] = None  # score this submission folder instead of running a model

    def __post_init__(self) -> None:
        if self.prompt not in PROMPTS:
            raise ConfigError(f"option prompt of task 'vos': {self.prompt!r}; choose {PROMPTS}")
        if int(self.clicks) not in CLICKS:
            raise ConfigError(f"option clicks of task 'vos': {self.clicks}; choose {CLICKS}")
        if self.predictions is not None and not Path(self.predictions).is_dir():
            raise ConfigError(f"option predictions of task 'vos': {self.predictions}: not a directory")


def video_segmenter(model: PromptableSegmenter | VideoSegmenter) -> VideoSegmenter:
    """The model's own tracker, or the labelled per-frame baseline for an image-only model. The
    runner wraps promptable models (output checks, embedding cache); a tracker is found beneath them."""
    inner: object = model
    while not isinstance(inner, VideoSegmenter) and getattr(inner, "inner", None) is not None:
        inner = inner.inner  # type: ignore[attr-defined]
    if isinstance(inner, VideoSegmenter):
        return inner
    try:
        from ...models.video_baseline import as_video_segmenter  # the image families' baseline
    except ImportError:
        raise ConfigError(f"model '{model.info.name}' has no video tracker and this build has no per-frame "
                          "baseline (sam_bench/models/video_baseline.py)") from None
    return as_video_segmenter(model)


@TASKS.register("vos", help="semi-supervised video object segmentation: J&F (DAVIS, SA-V, MOSE, LVOS, YouTube-VOS)")
class VosTask(Task):
    name = "vos"
    title = "Semi-supervised video object segmentation (J&F)"
    headline_metrics = ("J&F", "J_mean", "F_mean")
    Options = VosOptions
    requires = (VideoSegmenter, PromptableSegmenter)
    paper_section = (99, 1)

    def __init__(self, options: VosOptions) -> None:
        super().__init__(options)
        self.segmenter: Optional[VideoSegmenter] = None

    def describe(self) -> dict[str, Any]:
        opts = asdict(self.options)
        if opts["prompt"] != "clicks":
            opts.pop("clicks")
        if opts["predictions"] is None:
            opts.pop("predictions")
        else:
            opts["predictions"] = str(Path(opts["predictions"]).resolve())
        return {**opts, "boundary_tolerance": f"ceil({BOUND_TH} x image diagonal) px, disk",
                "overlaps": "lowest object id wins (id-map layouts)"}

    def scores_predictions(self) -> bool:
        return self.options.predictions is not None

    def loads_images(self) -> bool:
        return False

    def setup(self, ctx: RunContext) -> None:
        if ctx.model is not None:
            self.segmenter = video_segmenter(ctx.model)
        elif getattr(ctx.dataset, "server", None):
            raise ConfigError(f"dataset '{ctx.dataset.name}' split '{ctx.dataset.metadata.get('split')}' has its "
                              f"ground truth on a server ({ctx.dataset.server}): --predictions cannot be scored here")

    def evaluate_image(self, ctx: RunContext, sample: VideoSample) -> ImageResult:
        if not isinstance(sample, VideoSample):
            raise ConfigError(f"task 'vos' needs a video dataset; '{ctx.dataset.name}' holds images")
        if not sample.objects:
            raise DataError(f"video '{sample.video_id}' of '{ctx.dataset.name}': no object in any annotation")
        layout = getattr(ctx.dataset, "submission", "davis")
        server = getattr(ctx.dataset, "server", None)
        scorer = None if server else VideoScorer(sample, getattr(ctx.dataset, "frame_rule", "first_last"))
        t0 = time.perf_counter()
        given: dict[int, Any] = {}
        if self.options.predictions is not None:
            assert scorer is not None  # setup refused server splits
            score_folder(sample, Path(self.options.predictions), layout, scorer)
        else:
            with ctx.timed("track"):
                given = track_video(self.segmenter, sample, self.options.prompt, int(self.options.clicks),  # type: ignore[arg-type]
                                    ctx.out_dir / "predictions", layout, scorer,
                                    separately=bool(getattr(ctx.dataset, "objects_appear_later", False)), progress=True)
        seconds = time.perf_counter() - t0
        objects = [] if scorer is None else list(scorer.scores.values())
        rows = []
        for k, first in sample.objects.items():
            row: dict[str, Any] = {"object_id": k, "prompt_frame": first}
            if scorer is not None:
                score = scorer.scores[k]
                row.update(frames_scored=len(score.frames), **score.summary())
            rows.append(row)
        payload = {"frames": len(sample.frames), "seconds": seconds, "objects": [asdict(o) for o in objects],
                   "prompts": {str(k): v for k, v in given.items()}}
        return ImageResult(sample.video_id, rows, payload)

    def compute_metrics(self, ctx: RunContext, results: list[ImageResult]) -> dict[str, float]:
        frames = sum(r.payload["frames"] for r in results)
        counts = {"videos": len(results), "objects": sum(len(r.rows) for r in results), "frames": frames,
                  "baseline": int(bool(getattr(self.segmenter, "is_baseline", False)))}
        seconds = sum(r.payload["seconds"] for r in results)
        if seconds > 0 and self.options.predictions is None:
            counts["frames_per_second"] = frames / seconds
        if getattr(ctx.dataset, "server", None):
            return counts
        scores = [ObjectScore(**o) for r in results for o in r.payload["objects"]]
        return {**dataset_metrics(scores), **counts}

    def bootstrap_units(self, ctx: RunContext, results: list[ImageResult]) -> Optional[UnitSample]:
        """Sequences, each [objects scored, sum over them] of every statistic: the dataset's
        mean over all objects of the drawn sequences (J&F from each object's (J + F) / 2)."""
        if getattr(ctx.dataset, "server", None):
            return None  # no ground truth here, no number
        columns: dict[str, list[list[float]]] = {k: [] for k in METRIC_KEYS}
        for r in results:
            rows = [ObjectScore(**o).summary() for o in r.payload["objects"] if o["frames"]]
            for k in METRIC_KEYS:
                columns[k].append([len(rows), float(sum(row[k] for row in rows))])
        return UnitSample("sequence", [r.image_id for r in results], "ratio", columns)

    def finalize(self, ctx: RunContext, results: list[ImageResult], metrics: dict[str, float]) -> None:
        """objects.csv, sequences.csv and jf_per_sequence.png; for a server split, where to send it."""
        server = getattr(ctx.dataset, "server", None)
        objects = pd.DataFrame([{"video": r.image_id, **row} for r in results for row in r.rows])
        atomic_write(ctx.out_dir / "objects.csv", lambda f: objects.to_csv(f, index=False))
        if server:
            final = Path(ctx.config.out) / ctx.config.result_name / ctx.config.dataset / "predictions"
            print(f"vos/{ctx.dataset.name}: submission written to {final}; the ground truth is on the server: "
                  f"send it to {server}. No local number.")
            return
        sequences = objects.groupby("video", sort=False)[list(METRIC_KEYS)].mean().reset_index()
        sequences.insert(1, "objects", objects.groupby("video", sort=False).size().values)
        atomic_write(ctx.out_dir / "sequences.csv", lambda f: sequences.to_csv(f, index=False))
        _plot(sequences, ctx.out_dir / "jf_per_sequence.png", f"{ctx.dataset.name}: J&F per sequence")

    @classmethod
    def report_section(cls, entries: list[ReportEntry]) -> str:
        from .report import vos_report

        return vos_report(cls.title, entries)


def _plot(sequences: pd.DataFrame, path: Path, title: str) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    fig = Figure(figsize=(max(4.0, 0.35 * len(sequences) + 1.5), 3.2))
    ax = fig.add_subplot()
    ax.bar(sequences["video"].astype(str), 100 * sequences["J&F"])
    ax.set_ylabel("J&F (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=90)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100), mode="wb")
