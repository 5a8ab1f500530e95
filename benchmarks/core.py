"""Core throughput: encoder time per image and decoder time per prompt, batched path vs
SamPredictor called once per prompt, on the tiny model and a ViT-B-sized random model.

    python benchmarks/core.py [--images N] [--prompts N] [--threads N]

Both paths run in the same process on the same images and prompts; the last line is the
decoder ratio for ViT-B (the encoder is the same official module on both paths).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from segment_anything import SamPredictor

from sam_bench.core.checkpoint import OFFICIAL_ARCHITECTURES, build_sam
from sam_bench.core.types import ModelInfo, Prompts
from sam_bench.data.images import read_rgb
from sam_bench.data.synthetic import make_image
from sam_bench.models.sam import SamSegmenter, build_tiny_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_images(n: int) -> list[np.ndarray]:
    files = sorted((SHARED / "bsds500" / "images" / "val").glob("*.jpg"))[:n]
    if files:
        return [read_rgb(f) for f in files]
    rng = np.random.default_rng(0)
    return [make_image(rng, 321, 481).image for _ in range(n)]


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench(name: str, segmenter: SamSegmenter, images: list[np.ndarray], n_prompts: int) -> float:
    predictor = SamPredictor(segmenter.model)
    rng = np.random.default_rng(0)
    enc_ours = enc_ref = dec_ours = dec_ref = 0.0
    worst = 0.0
    for image in images:
        h, w = image.shape[:2]
        t, embedding = timed(lambda: segmenter.encode(image))
        enc_ours += t
        t, _ = timed(lambda: predictor.set_image(image))
        enc_ref += t
        points = rng.uniform(0, [w, h], size=(n_prompts, 1, 2))
        prompts = Prompts(points, np.ones((n_prompts, 1), int))
        t, decoded = timed(lambda: segmenter.decode(embedding, prompts, True))
        dec_ours += t
        start = time.perf_counter()
        for i in range(n_prompts):
            _, iou, low = predictor.predict(points[i], np.ones(1, int), multimask_output=True)
            worst = max(worst, float(np.abs(decoded.low_res_logits[i].numpy() - low).max()))
        dec_ref += time.perf_counter() - start
    n_img, n_total = len(images), len(images) * n_prompts
    print(f"[{name}] encoder per image: batched path {enc_ours / n_img * 1e3:.1f} ms, "
          f"SamPredictor {enc_ref / n_img * 1e3:.1f} ms (ratio {enc_ref / enc_ours:.2f}x)")
    print(f"[{name}] decoder per prompt: batched {dec_ours / n_total * 1e3:.2f} ms, "
          f"SamPredictor per prompt {dec_ref / n_total * 1e3:.2f} ms (ratio {dec_ref / dec_ours:.2f}x); "
          f"max |logit diff| {worst:.2e}")
    return dec_ref / dec_ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images = load_images(args.images)
    print(f"{len(images)} images, {args.prompts} single-point prompts each, torch threads {torch.get_num_threads()}")
    bench("tiny", build_tiny_model(), images, args.prompts)
    torch.manual_seed(0)
    vit_b = SamSegmenter(build_sam(OFFICIAL_ARCHITECTURES["vit_b"]), ModelInfo("vit_b-random", True), "random",
                         torch.device("cpu"))
    ratio = bench("vit_b", vit_b, images, args.prompts)
    print(f"decoder batched vs per-prompt SamPredictor: {ratio:.1f}x")


if __name__ == "__main__":
    main()
