"""Task `vos_interactive`: SAM 2's promptable video segmentation, offline and online (paper §6.1.1,
appendix E.1.2): J&F after 1..N interacted frames.

Every object of a video runs in its own session (the paper runs objects independently); the loops
are in protocol.py. After each round the object's masks are scored over the whole video with the
`vos` rules (metrics/vos.py: J, F per frame on the frames the dataset's evaluator scores, averaged
per object), so J&F@k is what the `vos` task would report for the masks after k interacted frames.
items.csv holds one row per interacted frame: the frame, its prompt or clicks, J on that frame
before and after, and the object's J / F over the video after that round.
"""
from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any, Optional

import numpy as np

from ...core.types import ModelInfo
from ...data.video import VideoSample
from ...engine.context import ImageResult, RunContext
from ...errors import ConfigError, DataError
from ...io import atomic_write
from ...metrics.bootstrap import UnitSample
from ...metrics.vos import VideoScorer, scored_frames
from ...models.base import Model, PromptableSegmenter
from ...models.video import VideoSegmenter
from ...models.video_baseline import as_video_segmenter
from ...registry import TASKS
from ...reporting.entry import ReportEntry
from ..base import Task
from .options import VosInteractiveOptions
from .protocol import ObjectRun, ObjectTruth, RoundMasks, offline, online, unpack

log = logging.getLogger(__name__)

def round_scores(truth: ObjectTruth, masks: RoundMasks, frames: list[int], rule: str = "first_last") -> tuple[float, float]:
    """(J, F) of one object over the scored `frames`, as the `vos` task averages them (SA-V's rule
    included: the object counts from the first of them where its ground truth or prediction is
    non-empty)."""
    k = truth.object_id
    scorer = VideoScorer(truth.sample, rule, frames={k: frames}, ground_truth=lambda t: {k: truth.mask(t)})
    for t in frames:
        scorer.add(t, {k: unpack(masks[t], truth.shape)})
    score = scorer.scores[k]
    if not score.frames:
        return float("nan"), float("nan")
    summary = score.summary()
    return summary["J_mean"], summary["F_mean"]


def _clicks_text(run: ObjectRun, k: int) -> str:
    return " ".join(f"{c.x},{c.y},{'+' if c.positive else '-'}" for c in run.interactions[k].clicks)


def frame_rule(ctx: RunContext) -> str:
    """The dataset's scored-frame rule (metrics/vos.py FRAME_RULES); DAVIS's by default."""
    return getattr(ctx.dataset, "frame_rule", "first_last")


