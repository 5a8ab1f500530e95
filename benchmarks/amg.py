"""Automatic mask generation speed: sam_bench.amg.AutomaticMaskGenerator vs segment_anything's
SamAutomaticMaskGenerator, same model, image and settings, full generate() on both sides (the
encoder included), outputs checked equal (same count, masks IoU >= 0.99, scores within 1e-4).
Ours decodes through the segmenter's default fast decoder path (sam_bench/models/sam_fast_decoder.py);
the official generator calls MaskDecoder.forward.

    python benchmarks/amg.py [--images N] [--models tiny,vit_b] [--settings default,edges] [--threads N]
                             [--checkpoint PATH]

Models: the seeded random `tiny` SAM and a ViT-B-sized random SAM (official modules), and with
--checkpoint an official-layout SAM checkpoint (model name `checkpoint`, added to --models). On
random weights few masks survive the filters (often one or none), so "equal" says little; the
briefly trained proxy of benchmarks/proxy_model.py gives a few hundred varied masks to compare. Settings:
`default` (the official defaults, 32x32 grid) and `edges` (the paper's edge protocol: 16x16 grid,
no IoU/stability filter, box NMS 0.7). Per case it prints both times, the share of each stage
(encoder, decoder, the rest) and the ratio; the last line is the ViT-B default-settings ratio.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator

from sam_bench.amg import AmgSettings, AutomaticMaskGenerator
from sam_bench.core.checkpoint import OFFICIAL_ARCHITECTURES, build_sam, load_sam_checkpoint
from sam_bench.core.types import ModelInfo
from sam_bench.data.images import read_rgb
from sam_bench.models.sam import SamSegmenter, build_tiny_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETTINGS = {
    "default": {},
    "edges": {"points_per_side": 16, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 0.7},
}


def load_images(n: int) -> list[tuple[str, np.ndarray]]:
    files = sorted((SHARED / "bsds500" / "images" / "val").glob("*.jpg"))[:n]
    if not files:
        raise SystemExit(f"no BSDS500 images under {SHARED}; the benchmark needs ../shared/data")
    return [(f.stem, read_rgb(f)) for f in files]


class StageClock:
    """Wall time in the image encoder and the mask decoder, so both generators' time splits into
    encoder / decoder / the rest the same way: forward hooks on the official modules, and for
    sam-bench's generator the segmenter's decode (its fast decoder path calls the decoder's
    submodules, not MaskDecoder.forward)."""

    def __init__(self, segmenter: SamSegmenter, official: bool) -> None:
        self.seconds = {"encoder": 0.0, "decoder": 0.0}
        self._start = 0.0
        self._handles = []
        self._segmenter = segmenter
        modules = [("encoder", segmenter.model.image_encoder)]
        if official:
            modules.append(("decoder", segmenter.model.mask_decoder))
        else:
            decode = segmenter.decode

            def timed_decode(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return decode(*args, **kwargs)
                finally:
                    self.seconds["decoder"] += time.perf_counter() - start

            segmenter.decode = timed_decode
        for name, module in modules:
            self._handles.append(module.register_forward_pre_hook(self._begin))
            self._handles.append(module.register_forward_hook(lambda *_, n=name: self._end(n)))

    def _begin(self, *_) -> None:
        self._start = time.perf_counter()

    def _end(self, name: str) -> None:
        self.seconds[name] += time.perf_counter() - self._start

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._segmenter.__dict__.pop("decode", None)


def timed_generate(segmenter: SamSegmenter, image: np.ndarray, settings: dict, official: bool):
    clock = StageClock(segmenter, official)
    cpu_start = time.process_time()  # CPU seconds of all threads: steadier than wall time on a shared machine
    try:
        if official:
            generator = SamAutomaticMaskGenerator(segmenter.model, **settings)
            start = time.perf_counter()
            records = generator.generate(image)
        else:
            generator = AutomaticMaskGenerator(segmenter, AmgSettings(**settings))
            start = time.perf_counter()
            records = generator.generate(image).records
        total = time.perf_counter() - start
        clock.seconds["cpu"] = time.process_time() - cpu_start
    finally:
        clock.close()
    return records, total, clock.seconds


def split(total: float, stages: dict[str, float]) -> str:
    rest = total - stages["encoder"] - stages["decoder"]
    return (f"{total:.2f} s (cpu {stages['cpu']:.1f} s) = encoder {stages['encoder'] / total:.0%} "
            f"+ decoder {stages['decoder'] / total:.0%} + the rest {rest / total:.0%} ({rest:.2f} s)")


def beside_model(total: float, stages: dict[str, float]) -> float:
    return total - stages["encoder"] - stages["decoder"]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU; two empty masks are equal (a no-filter setting keeps empty masks on both sides)."""
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def check_equal(official: list[dict], ours: list[dict]) -> str:
    if len(official) != len(ours):
        raise SystemExit(f"outputs differ: official {len(official)} masks, ours {len(ours)}")
    free = list(range(len(ours)))
    for ref in official:
        ious = [mask_iou(ref["segmentation"], ours[j]["segmentation"]) for j in free]
        best = int(np.argmax(ious))
        got = ours[free.pop(best)]
        if ious[best] < 0.99 or max(abs(got[k] - ref[k]) for k in ("predicted_iou", "stability_score")) > 1e-4:
            raise SystemExit(f"outputs differ at the official mask from point {ref['point_coords']}: "
                             f"IoU {ious[best]:.4f}, predicted_iou {got['predicted_iou']} vs {ref['predicted_iou']}")
    return f"{len(ours)} masks, equal"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--models", default="tiny,vit_b")
    parser.add_argument("--settings", default="default,edges")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--checkpoint", help="an official-layout SAM checkpoint (adds model `checkpoint`)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images = load_images(args.images)
    models = {}
    names = args.models.split(",") + (["checkpoint"] if args.checkpoint and "checkpoint" not in args.models else [])
    for name in filter(None, names):
        if name == "tiny":
            models[name] = build_tiny_model()
        elif name == "vit_b":
            torch.manual_seed(0)
            models[name] = SamSegmenter(build_sam(OFFICIAL_ARCHITECTURES["vit_b"]), ModelInfo("vit_b-random", True),
                                        "random", torch.device("cpu"))
        elif name == "checkpoint" and args.checkpoint:
            loaded = load_sam_checkpoint(args.checkpoint)
            models[name] = SamSegmenter(loaded.model.eval(), ModelInfo(Path(args.checkpoint).name, False),
                                        loaded.sha256, torch.device("cpu"))
        else:
            raise SystemExit(f"unknown model '{name}': choose from tiny, vit_b (checkpoint: with --checkpoint)")
    print(f"{len(images)} image(s) of BSDS500 val, torch threads {torch.get_num_threads()}")
    ratios = {}
    for model_name, segmenter in models.items():
        for setting in args.settings.split(","):
            total_ref = total_ours = cpu_ref = cpu_ours = rest_ref = rest_ours = 0.0
            for image_id, image in images:
                ref, t_ref, stages_ref = timed_generate(segmenter, image, SETTINGS[setting], official=True)
                ours, t_ours, stages_ours = timed_generate(segmenter, image, SETTINGS[setting], official=False)
                total_ref, total_ours = total_ref + t_ref, total_ours + t_ours
                cpu_ref, cpu_ours = cpu_ref + stages_ref["cpu"], cpu_ours + stages_ours["cpu"]
                rest_ref += beside_model(t_ref, stages_ref)
                rest_ours += beside_model(t_ours, stages_ours)
                print(f"[{model_name} {setting}] {image_id} {image.shape[1]}x{image.shape[0]}: "
                      f"official {split(t_ref, stages_ref)}; ours {split(t_ours, stages_ours)}; "
                      f"{t_ref / t_ours:.2f}x; {check_equal(ref, ours)}", flush=True)
            ratios[model_name, setting] = total_ref / total_ours
            print(f"[{model_name} {setting}] total: official {total_ref:.2f} s, ours {total_ours:.2f} s, "
                  f"{ratios[model_name, setting]:.2f}x (cpu time {cpu_ref / cpu_ours:.2f}x); beside the encoder "
                  f"and decoder: official {rest_ref:.2f} s, ours {rest_ours:.2f} s, {rest_ref / rest_ours:.1f}x",
                  flush=True)
    headline = ratios.get(("vit_b", "default"), next(iter(ratios.values())))
    if ("vit_b", "default") not in ratios:
        print(f"(headline: {next(iter(ratios))[0]} {next(iter(ratios))[1]}; no vit_b default case ran)")
    print(f"amg vs official: {headline:.2f}x")


if __name__ == "__main__":
    main()
