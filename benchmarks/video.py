"""Video tracking speed: sam-bench's `sam2` session loop vs sam2's own SAM2VideoPredictor loop (as
tools/vos_inference.py drives it) on the same model, frames and prompts; masks must be identical.

    python benchmarks/video.py [--checkpoint sam2.1_hiera_tiny.pt | --size t] [--frames 4] [--objects 2]

Both loops: open the video (sam-bench: lazy frames; sam2: init_state reads the JPEG folder), one
prompt per object on frame 0 (the first frame's annotation mask, or --prompt click: one click at
its distance-transform maximum), propagate through the video and threshold every object's logits
at 0 into numpy masks. Printed per loop: frames per second end to end and of the propagation alone
(what sam2's benchmark.py times), time in the image encoder (the predictor's forward_image) and in
the rest, peak memory (CUDA: max allocated; CPU: peak resident size of a child process running
only that loop, sam-bench's imports included). The two loops alternate --repeat times, each keeping
its fastest trial. Without --checkpoint a random SAM 2.1 of --size is built with sam2's own
builder (timing does not depend on the weights). Last line: `video vs predictor: <ratio>x` (predictor
time / sam-bench time, end to end); >= 1.0 means sam-bench adds no cost.

The one GPU command, measured as sam2's own benchmark.py measures (sam2 README, A100: 91.2 / 84.8 /
64.1 / 39.5 FPS for t / s / b+ / l): SAM2VideoPredictorVOS (vos_optimized, every component
torch.compiled), bf16 autocast with TF32, one object given by one click on frame 0, propagation of
the whole video timed over 25 runs after 5 warm-up runs:

    python benchmarks/video.py --device cuda --precision bf16 --vos-optimized --size t --prompt click \
        --objects 1 --frames 0 --runs 25 --warmup 5 [--checkpoint sam2.1_hiera_tiny.pt] [--data-root DIR]

(--frames 0: every frame of the sequence; --data-root: a folder of JPEG frames plus the first
frame's palette PNG, default ../shared/data/davis2017_sample's judo; sam2 times its 200-frame
notebooks/videos/bedroom. Repeat with --size s, b+, l.)
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]  # video_fixtures
SAMPLE = ROOT.parent / "shared" / "data" / "davis2017_sample"


def random_checkpoint(size: str, directory: Path) -> Path:
    """A random SAM 2.1 from sam2's builder, official layout; object-score head biased to
    "present" so that the tracked frames carry masks (as a trained model's would)."""
    from sam2.build_sam import build_sam2

    torch.manual_seed(0)
    model = build_sam2(f"configs/sam2.1/sam2.1_hiera_{size}.yaml", ckpt_path=None, device="cpu")
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(20.0)
    path = directory / f"sam2.1_hiera_{size}_random.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


class Timer:
    """Seconds spent in one method of a class while patched (sam2's forward_image)."""

    def __init__(self, owner: type, name: str, device: torch.device) -> None:
        self.seconds, self.device = 0.0, device
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = self._now()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += self._now() - start

        self.patch = mock.patch.object(owner, name, timed)

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()


def prompts(args, annotation: np.ndarray) -> dict[int, dict]:
    from video_fixtures import inside_point

    objects = [int(o) for o in np.unique(annotation) if o][: args.objects or None]
    if args.prompt == "mask":
        return {obj: {"mask": annotation == obj} for obj in objects}
    return {obj: {"points": inside_point(annotation == obj), "labels": np.array([1], np.int32)} for obj in objects}


def run_loop(which: str, args, checkpoint: Path, folder: Path, given: dict) -> dict:
    """One loop, `runs` times; returns timings (of the timed runs), masks of the last run, peak memory."""
    from video_fixtures import folder_frames

    frames = folder_frames(folder)
    device = torch.device(args.device)
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    from sam_bench.core.device import autocast

    if which == "predictor":
        from sam2.build_sam import build_sam2_video_predictor

        predictor = build_sam2_video_predictor(
            config_of(checkpoint), ckpt_path=str(checkpoint), device=str(device), apply_postprocessing=False,
            hydra_overrides_extra=["++model.non_overlap_masks=false"], vos_optimized=args.vos_optimized)
    else:
        from sam_bench.models.sam2_model import build_sam2_model

        model = build_sam2_model(str(checkpoint), device=device, precision=args.precision,
                                 vos_optimized=str(args.vos_optimized))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats()
    timings, masks = [], {}
    for run in range(args.warmup + args.runs):
        encoder = Timer(SAM2VideoPredictor, "forward_image", device)
        with encoder.patch:
            start = encoder._now()
            if which == "predictor":
                with torch.inference_mode(), autocast(device, args.precision):
                    state = predictor.init_state(video_path=str(frames.folder), async_loading_frames=False)
                    for obj, prompt in given.items():
                        if "mask" in prompt:
                            predictor.add_new_mask(state, 0, obj, prompt["mask"])
                        else:
                            predictor.add_new_points_or_box(state, 0, obj, points=prompt["points"],
                                                            labels=prompt["labels"])
                    opened = encoder._now()
                    for frame, ids, logits in predictor.propagate_in_video(state):
                        masks[frame] = {obj: (logits[i] > 0).cpu().numpy()[0] for i, obj in enumerate(ids)}
            else:
                session = model.open_video(frames)
                for obj, prompt in given.items():
                    if "mask" in prompt:
                        session.add_mask(0, obj, prompt["mask"])
                    else:
                        session.add_points(0, obj, prompt["points"], prompt["labels"])
                opened = encoder._now()
                masks.update(session.propagate())
                session.close()
            end = encoder._now()
        if run >= args.warmup:
            timings.append((end - start, end - opened, encoder.seconds))
    total, propagation, encoder_s = (float(np.mean(t)) for t in zip(*timings))
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"total": total, "propagation": propagation, "encoder": encoder_s, "peak": peak, "masks": masks}


