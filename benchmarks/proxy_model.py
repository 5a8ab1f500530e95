"""A briefly trained small SAM, so speed benchmarks can check what random weights cannot.

    python benchmarks/proxy_model.py [--minutes 15] [--out ~/.cache/sam_bench/proxy_tiny.pth] [--resume PATH]

Random weights make the precision and equality checks of the speed benchmarks vacuous: their
logits hover around zero (bf16 rounding flips whole masks), and AMG keeps one mask or none. No
trained SAM checkpoint can be downloaded here, so this trains the `tiny` architecture (official
segment_anything modules, official checkpoint layout, loadable with `--model sam --checkpoint`)
for a few minutes on ../shared/data: GrabCut (50 images, one object) and BSDS500 val (100 images,
every region of the first annotator an object). It is fitted to those images, which are also the
ones the benchmarks use; it stands in for a trained model's confident, varied masks, and its
quality figures mean nothing. Training follows SAM's recipe in small: a random point inside an
object (or its box), three masks, the loss of the best one (focal 20 : dice 1) plus the IoU
head's squared error; half the steps add a corrective click with the previous logits as mask
input.

Prints the last minutes' mean loss and mIoU of the training prompts; last line
`proxy trained: <steps> steps, train mIoU <x>x` (x: mean IoU as a fraction).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.io import loadmat
from segment_anything.utils.transforms import ResizeLongestSide

from sam_bench.data.images import read_rgb
from sam_bench.data.registry import open_dataset
from sam_bench.models.sam import make_tiny_sam

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LOW = 256  # the decoder's low-resolution mask frame


def load_training_set(max_objects: int = 8) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """(image, object masks) pairs: GrabCut's objects (unknown band counted as object) and the
    regions of BSDS500 val's first annotator larger than 0.5% of the image."""
    if not (SHARED / "grabcut").is_dir():
        raise SystemExit(f"no GrabCut under {SHARED}: the proxy trains on ../shared/data")
    grabcut = open_dataset("grabcut", str(SHARED / "grabcut"))
    pairs = []
    for i in range(len(grabcut)):
        sample = grabcut.get(i)
        pairs.append((sample.load_image(), [o.mask for o in sample.objects]))
    for image_path in sorted((SHARED / "bsds500" / "images" / "val").glob("*.jpg")):
        truth = loadmat(SHARED / "bsds500" / "groundTruth" / "val" / f"{image_path.stem}.mat")["groundTruth"]
        labels = truth[0, 0]["Segmentation"][0, 0]
        masks = [labels == k for k in np.unique(labels)]
        masks = sorted((m for m in masks if m.mean() > 0.005), key=lambda m: -m.sum())[:max_objects]
        pairs.append((read_rgb(image_path), masks))
    return pairs


def low_res_target(mask: np.ndarray, transform: ResizeLongestSide) -> torch.Tensor:
    """The object's share of each cell of the padded 256x256 frame the decoder predicts in."""
    h, w = transform.get_preprocess_shape(*mask.shape, LOW)
    small = F.interpolate(torch.from_numpy(mask)[None, None].float(), (h, w), mode="area")
    return F.pad(small, (0, LOW - w, 0, LOW - h))[0, 0]


