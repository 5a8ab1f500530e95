"""The task interface: what a protocol implements to plug into the runner, the CLI and the report.

Data flow: the runner hands each ImageSample to `evaluate_image`, which embeds the image through
`ctx.embed` (cached by the model's wrapper), builds prompts, decodes them with the model and returns an ImageResult
(per-item rows for items.csv plus a JSON payload). When every image is done, `compute_metrics`
turns the results into a flat name -> number dict and `finalize` writes extra artifacts.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from ..data.types import Dataset, ImageSample
from ..engine.context import ImageResult, RunContext
from ..metrics.bootstrap import UnitSample
from ..models.base import PromptableSegmenter
from ..reporting.entry import ReportEntry


@dataclass
class NoOptions:
    pass


class Task(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    #: Model capabilities this task can run with (one of them); the runner checks once per run.
    requires: ClassVar[tuple[type, ...]] = (PromptableSegmenter,)
    #: Where the protocol sits in the paper (report sections follow it); (99,) = not in the paper.
    paper_section: ClassVar[tuple[int, ...]] = (99,)
    #: The metrics a reader compares first: shown with intervals and paired differences in every
    #: report section, in the leaderboard, and (the first) on the accuracy-against-speed chart.
    headline_metrics: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: Any) -> None:
        self.options = options

    def describe(self) -> dict[str, Any]:
        """Every protocol choice, recorded in run.json and quoted in the report."""
        return asdict(self.options)

    def scores_predictions(self) -> bool:
        """True when the run scores predictions made elsewhere (an option such as `--predictions`):
        the run needs no model (`ctx.model` is None) and the runner does not read the images."""
        return False

    def loads_images(self) -> bool:
        """False for tasks whose samples are not single images (videos): the runner hands them
        `dataset.get(i)` as they are instead of decoding and pre-encoding an image ahead."""
        return not self.scores_predictions()

    def input_files(self, dataset: Dataset, index: int) -> list[Path]:
        """The files item `index`'s result is computed from, checked when a run resumes
        (engine/inputs.py): the dataset's files by default."""
        return dataset.input_files(index)

    def setup(self, ctx: RunContext) -> None:
        """Once per run, before the first image (load detections, text encoders, ...)."""

    @abstractmethod
    def evaluate_image(self, ctx: RunContext, sample: ImageSample) -> ImageResult: ...

    @abstractmethod
    def compute_metrics(self, ctx: RunContext, results: list[ImageResult]) -> dict[str, float]: ...

    def bootstrap_units(self, ctx: RunContext, results: list[ImageResult]) -> Optional[UnitSample]:
        """Per-unit data behind the headline metrics (after compute_metrics): the runner derives
        their 95% intervals from it and writes it to units.json for the report's paired
        comparisons. None: the task's metrics get no interval."""
        return None

    def finalize(self, ctx: RunContext, results: list[ImageResult], metrics: dict[str, float]) -> None:
        """Write artifacts beyond metrics.json and items.csv (plots, prediction files)."""

    @classmethod
    @abstractmethod
    def report_section(cls, entries: list[ReportEntry]) -> str:
        """Markdown for report.md: tables in the paper's layout, one column or row per run."""
