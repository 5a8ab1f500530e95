"""SAM mask decoder speed against the machine's matmul roofline, measured in the same run.

    python benchmarks/decoder.py [--batch 4] [--reps 3] [--threads N] [--mask-input] [--skip-compile]
    python benchmarks/decoder.py --sweep 1,2,4,8,16 [--threads N]
    python benchmarks/decoder.py --profile [--batch 4] [--mask-input]

--sweep times the fast path (eager and compiled, fp32 and bf16) at each prompt batch size and
prints ms per prompt: the measurement behind `models.sam.default_batch_size` on CPU. --profile
prints where the time of each fp32 variant goes (torch.profiler, self time per operator) and the
share spent in matrix products, the part the roofline is about.

The decoder is the official SAM-1 MaskDecoder (transformer width 256, depth 2, MLP 2048: the
same for ViT-B/L/H; random weights of the seeded `tiny` model, which only differs in its encoder).
Work per prompt is the official forward's FLOP count (torch's FlopCounterMode, matmuls and
convolutions), so every variant is credited the same work and work that the fast path shares
across prompts or does in fewer operations shows up as a higher rate ("effective" GFLOPS). Peak:
best torch.mm of 2048x2048 in fp32 and bf16, timed in the same interleaved rounds. Variants: the official forward eager and compiled, sam-bench's fast path
(sam_bench/models/sam_fast_decoder.py) eager and compiled, each in fp32 and bf16 autocast; a
batch of --batch one-point multimask prompts (no mask input: the point task's first round and
AMG), or with --mask-input the point task's later rounds (previous logits fed back, one mask).
Rounds are interleaved (best of --reps per variant) so load on a shared machine hits all alike.
Last line: the best fp32 variant's rate as a fraction of the fp32 matmul peak.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from sam_bench.models.sam import make_tiny_sam
from sam_bench.models.sam_fast_decoder import FastMaskDecoder


def matmul_peak(dtype: torch.dtype, n: int = 2048) -> Callable[[], object]:
    """An n x n matrix product (2 n^3 operations) to time beside the decoder variants."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return lambda: torch.mm(a, b)


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4, help="prompts per decoder call")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--mask-input", action="store_true", help="prompts with a mask input, single mask out")
    parser.add_argument("--skip-compile", action="store_true", help="eager variants only (no ~30-90 s compiles)")
    parser.add_argument("--profile", action="store_true", help="operator profile of each fp32 variant")
    parser.add_argument("--sweep", default="", help="batch sizes (1,2,4,...): ms per prompt of the fast path at each")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sweep:
        sweep([int(b) for b in args.sweep.split(",")], args.reps, args.mask_input, args.skip_compile)
        return
    torch.manual_seed(0)
    sam = make_tiny_sam().eval()
    pe = sam.prompt_encoder.get_dense_pe().detach()
    fast = FastMaskDecoder(sam.mask_decoder, pe)
    image = torch.randn(1, 256, 64, 64)
    b = args.batch
    points = (torch.rand(b, 1, 2) * 1024, torch.ones(b, 1, dtype=torch.int))
    masks = torch.randn(b, 1, 256, 256) * 4 if args.mask_input else None
    multimask = not args.mask_input
    with torch.no_grad():
        sparse, dense = sam.prompt_encoder(points=points, boxes=None, masks=masks)
        sparse, dense = sparse.detach(), dense.detach()
        shared_dense = dense[:1] if masks is None else dense
        with FlopCounterMode(display=False) as counter:
            sam.mask_decoder(image, pe, sparse, dense, multimask)
        work = counter.get_total_flops() / b
    print(f"threads {torch.get_num_threads()}; batch {b} prompts, {'mask input' if masks is not None else 'no mask input'}; "
          f"official decoder work {work / 1e9:.2f} GFLOP/prompt", flush=True)

    official_compiled = fast_compiled = None
    if not args.skip_compile:
        official_compiled = torch.compile(sam.mask_decoder)
        fast_compiled = torch.compile(fast.forward)
    variants: dict[str, Callable[[], object] | None] = {
        "matmul peak": None,  # per precision below, timed in the same rounds as the decoders
        "official eager": lambda: sam.mask_decoder(image, pe, sparse, dense, multimask),
        "fast eager": lambda: fast(fast.image_side(image, shared_dense, masks is None), sparse, multimask),
    }
    if official_compiled is not None:
        variants["official compiled"] = lambda: official_compiled(image, pe, sparse, dense, multimask)
        variants["fast compiled"] = lambda: fast_compiled(
            *_side(fast, image, shared_dense, masks is None), sparse, multimask)
    if args.profile:
        with torch.no_grad():
            for name, fn in variants.items():
                if fn is not None:
                    profile(name, fn, b)
        return
    best: dict[tuple[str, str], float] = {}
    with torch.no_grad():
        reference = sam.mask_decoder(image, pe, sparse, dense, multimask)[0]
        for precision in ("fp32", "bf16"):
            context = torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16")
            variants["matmul peak"] = matmul_peak(torch.float32 if precision == "fp32" else torch.bfloat16)
            with context:
                for name, fn in variants.items():  # warm-up: compiles here
                    seconds = _seconds(fn)
                    if name == "matmul peak":
                        continue
                    out = fn()[0].float()
                    print(f"  {precision} {name}: first call {seconds:.1f} s; max |logit diff| to fp32 official "
                          f"{(out - reference).abs().max().item():.1e}", flush=True)
                for _ in range(args.reps):
                    for name, fn in variants.items():
                        key = (precision, name)
                        best[key] = min(best.get(key, float("inf")), _seconds(fn))
    peaks = {p: 2 * 2048 ** 3 / best.pop((p, "matmul peak")) / 1e9 for p in ("fp32", "bf16")}
    print(f"matmul peak (2048^3, best of {args.reps}): fp32 {peaks['fp32']:.0f} GFLOPS, bf16 {peaks['bf16']:.0f} GFLOPS")
    print(f"{'variant':<28} {'ms/prompt':>10} {'GFLOPS':>8} {'of fp32 peak':>13} {'of own peak':>12}")
    for (precision, name), seconds in best.items():
        rate = work * b / seconds / 1e9
        print(f"{precision + ' ' + name:<28} {seconds / b * 1e3:>10.1f} {rate:>8.0f} "
              f"{rate / peaks['fp32']:>13.2f} {rate / peaks[precision]:>12.2f}")
    fp32_best = min(seconds for (precision, _), seconds in best.items() if precision == "fp32")
    print(f"decoder vs fp32 peak: {work * b / fp32_best / 1e9 / peaks['fp32']:.2f}x")