def config_of(checkpoint: Path) -> str:
    from sam_bench.core.checkpoint import read_state_dict
    from sam_bench.models.sam2_model import infer_config

    return infer_config(read_state_dict(str(checkpoint)), str(checkpoint))


def _child(which, args, checkpoint, folder, given, queue) -> None:
    sys.path[:0] = [str(ROOT / "tests")]
    torch.set_num_threads(args.threads)
    queue.put(run_loop(which, args, checkpoint, folder, given))


def measure(which: str, args, checkpoint: Path, folder: Path, given: dict) -> dict:
    """On CPU each loop runs in its own process, so that its peak resident size is its own."""
    if args.device != "cpu":
        return run_loop(which, args, checkpoint, folder, given)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child, args=(which, args, checkpoint, folder, given, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--size", choices=["t", "s", "b+", "l"], default="t", help="random SAM 2.1 size without --checkpoint")
    parser.add_argument("--data-root", type=Path, default=SAMPLE / "JPEGImages/480p/judo")
    parser.add_argument("--annotation", type=Path, help="first frame's palette PNG (default: the sample's)")
    parser.add_argument("--frames", type=int, default=4, help="first N frames (0: all)")
    parser.add_argument("--objects", type=int, default=0, help="first N objects of the annotation (0: all)")
    parser.add_argument("--prompt", choices=["mask", "click"], default="mask")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--vos-optimized", action="store_true")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeat", type=int, default=2, help="alternating trials of each loop; the fastest counts")
    args = parser.parse_args()
    from video_fixtures import clip, label_map

    work = Path(tempfile.mkdtemp(prefix="sam_bench_video_"))
    names = sorted(p.stem for p in args.data_root.glob("*.jpg"))[: args.frames or None]
    frames = clip(args.data_root, names, work / "frames")
    annotation = label_map(args.annotation or SAMPLE / "Annotations/480p/judo" / f"{names[0]}.png")
    checkpoint = args.checkpoint or random_checkpoint(args.size, work)
    given = prompts(args, annotation)
    print(f"{checkpoint.name}: {len(frames)} frames {frames.width}x{frames.height}, {len(given)} object(s) by "
          f"{args.prompt}, {args.device} {args.precision}{' vos_optimized' if args.vos_optimized else ''}, "
          f"{args.threads} threads, {args.runs} run(s) after {args.warmup} warm-up, best of {args.repeat}")
    # The loops alternate, --repeat times each, and each keeps its fastest: on a shared machine the
    # load changes between runs, and the second of two single runs would pay for it.
    trials = {"predictor": [], "sam-bench": []}
    for _ in range(args.repeat):
        for which in trials:
            trials[which].append(measure(which, args, checkpoint, frames.folder, given))
    results = {which: min(runs, key=lambda r: r["total"]) for which, runs in trials.items()}
    for which, r in results.items():
        print(f"[{which}] {len(frames) / r['total']:.3f} frames/s end to end ({r['total']:.1f} s), propagation "
              f"{len(frames) / r['propagation']:.3f} frames/s; image encoder {r['encoder']:.1f} s, rest "
              f"{r['total'] - r['encoder']:.1f} s; peak memory {r['peak'] / 2**20:.0f} MiB")
    ours, theirs = results["sam-bench"]["masks"], results["predictor"]["masks"]
    same = list(ours) == list(theirs) and all(
        list(ours[f]) == list(theirs[f]) and all(np.array_equal(ours[f][o], theirs[f][o]) for o in ours[f]) for f in ours)
    area = np.mean([m.mean() for f in ours for m in ours[f].values()])
    print(f"masks identical: {same} ({len(ours)} frames, mean mask area {area:.3f} of the frame)")
    print(f"video vs predictor: {results['predictor']['total'] / results['sam-bench']['total']:.2f}x")


if __name__ == "__main__":
    main()
