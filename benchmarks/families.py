"""Per-family throughput (issue 11): encoder ms per image, decoder ms per prompt for sam-bench's
batched decode vs the family's own predictor called once per prompt, on small random models.

    python benchmarks/families.py [--images N] [--prompts N] [--threads N]

Families whose package is missing are skipped with a note. The last line is the geometric mean
of the decoder ratios (per-prompt predictor time / batched time).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sam_bench.core.types import Prompts
from sam_bench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]  # core.load_images, family_models

PerPrompt = Callable[[np.ndarray, int], None]  # (points (B, 1, 2), i) -> runs the predictor for prompt i


def bench(name: str, model, set_image: Callable[[np.ndarray], None], per_prompt: PerPrompt,
          images: list[np.ndarray], n_prompts: int) -> float:
    rng = np.random.default_rng(0)
    enc = dec = ref = 0.0
    for image in images:
        h, w = image.shape[:2]
        start = time.perf_counter()
        embedding = model.encode(image)
        enc += time.perf_counter() - start
        set_image(image)
        points = rng.uniform(0, [w, h], size=(n_prompts, 1, 2))
        start = time.perf_counter()
        model.decode(embedding, Prompts(points, np.ones((n_prompts, 1), int)), True)
        dec += time.perf_counter() - start
        start = time.perf_counter()
        for i in range(n_prompts):
            per_prompt(points, i)
        ref += time.perf_counter() - start
    total = len(images) * n_prompts
    print(f"[{name}] encoder {enc / len(images) * 1e3:.0f} ms/image; decoder batched {dec / total * 1e3:.2f} "
          f"ms/prompt, family predictor per prompt {ref / total * 1e3:.2f} ms/prompt ({ref / dec:.2f}x)")
    return ref / dec


def sam1_like(name: str, build_model: Callable[[str], object], sam: torch.nn.Module, predictor_cls,
              directory: Path, images, n_prompts: int, **predict_kwargs) -> float:
    path = directory / f"{name}.pth"
    torch.save(sam.state_dict(), path)
    model = build_model(str(path))
    predictor = predictor_cls(sam)
    return bench(name, model, predictor.set_image,
                 lambda pts, i: predictor.predict(pts[i], np.ones(1, int), multimask_output=True, **predict_kwargs),
                 images, n_prompts)


def hf_family(class_name: str, directory: Path, images, n_prompts: int) -> float:
    from sam_bench.models.hf import build_hf_model
    from family_models import Reference, tiny_hf

    model, processor = tiny_hf(class_name)
    model.save_pretrained(directory / class_name)
    processor.save_pretrained(directory / class_name)
    adapter = build_hf_model(str(directory / class_name))
    state = {}

    def set_image(image):
        state["ref"] = Reference(model, processor, class_name, image)

    def per_prompt(pts, i):
        state["ref"].run(input_points=[[pts[i].tolist()]], input_labels=[[[1]]], multimask=True)

    return bench(f"hf {class_name}", adapter, set_image, per_prompt, images, n_prompts)


def sam2_family(directory: Path, images, n_prompts: int) -> float:
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from sam_bench.models.sam2_model import build_sam2_model

    torch.manual_seed(0)
    path = directory / "sam2.1_hiera_tiny.pt"
    torch.save({"model": build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", ckpt_path=None, device="cpu")
                .state_dict()}, path)
    model = build_sam2_model(str(path))
    predictor = SAM2ImagePredictor(model.model)
    return bench("sam2 hiera_t", model, predictor.set_image,
                 lambda pts, i: predictor.predict(pts[i], np.ones(1, int), multimask_output=True),
                 images, n_prompts)


def sam3_family(directory: Path, images, n_prompts: int) -> float:
    from PIL import Image
    from sam3.model.sam3_image_processor import Sam3Processor

    from sam_bench.models.sam3_build import Sam3Architecture, build_sam3, to_official_layout
    from sam_bench.models.sam3_model import build_sam3_model

    torch.manual_seed(0)
    path = directory / "sam3_small.pt"
    small = Sam3Architecture(vit_dim=64, vit_depth=4, vit_heads=1, vit_mlp_ratio=4.0, vit_global_blocks=(1, 3),
                             text_width=64, text_layers=2)
    torch.save(to_official_layout(build_sam3(small)), path)
    model = build_sam3_model(str(path))
    processor, state = Sam3Processor(model.sam3, device="cpu"), {}

    def set_image(image):
        state.update(processor.set_image(Image.fromarray(image)))

    return bench("sam3 small ViT", model, set_image,
                 lambda pts, i: model.sam3.predict_inst(state, point_coords=pts[i], point_labels=np.ones(1, int),
                                                        multimask_output=True),
                 images, n_prompts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from core import load_images

    images = load_images(args.images)
    print(f"{len(images)} images, {args.prompts} single-point prompts each, multimask, "
          f"torch threads {torch.get_num_threads()}")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = []
        try:
            from segment_anything_hq import SamPredictor as HQPredictor

            from sam_bench.models.sam_hq import build_sam_hq_model
            from family_models import tiny_hq_sam

            runs.append(lambda: sam1_like("sam_hq tiny", build_sam_hq_model, tiny_hq_sam(), HQPredictor, tmp,
                                          images, args.prompts))
        except ImportError as exc:
            print(f"[sam_hq] skipped: {exc}")
        try:
            from mobile_sam import SamPredictor as MobilePredictor
            from mobile_sam import sam_model_registry

            from sam_bench.models.mobile_sam import build_mobile_sam_model

            runs.append(lambda: sam1_like("mobile_sam vit_t", build_mobile_sam_model,
                                          sam_model_registry["vit_t"]().eval(), MobilePredictor, tmp, images,
                                          args.prompts))
        except ImportError as exc:
            print(f"[mobile_sam] skipped: {exc}")
        for family, run_family in (("sam2", sam2_family), ("sam3", sam3_family)):
            try:
                __import__(family)
                runs.append(lambda f=run_family: f(tmp, images, args.prompts))
            except ImportError as exc:
                print(f"[{family}] skipped: {exc}")
        try:
            import transformers  # noqa: F401

            for class_name in ("SamModel", "SamHQModel", "Sam2Model", "Sam3TrackerModel"):
                runs.append(lambda c=class_name: hf_family(c, tmp, images, args.prompts))
        except ImportError as exc:
            print(f"[hf] skipped: {exc}")
        for run in runs:
            try:
                ratios.append(run())
            except ConfigError as exc:
                print(f"skipped: {exc}")
    print(f"decoder batched vs per-prompt family predictor (geometric mean): "
          f"{float(np.exp(np.mean(np.log(ratios)))):.2f}x")


if __name__ == "__main__":
    main()