MATMUL_OPS = ("mm", "bmm", "addmm", "baddbmm", "linear", "matmul", "mkldnn", "_mkl", "convolution")


def profile(name: str, fn: Callable[[], object], batch: int, calls: int = 5, top: int = 12) -> None:
    """Self time per operator over `calls` calls (after two warm-ups), the top ones and the share
    of matrix-product kernels (aten mm/bmm/addmm/linear, oneDNN, and compiled graphs' extern mm calls)."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    fn(), fn()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    matmul = sum(e.self_cpu_time_total for e in events if any(k in e.key.lower() for k in MATMUL_OPS))
    print(f"\n{name}: {total / calls / batch / 1e3:.1f} ms/prompt of operator self time; matrix products "
          f"{matmul / total:.0%}")
    for e in events[:top]:
        print(f"  {e.self_cpu_time_total / total:6.1%}  {e.count // calls:4d}/call  {e.key[:90]}")


def sweep(batches: list[int], reps: int, mask_input: bool, skip_compile: bool) -> None:
    """ms per prompt of the fast path per batch size. Each size gets its own static graph (the
    segmenter pads every chunk to one size); rounds are interleaved over sizes and precisions so
    load on a shared machine hits all alike."""
    torch._dynamo.config.cache_size_limit = 4 * len(batches) + 8  # one graph per size, precision
    torch.manual_seed(0)
    sam = make_tiny_sam().eval()
    pe = sam.prompt_encoder.get_dense_pe().detach()
    fast = FastMaskDecoder(sam.mask_decoder, pe)
    image = torch.randn(1, 256, 64, 64)
    variants = ["eager"] + ([] if skip_compile else ["compiled"])
    compiled = torch.compile(fast.forward, dynamic=False)
    calls = {}
    with torch.no_grad():
        for b in batches:
            points = (torch.rand(b, 1, 2) * 1024, torch.ones(b, 1, dtype=torch.int))
            masks = torch.randn(b, 1, 256, 256) * 4 if mask_input else None
            sparse, dense = sam.prompt_encoder(points=points, boxes=None, masks=masks)
            shared_dense = dense if mask_input else dense[:1]
            for precision in ("fp32", "bf16"):
                for name in variants:
                    fn = fast.forward if name == "eager" else compiled
                    calls[precision, name, b] = lambda fn=fn, sparse=sparse, dense=shared_dense: fn(
                        *_side(fast, image, dense, not mask_input), sparse, not mask_input)  # image side timed, as decode runs it
        best = dict.fromkeys(calls, float("inf"))
        for round_ in range(reps + 1):  # round 0 warms up (compiles)
            for (precision, name, b), call in calls.items():
                with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                    seconds = _seconds(call) / b
                if round_:
                    best[precision, name, b] = min(best[precision, name, b], seconds)
    print(f"threads {torch.get_num_threads()}; fast decoder, {'mask input' if mask_input else 'no mask input'}; "
          f"ms per prompt (best of {reps} interleaved rounds)")
    print(f"{'variant':<18}" + "".join(f"{'batch ' + str(b):>10}" for b in batches))
    for precision in ("fp32", "bf16"):
        for name in variants:
            print(f"{precision + ' ' + name:<18}" + "".join(f"{best[precision, name, b] * 1e3:>10.1f}" for b in batches))
    last = variants[-1]
    fastest = min(batches, key=lambda b: best["fp32", last, b])
    print(f"fastest fp32 {last} batch size: {fastest}; vs batch {batches[0]}: "
          f"{best['fp32', last, batches[0]] / best['fp32', last, fastest]:.2f}x")


def _side(fast: FastMaskDecoder, image: torch.Tensor, dense: torch.Tensor, shared: bool) -> tuple:
    side = fast.image_side(image, dense, shared)
    return side.keys, side.projected


if __name__ == "__main__":
    main()
