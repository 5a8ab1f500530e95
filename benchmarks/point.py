"""Point task throughput: sam-bench's batched click loop vs the naive loop, on the same model,
images and clicks.

    python benchmarks/point.py [--images N] [--clicks N] [--threads N] [--skip-vit-b]

Naive loop: SamPredictor.set_image once per image, then SamPredictor.predict once per object per
click (full-resolution masks), IoU and RITM clicks on full-resolution numpy arrays. Ours: the
`point` task's session (`interactive_session`, what `evaluate_image` runs after its one encoder
pass: one batched decode per click round for all objects, batched upsampling and IoU on torch,
distance transforms on error bounding boxes).
The IoU of every object after every click must agree to 1e-4. Images: real GrabCut images
(../shared/data/grabcut, one object each) when present, else synthetic ones (four nested
objects each). Models: `tiny` and a ViT-B-sized random SAM (same decoder, larger encoder).
The last line is the prompt-stage ratio (everything after the image embedding, which both loops
compute once per image with the same official encoder) for the ViT-B-sized model.
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

from sam_bench.core.checkpoint import OFFICIAL_ARCHITECTURES, build_sam
from sam_bench.core.types import ModelInfo
from sam_bench.data.registry import open_dataset
from sam_bench.data.synthetic import make_image
from sam_bench.data.types import ImageSample, ObjectAnnotation
from sam_bench.models.sam import SamSegmenter, build_tiny_model
from sam_bench.tasks.point.task import interactive_session

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_samples(n: int, synthetic: bool = False) -> tuple[str, list[ImageSample]]:
    if (SHARED / "grabcut").is_dir() and not synthetic:
        dataset = open_dataset("grabcut", str(SHARED / "grabcut"), limit=n)
        return "GrabCut (real, 1 object/image)", [dataset.get(i) for i in range(len(dataset))]
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


def bench(name: str, segmenter: SamSegmenter, samples: list[ImageSample], max_clicks: int) -> float:
    predictor = SamPredictor(segmenter.model)
    network = NetworkTimer(segmenter.model)
    net = {"naive": 0.0, "ours": 0.0}
    wall = {"naive_enc": 0.0, "naive": 0.0, "ours_enc": 0.0, "ours": 0.0}
    cpu = {"naive": 0.0, "ours": 0.0}
    worst, n_obj = 0.0, 0
    for sample in samples:
        image = sample.load_image()
        start = time.perf_counter()
        predictor.set_image(image)
        wall["naive_enc"] += time.perf_counter() - start
        start, start_cpu, start_net = time.perf_counter(), time.process_time(), network.seconds
        naive = naive_session(predictor, sample, max_clicks)
        wall["naive"] += time.perf_counter() - start
        cpu["naive"] += time.process_time() - start_cpu
        net["naive"] += network.seconds - start_net

        start = time.perf_counter()
        embedding = segmenter.encode(image)  # what the task's ctx.embed does without a cache
        wall["ours_enc"] += time.perf_counter() - start
        start, start_cpu, start_net = time.perf_counter(), time.process_time(), network.seconds
        traces = interactive_session(segmenter, embedding, [o.mask for o in sample.objects], sample.ignore,
                                     max_clicks=max_clicks)
        wall["ours"] += time.perf_counter() - start
        cpu["ours"] += time.process_time() - start_cpu
        net["ours"] += network.seconds - start_net
        for ref, trace in zip(naive, traces):
            ours = trace.ious + [trace.iou_oracle]
            if len(ref) != len(ours):
                raise SystemExit(f"{name} {sample.image_id}: {len(ours)} IoUs vs naive {len(ref)}")
            worst = max(worst, float(np.abs(np.array(ref) - np.array(ours)).max()))
            n_obj += 1
    clicks, n = n_obj * max_clicks, len(samples)
    print(f"[{name}] {n} images, {n_obj} objects, {max_clicks} clicks each; max |IoU diff| {worst:.1e}")
    print(f"[{name}] encoder per image: naive {wall['naive_enc'] / n * 1e3:.0f} ms, "
          f"ours {wall['ours_enc'] / n * 1e3:.0f} ms")
    print(f"[{name}] prompt stage per click: naive {wall['naive'] / clicks * 1e3:.1f} ms, "
          f"ours {wall['ours'] / clicks * 1e3:.1f} ms (ratio {wall['naive'] / wall['ours']:.2f}x; "
          f"CPU time ratio {cpu['naive'] / cpu['ours']:.2f}x)")
    rest = {k: wall[k] - net[k] for k in net}
    print(f"[{name}]   of which prompt encoder + mask decoder (same modules, same work): naive "
          f"{net['naive'] / clicks * 1e3:.1f} ms, ours {net['ours'] / clicks * 1e3:.1f} ms; everything else "
          f"(upsampling, IoU, clicks): naive {rest['naive'] / clicks * 1e3:.1f} ms, "
          f"ours {rest['ours'] / clicks * 1e3:.1f} ms (ratio {rest['naive'] / rest['ours']:.2f}x)")
    naive_total, ours_total = wall["naive_enc"] + wall["naive"], wall["ours_enc"] + wall["ours"]
    print(f"[{name}] end to end: naive {naive_total / n:.2f} s/image, ours {ours_total / n:.2f} s/image "
          f"(ratio {naive_total / ours_total:.2f}x)")
    if worst > 1e-4:
        raise SystemExit(f"{name}: IoUs differ from the naive loop by {worst:.2e} > 1e-4")
    return wall["naive"] / wall["ours"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--skip-vit-b", action="store_true", help="tiny model only")
    parser.add_argument("--synthetic", action="store_true", help="synthetic images even if GrabCut is present")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    label, samples = load_samples(args.images, args.synthetic)
    print(f"{label}: {len(samples)} images; torch threads {torch.get_num_threads()}")
    ratio = bench("tiny", build_tiny_model(), samples, args.clicks)
    if not args.skip_vit_b:
        torch.manual_seed(0)
        vit_b = SamSegmenter(build_sam(OFFICIAL_ARCHITECTURES["vit_b"]), ModelInfo("vit_b-random", True),
                             "random", torch.device("cpu"))
        ratio = bench("vit_b", vit_b, samples, args.clicks)
    print(f"point vs naive: {ratio:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