def random_point(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    i = rng.integers(len(ys))
    return float(xs[i]), float(ys[i])


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SAM's focal (gamma 2) : dice loss at 20 : 1, per mask: (..., H, W) -> (...)."""
    prob = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    focal = (bce * (1 - p_t) ** 2).mean((-2, -1))
    dice = 1 - (2 * (prob * target).sum((-2, -1)) + 1) / (prob.sum((-2, -1)) + target.sum((-2, -1)) + 1)
    return 20 * focal + dice


def soft_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    pred, truth = logits > 0, target > 0.5
    return (pred & truth).sum((-2, -1)) / (pred | truth).sum((-2, -1)).clamp(min=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--out", default=str(Path.home() / ".cache" / "sam_bench" / "proxy_tiny.pth"))
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--objects", type=int, default=6, help="objects per step")
    parser.add_argument("--resume", help="continue from a proxy checkpoint this script saved")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    pairs = load_training_set()
    sam = make_tiny_sam().train()
    if args.resume:
        sam.load_state_dict(torch.load(args.resume, map_location="cpu", weights_only=True))
    transform = ResizeLongestSide(sam.image_encoder.img_size)
    inputs = [torch.as_tensor(transform.apply_image(image)).permute(2, 0, 1).contiguous() for image, _ in pairs]
    targets = [[low_res_target(m, transform) for m in masks] for _, masks in pairs]
    optimizer = torch.optim.AdamW(sam.parameters(), lr=args.lr, weight_decay=0.01)
    print(f"{len(pairs)} training images, {sum(map(len, targets))} objects; torch threads {torch.get_num_threads()}",
          flush=True)
    deadline, step, recent = time.monotonic() + 60 * args.minutes, 0, []
    while time.monotonic() < deadline:
        k = int(rng.integers(len(pairs)))
        image, masks = pairs[k]
        chosen = rng.permutation(len(masks))[:args.objects]
        with torch.autocast("cpu", torch.bfloat16):
            embedding = sam.image_encoder(sam.preprocess(inputs[k][None].float()))
            target = torch.stack([targets[k][i] for i in chosen])[:, None]
            if rng.random() < 0.3:  # box prompts
                boxes = np.array([[*np.nonzero(masks[i].any(0))[0][[0, -1]], *np.nonzero(masks[i].any(1))[0][[0, -1]]]
                                  for i in chosen], float)[:, [0, 2, 1, 3]]
                prompts = {"boxes": torch.as_tensor(transform.apply_boxes(boxes, image.shape[:2])).float()}
            else:
                points = np.array([[random_point(masks[i], rng)] for i in chosen])
                prompts = {"points": (torch.as_tensor(transform.apply_coords(points, image.shape[:2])).float(),
                                      torch.ones(len(chosen), 1, dtype=torch.int))}
            loss, logits, iou = _decode_loss(sam, embedding, target, multimask=True, **prompts)
            if "points" in prompts and rng.random() < 0.5:  # a second round: corrective click + mask input
                second_points, second_labels = [], []
                for row, i in enumerate(chosen):
                    pred = F.interpolate(logits[row:row + 1].detach().float(), (LOW * 4, LOW * 4), mode="bilinear")
                    error = masks[i] ^ (_crop(pred[0, 0], transform, image.shape[:2]) > 0)
                    if error.any():  # positive on a missed object pixel, negative on a false one
                        x, y = random_point(error, rng)
                        second_points.append((x, y))
                        second_labels.append(int(masks[i][int(y), int(x)]))
                    else:  # nothing to correct: the first click again
                        second_points.append(tuple(points[row, 0]))
                        second_labels.append(1)
                coords = np.concatenate([points, np.array(second_points)[:, None]], 1)
                labels = torch.tensor([[1, label] for label in second_labels], dtype=torch.int)
                second, logits, iou = _decode_loss(
                    sam, embedding, target, multimask=False, mask_input=logits.detach(),
                    points=(torch.as_tensor(transform.apply_coords(coords, image.shape[:2])).float(), labels))
                loss = loss + second
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        recent.append((float(loss.detach()), float(soft_iou(logits.float(), target).mean())))
        if step % 25 == 0:
            window = np.array(recent[-25:])
            print(f"step {step}: loss {window[:, 0].mean():.3f}, train mIoU {window[:, 1].mean():.3f}", flush=True)
    out = Path(args.out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sam.state_dict(), out)
    print(f"saved {out} (official segment_anything layout; --model sam --checkpoint {out})")
    print(f"proxy trained: {step} steps, train mIoU {np.mean([r[1] for r in recent[-50:]]):.2f}x")


def _decode_loss(sam, embedding: torch.Tensor, target: torch.Tensor, multimask: bool,
                 mask_input: torch.Tensor | None = None, **prompts) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss of the best of the returned masks (SAM's multimask rule) plus the IoU head's error;
    returns it with that mask's logits (B, 1, 256, 256) and predicted IoU."""
    sparse, dense = sam.prompt_encoder(points=prompts.get("points"), boxes=prompts.get("boxes"), masks=mask_input)
    logits, predicted = sam.mask_decoder(embedding, sam.prompt_encoder.get_dense_pe(), sparse, dense, multimask)
    logits = logits.float()
    losses = mask_loss(logits, target.expand_as(logits))
    best = losses.argmin(1)
    rows = torch.arange(len(best))
    iou_error = F.mse_loss(predicted.float(), soft_iou(logits.detach(), target.expand_as(logits)).float())
    return losses[rows, best].mean() + iou_error, logits[rows, best][:, None], predicted[rows, best]


def _crop(low_res_1024: torch.Tensor, transform: ResizeLongestSide, size: tuple[int, int]) -> np.ndarray:
    """Logits in the padded 1024 frame -> the original image's frame."""
    h, w = transform.get_preprocess_shape(*size, LOW * 4)
    return F.interpolate(low_res_1024[None, None, :h, :w], size, mode="bilinear")[0, 0].numpy()


if __name__ == "__main__":
    main()
