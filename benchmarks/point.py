"""Point task throughput: sam-bench's batched click loop vs the naive loop, on the same model,
images and clicks.

    python benchmarks/point.py [--images N] [--clicks N] [--threads N] [--skip-vit-b] [--compile] [--no-bf16]
                               [--checkpoint PATH]

Naive loop: SamPredictor.set_image once per image, then SamPredictor.predict once per object per
click (full-resolution masks), IoU and RITM clicks on full-resolution numpy arrays, fp32. Ours: the
`point` task's session (`interactive_session`, what `evaluate_image` runs after its one encoder
pass: one batched decode per click round for all objects through the fast decoder path, batched
upsampling and IoU on torch, distance transforms on error bounding boxes), in fp32 (the IoU of
every object after every click must agree with the naive loop to 1e-4) and in bf16 autocast
(its mIoU@1..N difference to fp32 is printed), with --compile compiled (compiling happens in an
untimed warm-up on the first image). Images: real ones of --dataset from ../shared/data (GrabCut,
one object each, by default: the worst case for batching; ppdls or bbbc038 for many objects per
image, as most SA-23 datasets have) when present, else synthetic ones (four nested objects each). Models: `tiny` and a
ViT-B-sized random SAM (same decoder, larger encoder); --checkpoint replaces `tiny` with an
official-layout SAM checkpoint, e.g. the briefly trained proxy of benchmarks/proxy_model.py, whose
confident logits make the bf16 mIoU difference mean something (random logits sit near zero, where
bf16 rounding flips whole masks). The prompt stage is everything after the
image embedding, which both loops compute once per image with the same official encoder. The
last line is the fp32 prompt-stage ratio of the last model (ViT-B unless --skip-vit-b); the line
before it the bf16 one.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from segment_anything import SamPredictor

from sam_bench.core.checkpoint import OFFICIAL_ARCHITECTURES, build_sam, load_sam_checkpoint
from sam_bench.core.types import ModelInfo
from sam_bench.data.registry import open_dataset
from sam_bench.data.synthetic import make_image
from sam_bench.data.types import ImageSample, ObjectAnnotation
from sam_bench.metrics.point import iou_matrix, miou_curve
from sam_bench.models.sam import SamSegmenter, build_tiny_model
from sam_bench.tasks.point.task import interactive_session

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_samples(n: int, synthetic: bool = False, name: str = "grabcut") -> tuple[str, list[ImageSample]]:
    if (SHARED / name).is_dir() and not synthetic:
        dataset = open_dataset(name, str(SHARED / name), limit=n)
        samples = [dataset.get(i) for i in range(len(dataset))]
        objects = sum(len(s.objects) for s in samples) / max(len(samples), 1)
        return f"{name} (real, {objects:.1f} objects/image)", samples
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        synth = make_image(rng, 321, 481)
        objects = [ObjectAnnotation(f"{i}_{k}", m) for k, m in enumerate(synth.masks)]
        samples.append(ImageSample(f"synthetic_{i}", lambda im=synth.image: im, 321, 481, objects))
    return "synthetic (4 objects/image)", samples


def ritm_click(gt: np.ndarray, pred: Optional[np.ndarray], ignore: Optional[np.ndarray],
               clicked: list[tuple[int, int, bool]]) -> Optional[tuple[int, int, bool]]:
    """RITM's clicker, written plainly on full-resolution arrays (independent of sam_bench)."""
    fn = gt & ~pred if pred is not None else gt.copy()
    fp = pred & ~gt if pred is not None else np.zeros_like(gt)
    if ignore is not None:
        fn, fp = fn & ~ignore, fp & ~ignore
    not_clicked = np.ones_like(gt)
    for x, y, _ in clicked:
        not_clicked[y, x] = False
    # RITM uses cv2.distanceTransform; its float32 output can be 1 ulp off (see clicks.py), so
    # both loops use scipy's exact transform to break exact ties the same way.
    dts = [distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1] * not_clicked for m in (fn, fp)]
    fn_max, fp_max = dts[0].max(), dts[1].max()
    if fn_max == 0 and fp_max == 0:
        return None
    positive = bool(fn_max > fp_max)
    ys, xs = np.where(dts[0] == fn_max) if positive else np.where(dts[1] == fp_max)
    return int(xs[0]), int(ys[0]), positive