@TASKS.register("vos_interactive", help="SAM 2's interactive video protocol, offline / online: J&F@1..8 interacted frames")
class VosInteractiveTask(Task):
    name = "vos_interactive"
    title = "Interactive video segmentation (SAM 2's offline / online protocols, J&F after k interacted frames)"
    Options = VosInteractiveOptions
    requires = (VideoSegmenter, PromptableSegmenter)
    # SAM 2's summary number, J&F averaged over 1..8 interacted frames, and the end of its Fig. 5 curve;
    # the whole curve J&F@1..N (with intervals in metrics.json) is the section's own table and figure
    headline_metrics = ("J&F", "J&F@8")

    def describe(self) -> dict[str, Any]:
        return {**asdict(self.options), "objects": "separate sessions (as the paper)",
                "click_rule": "RITM (sam_bench/prompts/clicks.py)",
                "corrections": "a corrected frame becomes a prompted frame (VideoSegmenter.keep_corrections)"}

    def loads_images(self) -> bool:
        return False  # videos: frames are read lazily by the session

    def model_info(self, model: Model) -> ModelInfo:
        return as_video_segmenter(model).info  # an image model runs as its labelled per-frame baseline

    def setup(self, ctx: RunContext) -> None:
        self.video_model = as_video_segmenter(ctx.model)  # a tracker as it is, an image model as the baseline
        if self.video_model.is_baseline:
            log.info("%s has no tracker: the labelled per-frame baseline runs instead", ctx.model.info.label)
        self.video_model.keep_corrections()  # a corrected frame stays a prompt for later passes

    def evaluate_image(self, ctx: RunContext, sample: VideoSample) -> ImageResult:  # type: ignore[override]
        if not isinstance(sample, VideoSample):
            raise ConfigError(f"task 'vos_interactive' needs a video dataset; '{ctx.dataset.name}' holds images")
        rule = frame_rule(ctx)
        loop = offline if self.options.setting == "offline" else online
        rows, objects, skipped = [], [], []
        for object_id in sorted(sample.objects):
            truth = ObjectTruth.of(sample, object_id)
            if not truth.mask(truth.first_frame).any():  # SA-V: an object folder may start empty
                log.info("video %s: object %d is empty on its first frame %s: nothing to prompt, skipped",
                         sample.video_id, object_id, sample.frames.names[truth.first_frame])
                skipped.append(object_id)
                continue
            scored = scored_frames(sample.annotated, truth.first_frame, rule)
            candidates = truth.frames if self.options.candidates == "annotated" else scored
            with self.video_model.open_video(sample.frames) as session, ctx.timed("interact"):
                run = loop(session, truth, self.options, candidates)
            with ctx.timed("metric"):
                scores = [round_scores(truth, masks, scored, rule) for masks in run.rounds]
            for k, (inter, (j, f)) in enumerate(zip(run.interactions, scores)):
                rows.append({"object_id": object_id, "k": k + 1, "frame": sample.frames.names[inter.frame],
                             "prompt": inter.prompt, "clicks": _clicks_text(run, k), "n_clicks": len(inter.clicks),
                             "J_frame_before": inter.j_before, "J_frame_after": inter.j_after,
                             "J": j, "F": f, "J&F": (j + f) / 2})
            objects.append({"object_id": object_id, "scored_frames": len(scored),
                            "J": [s[0] for s in scores], "F": [s[1] for s in scores],
                            "clicks": sum(len(i.clicks) for i in run.interactions),
                            "frames": len(run.interactions)})
        return ImageResult(sample.video_id, rows, {"objects": objects, "skipped": skipped})

    def compute_metrics(self, ctx: RunContext, results: list[ImageResult]) -> dict[str, float]:
        metrics = interactive_metrics([o for r in results for o in r.payload["objects"]], self.options.frames)
        metrics["baseline"] = int(self.video_model.is_baseline)  # reports label the per-frame baseline
        metrics["objects_skipped"] = sum(len(r.payload["skipped"]) for r in results)  # empty on their first frame
        return metrics

    def bootstrap_units(self, ctx: RunContext, results: list[ImageResult]) -> Optional[UnitSample]:
        """Sequences (as the `vos` task): per k, [objects scored at round k, sum of their J&F]; a
        resample's J&F@k is the mean over the drawn sequences' objects, J&F the mean over k."""
        frames = self.options.frames
        columns: dict[str, list[list[list[float]]]] = {"J&F": []}
        columns.update({f"J&F@{k}": [] for k in range(1, frames + 1)})
        for r in results:
            per_k = np.zeros((2, frames))
            for o in r.payload["objects"]:
                if not o["scored_frames"]:
                    continue
                jf = np.array([(o["J"][min(k, len(o["J"])) - 1] + o["F"][min(k, len(o["F"])) - 1]) / 2
                               for k in range(1, frames + 1)])
                per_k += np.stack([np.isfinite(jf), np.nan_to_num(jf)])  # NaN (not yet seen, SA-V): not counted
            columns["J&F"].append(per_k.tolist())
            for k in range(frames):
                columns[f"J&F@{k + 1}"].append(per_k[:, k:k + 1].tolist())
        return UnitSample("sequence", [r.image_id for r in results], "ratios", columns)

    def finalize(self, ctx: RunContext, results: list[ImageResult], metrics: dict[str, float]) -> None:
        from .report import curve_figure

        fig = curve_figure({f"{self.video_model.info.label} ({self.options.setting})":
                            curve(metrics, self.options.frames)})
        atomic_write(ctx.out_dir / "jf_curve.png", lambda f: fig.savefig(f, format="png", dpi=110), mode="wb")

    @classmethod
    def report_section(cls, entries: list[ReportEntry]) -> str:
        from .report import vos_interactive_report

        return vos_interactive_report(cls.title, entries)


def curve(metrics: dict[str, float], frames: int) -> list[float]:
    return [metrics[f"J&F@{k}"] for k in range(1, frames + 1)]


def interactive_metrics(objects: list[dict[str, Any]], frames: int) -> dict[str, float]:
    """J@k, F@k, J&F@k (k = 1..frames) averaged over the objects with a scored frame (NaN: none, e.g.
    SA-V's rule before the object is seen, left out as the evaluators' nanmean does); a run that
    stopped interacting before k keeps its last round; J&F = the mean of J&F@1..frames."""
    scored = [o for o in objects if o["scored_frames"]]
    if not scored:
        raise DataError("task 'vos_interactive': no object has a scored frame (videos too short)")
    metrics: dict[str, float] = {}
    for k in range(1, frames + 1):
        j = float(np.nanmean([o["J"][min(k, len(o["J"])) - 1] for o in scored]))
        f = float(np.nanmean([o["F"][min(k, len(o["F"])) - 1] for o in scored]))
        metrics.update({f"J&F@{k}": (j + f) / 2, f"J@{k}": j, f"F@{k}": f})
    metrics["J&F"] = float(np.mean([metrics[f"J&F@{k}"] for k in range(1, frames + 1)]))
    metrics["clicks"] = float(np.mean([o["clicks"] for o in objects]))
    metrics["interacted_frames"] = float(np.mean([o["frames"] for o in objects]))
    metrics["objects"] = len(scored)
    metrics["objects_unscored"] = len(objects) - len(scored)
    return metrics
