"""Harness overhead of the `point` task on real images: wall time outside the model's forward passes.

    python benchmarks/overhead.py [--images N] [--clicks N] [--model vit_b|tiny] [--workers 1]
                                  [--precision fp32|bf16] [--compile] [--threads N]

Runs the point task through the runner (sam_bench.api.run: pipelined loading, clicks, IoUs,
progress records, metrics, report) on the first N GrabCut images of ../shared/data/grabcut and
splits the run's wall time (run.json) into the model's encoder and decoder calls (the `encode`
and `decode` stages) and everything else: reading and decoding images (in the main process
when --workers 0), clicks, upsampling and IoUs, per-image records, metrics, plot and report.
Model: a ViT-B-sized SAM with random weights (official modules; the forward costs of a real
ViT-B) or the tiny one. Last line: the harness time as a fraction of the model time.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from sam_bench.api import run
from sam_bench.core.checkpoint import OFFICIAL_ARCHITECTURES, build_sam
from sam_bench.core.types import ModelInfo
from sam_bench.models.sam import SamSegmenter, make_tiny_sam
from sam_bench.registry import MODELS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


BUILD_SECONDS = [0.0]  # model construction: start-up, not harness work per image


def register(model: str) -> str:
    """The benchmark's model in the registry of this process, its construction time measured:
    a ViT-B-sized random SAM (no checkpoint file needed) or the tiny one."""
    name = f"bench_{model}"

    @MODELS.register(name, help="benchmark only")
    def build(device: torch.device = torch.device("cpu"), precision: str = "fp32",
              batch_size: int | None = None, **_: object) -> SamSegmenter:
        start = time.perf_counter()
        torch.manual_seed(0)
        sam = build_sam(OFFICIAL_ARCHITECTURES["vit_b"]) if model == "vit_b" else make_tiny_sam()
        segmenter = SamSegmenter(sam, ModelInfo(f"{model}-random", True), "random", device, precision, batch_size)
        BUILD_SECONDS[0] += time.perf_counter() - start
        return segmenter
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--model", choices=["vit_b", "tiny"], default="vit_b")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (SHARED / "grabcut").is_dir():
        raise SystemExit(f"no GrabCut data under {SHARED}; the benchmark needs ../shared/data")
    model = register(args.model)
    with tempfile.TemporaryDirectory() as out:
        run(task="point", model=model, dataset="grabcut", data_root=str(SHARED / "grabcut"), out=out,
            limit=args.images, device="cpu", precision=args.precision, compile=args.compile,
            workers=args.workers, options={"max_clicks": args.clicks})
        record = json.loads((Path(out) / "run.json").read_text())["tasks"]["point/grabcut"]
    seconds = record["wall_seconds"]
    model_time = seconds.get("encode", 0.0) + seconds.get("decode", 0.0)
    harness = seconds["total"] - BUILD_SECONDS[0] - model_time
    print(f"{args.model}, {args.images} GrabCut images, {args.clicks} clicks, {args.precision}"
          f"{', compiled' if args.compile else ''}, workers {args.workers}, torch threads {torch.get_num_threads()}")
    print(f"wall {seconds['total']:.2f} s: model construction {BUILD_SECONDS[0]:.2f} s (not counted), encoder {seconds.get('encode', 0):.2f} s, decoder {seconds.get('decode', 0):.2f} s; "
          f"outside the model {harness:.2f} s = clicks {seconds.get('clicks', 0):.2f} s + upsampling and IoUs "
          f"{seconds.get('masks', 0):.2f} s + the rest (loading, records, metrics, report) "
          f"{harness - seconds.get('clicks', 0) - seconds.get('masks', 0):.2f} s")
    print(f"share of wall time outside encoder + decoder (construction excluded): "
          f"{harness / (seconds['total'] - BUILD_SECONDS[0]):.1%}")
    print(f"harness overhead vs model time: {harness / model_time:.2f}x")


if __name__ == "__main__":
    main()