def full_res_iou(pred: np.ndarray, gt: np.ndarray, ignore: Optional[np.ndarray]) -> float:
    if ignore is not None:
        pred, gt = pred & ~ignore, gt & ~ignore
    union = np.count_nonzero(pred | gt)
    return 1.0 if union == 0 else np.count_nonzero(pred & gt) / union


def naive_session(predictor: SamPredictor, sample: ImageSample, max_clicks: int,
                  feedback: bool = True) -> list[list[float]]:
    """IoU after each click for each object: one SamPredictor.predict per object per click."""
    out = []
    for obj in sample.objects:
        clicks: list[tuple[int, int, bool]] = []
        pred, prev_low, ious, oracle = None, None, [], 0.0
        for n in range(max_clicks):
            click = ritm_click(obj.mask, pred, sample.ignore, clicks)
            if click is None:
                break
            clicks.append(click)
            masks, scores, low = predictor.predict(
                np.array([[x, y] for x, y, _ in clicks], dtype=np.float64),
                np.array([int(p) for _, _, p in clicks]),
                mask_input=prev_low if feedback and n > 0 else None, multimask_output=n == 0)
            mask_ious = [full_res_iou(m, obj.mask, sample.ignore) for m in masks]
            best = int(np.argmax(scores))
            pred, prev_low = masks[best], low[best][None]
            ious.append(mask_ious[best])
            if n == 0:
                oracle = max(mask_ious)  # best of the 3 candidates against ground truth
        out.append(ious + [oracle])
    return out


class NetworkTimer:
    """Wall time inside SAM's prompt encoder and mask decoder (the same modules on both paths)."""

    def __init__(self, sam: torch.nn.Module) -> None:
        self.seconds, self._start = 0.0, 0.0
        for module in (sam.prompt_encoder, sam.mask_decoder):
            module.register_forward_pre_hook(self._enter)
            module.register_forward_hook(self._leave)

    def _enter(self, *_) -> None:
        self._start = time.perf_counter()

    def _leave(self, *_) -> None:
        self.seconds += time.perf_counter() - self._start


class DecodeTimer:
    """Wall time inside a segmenter's decode (prompt encoder + mask decoder + its batching)."""

    def __init__(self, segmenter: SamSegmenter) -> None:
        self.seconds = 0.0
        decode = segmenter.decode

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return decode(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        segmenter.decode = timed


def run_ours(segmenter: SamSegmenter, sample: ImageSample, max_clicks: int) -> tuple[list[list[float]], float, float]:
    """IoUs per object (last: the oracle), encoder seconds, prompt-stage seconds."""
    image = sample.load_image()
    start = time.perf_counter()
    embedding = segmenter.encode(image)  # what the task's ctx.embed does without a cache
    encode = time.perf_counter() - start
    start = time.perf_counter()
    traces = interactive_session(segmenter, embedding, [o.mask for o in sample.objects], sample.ignore,
                                 max_clicks=max_clicks)
    return [t.ious + [t.iou_oracle] for t in traces], encode, time.perf_counter() - start


def bench(name: str, ours: dict[str, SamSegmenter], samples: list[ImageSample], max_clicks: int) -> dict[str, float]:
    """Naive loop vs each of `ours` (label -> segmenter) on the same samples; returns the
    prompt-stage ratio per label. The first label must be exact (IoUs within 1e-4 of naive)."""
    first = next(iter(ours.values()))
    predictor = SamPredictor(first.model)
    network = NetworkTimer(first.model)
    decoders = {label: DecodeTimer(seg) for label, seg in ours.items()}
    for seg in ours.values():  # warm-up (compiles every graph when compiled); not timed
        run_ours(seg, samples[0], max_clicks)
    for timer in decoders.values():
        timer.seconds = 0.0
    wall = {"naive": 0.0, "naive_enc": 0.0, **{k: 0.0 for k in ours}, **{k + "_enc": 0.0 for k in ours}}
    net_naive = 0.0
    ious: dict[str, list[list[float]]] = {k: [] for k in ["naive", *ours]}
    for sample in samples:
        image = sample.load_image()
        start = time.perf_counter()
        predictor.set_image(image)
        wall["naive_enc"] += time.perf_counter() - start
        start, start_net = time.perf_counter(), network.seconds
        ious["naive"] += naive_session(predictor, sample, max_clicks)
        wall["naive"] += time.perf_counter() - start
        net_naive += network.seconds - start_net
        for label, seg in ours.items():
            result, encode, prompts = run_ours(seg, sample, max_clicks)
            ious[label] += result
            wall[label + "_enc"] += encode
            wall[label] += prompts
    exact = next(iter(ours))
    worst = 0.0
    for ref, got in zip(ious["naive"], ious[exact]):
        if len(ref) != len(got):
            raise SystemExit(f"{name}: {len(got)} IoUs vs naive {len(ref)}")
        worst = max(worst, float(np.abs(np.array(ref) - np.array(got)).max()))
    n_obj, n = len(ious["naive"]), len(samples)
    clicks = n_obj * max_clicks
    print(f"[{name}] {n} images, {n_obj} objects, {max_clicks} clicks each; {exact} vs naive: max |IoU diff| {worst:.1e}")
    print(f"[{name}] naive: encoder {wall['naive_enc'] / n * 1e3:.0f} ms/image; prompt stage "
          f"{wall['naive'] / clicks * 1e3:.1f} ms/click, of which prompt encoder + mask decoder "
          f"{net_naive / clicks * 1e3:.1f} ms")
    ratios = {}
    reference_miou = 100 * miou_curve(iou_matrix([o[:-1] for o in ious[exact]], max_clicks))
    for label in ours:
        ratios[label] = wall["naive"] / wall[label]
        miou = 100 * miou_curve(iou_matrix([o[:-1] for o in ious[label]], max_clicks))
        print(f"[{name}] {label}: encoder {wall[label + '_enc'] / n * 1e3:.0f} ms/image; prompt stage "
              f"{wall[label] / clicks * 1e3:.1f} ms/click, of which decode {decoders[label].seconds / clicks * 1e3:.1f} ms; "
              f"vs naive {ratios[label]:.2f}x; mIoU@1..{max_clicks} vs {exact}: max |diff| "
              f"{np.abs(miou - reference_miou).max():.2f} points (mIoU@{max_clicks} {miou[-1]:.2f})")
    if worst > 1e-4:
        raise SystemExit(f"{name}: IoUs differ from the naive loop by {worst:.2e} > 1e-4")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--skip-vit-b", action="store_true", help="tiny model only")
    parser.add_argument("--synthetic", action="store_true", help="synthetic images even if the dataset is present")
    parser.add_argument("--dataset", default="grabcut",
                        help="a dataset folder of ../shared/data (grabcut: 1 object/image; ppdls, bbbc038: many)")
    parser.add_argument("--compile", action="store_true", help="ours with torch.compile (compiles in a warm-up)")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 run of ours")
    parser.add_argument("--checkpoint", help="an official-layout SAM checkpoint instead of the random tiny model")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    label, samples = load_samples(args.images, args.synthetic, args.dataset)
    print(f"{label}: {len(samples)} images; torch threads {torch.get_num_threads()}")
    if args.checkpoint:
        loaded = load_sam_checkpoint(args.checkpoint)
        models = {f"{loaded.architecture.name} {Path(args.checkpoint).name}": loaded.model.eval()}
    else:
        models = {"tiny-random": build_tiny_model().model}
    if not args.skip_vit_b:
        torch.manual_seed(0)
        models["vit_b-random"] = build_sam(OFFICIAL_ARCHITECTURES["vit_b"])
    ratios = {}
    for name, sam in models.items():
        ours = {}
        for precision in ["fp32"] + ([] if args.no_bf16 else ["bf16"]):
            seg = SamSegmenter(sam, ModelInfo(name, True), "bench", torch.device("cpu"), precision)
            if args.compile:
                seg.enable_compile()
            ours[f"ours {precision}{' compiled' if args.compile else ''}"] = seg
        ratios = bench(name, ours, samples, args.clicks)
    for label, ratio in list(ratios.items())[1:]:
        print(f"{label} vs naive: {ratio:.2f}x")
    print(f"point vs naive: {next(iter(ratios.values())):.2f}x")


if __name__ == "__main__":
    sys.exit(main())
