"""The torch click rule and boundary IoU (used when masks live on a GPU) equal the numpy/cv2 ones
exactly: farthest pixel (ties included), next click, boundary regions and boundary IoU, and whole
point / miou sessions with the device path forced on the CPU (the same torch code runs on CUDA)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import sam_bench.metrics.boundary as boundary
import sam_bench.prompts.clicks as clicks
import sam_bench.tasks.miou.session as miou_session
import sam_bench.tasks.point.task as point_task
from sam_bench.metrics.boundary import boundary_iou, boundary_width, mask_boundary
from sam_bench.prompts.clicks import farthest_pixel, next_click, on_device


def blob(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.normal(size=(h, w)), (0, 0), float(rng.uniform(0.5, 4)))
    return noise > rng.uniform(-0.3, 0.6) * noise.std()


def shapes(rng: np.random.Generator, h: int, w: int) -> dict[str, np.ndarray]:
    """Hand-picked hard cases on an (h, w) image: border contact, thin, tiny, empty, symmetric ties."""
    yy, xx = np.mgrid[:h, :w]
    out = {"blob": blob(rng, h, w), "speckle": rng.random((h, w)) < 0.7, "empty": np.zeros((h, w), bool),
           "full": np.ones((h, w), bool), "dot": (yy == h // 2) & (xx == w // 3),
           "row": yy == h // 2, "column": xx == w - 1, "diagonal": yy == xx, "corner": (yy < h // 2) & (xx < w // 2),
           "ring": ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 <= (min(h, w) / 2.5) ** 2)
           & ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 > (min(h, w) / 6) ** 2)}
    y0, x0 = int(rng.integers(h)), int(rng.integers(w))
    y1, x1 = y0 + int(rng.integers(1, h + 1)), x0 + int(rng.integers(1, w + 1))
    out["rectangle"] = (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)
    side = min(h, w) - 2
    out["square"] = (yy >= 1) & (yy < 1 + side) & (xx >= 1) & (xx < 1 + side)  # symmetric: 4-fold ties
    return out


def test_on_device_is_false_for_cpu_tensors():
    assert not on_device(torch.zeros(2, 2))


def test_torch_farthest_pixel_equals_numpy_exactly():
    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(1, 48, size=2))
        for name, mask in shapes(rng, h, w).items():
            clicked = [(int(rng.integers(w)), int(rng.integers(h))) for _ in range(int(rng.integers(0, 4)))]
            if mask.any() and rng.random() < 0.5:  # click the current answer: the next tie must win
                _, y, x = farthest_pixel(mask)
                clicked.append((x, y))
            want = farthest_pixel(mask, clicked)
            assert farthest_pixel(torch.from_numpy(mask), clicked) == want, (trial, name, h, w)


def test_torch_farthest_pixel_chunked_and_int64_paths(monkeypatch):
    rng = np.random.default_rng(1)
    monkeypatch.setattr(clicks, "_CHUNK_BYTES", 1)  # one row per chunk
    for _ in range(10):
        mask = blob(rng, 30, 41)
        assert farthest_pixel(torch.from_numpy(mask)) == farthest_pixel(mask)
    line = np.zeros((3, 33000), bool)  # a box wider than 2^15 px: int64 arithmetic
    line[1, 5:32990] = True
    line[0, 100:200] = True
    monkeypatch.setattr(clicks, "_CHUNK_BYTES", 64 << 20)
    assert farthest_pixel(torch.from_numpy(line)) == farthest_pixel(line)


def test_torch_next_click_equals_numpy():
    rng = np.random.default_rng(2)
    for _ in range(80):
        h, w = (int(v) for v in rng.integers(2, 40, size=2))
        gt, pred = blob(rng, h, w), blob(rng, h, w)
        if rng.random() < 0.3:  # a prediction close to the ground truth: thin error regions
            pred = cv2.dilate(gt.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        ignore = rng.random((h, w)) < 0.1 if rng.random() < 0.5 else None
        clicked = [(int(rng.integers(w)), int(rng.integers(h))) for _ in range(3)]
        t = torch.from_numpy
        for p in (pred, None):
            want = next_click(gt, p, ignore, clicked)
            got = next_click(t(gt), None if p is None else t(p), None if ignore is None else t(ignore), clicked)
            assert got == want


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (37, 52), (120, 90)])
def test_torch_boundary_equals_cv2(shape):
    rng = np.random.default_rng(3)
    h, w = shape
    masks = list(shapes(rng, h, w).values()) + [blob(rng, h, w) for _ in range(4)]
    for d in {1, 2, boundary_width(h, w), 9}:
        for mask in masks:
            got = mask_boundary(torch.from_numpy(mask), d)
            assert got.dtype == torch.bool and np.array_equal(got.numpy(), mask_boundary(mask, d))
    for gt in masks:
        for pred in masks[::3]:
            want = boundary_iou(gt, pred)
            assert boundary_iou(torch.from_numpy(gt), torch.from_numpy(pred)) == want
            gtb = mask_boundary(torch.from_numpy(gt), boundary_width(h, w))
            assert boundary_iou(torch.from_numpy(gt), torch.from_numpy(pred), gt_boundary=gtb) == want


def _both_paths(monkeypatch, module, run):
    """run() on the numpy path and on the torch path forced on the CPU (checked to be taken)."""
    numpy_result = run()
    calls: list[str] = []

    def spy(owner, name):
        real = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *args: calls.append(name) or real(*args))

    spy(clicks, "_farthest_pixel_torch")
    spy(boundary, "_mask_boundary_torch")
    monkeypatch.setattr(module, "on_device", lambda tensor: True)
    device_result = run()
    assert {"_farthest_pixel_torch", "_mask_boundary_torch"} <= set(calls)
    return numpy_result, device_result


def _synthetic(h: int = 96, w: int = 128):
    from sam_bench.data.synthetic import make_image

    synth = make_image(np.random.default_rng(3), h, w)
    ignore = np.zeros((h, w), bool)
    ignore[:, 60:63] = True  # a void band across the objects
    return synth.image, [synth.masks[k] for k in (0, 1, 3)], ignore


def test_point_session_device_path_equals_numpy_on_synthetic(tiny_model, monkeypatch):
    image, gts, ignore = _synthetic()
    embedding = tiny_model.encode(image)
    for void in (None, ignore):
        ours, dev = _both_paths(monkeypatch, point_task,
                                lambda: point_task.interactive_session(tiny_model, embedding, gts, void, max_clicks=4))
        monkeypatch.undo()
        assert [len(t.clicks) for t in ours] == [4, 4, 4]
        assert dev == ours  # clicks, IoUs, predicted IoUs, oracle and boundary IoUs


def test_point_session_device_path_equals_numpy_on_grabcut(tiny_model, grabcut_root, monkeypatch):
    from sam_bench.data.registry import open_dataset

    sample = open_dataset("grabcut", str(grabcut_root), limit=1).get(0)
    embedding = tiny_model.encode(sample.load_image())
    gts = [o.mask for o in sample.objects]
    ours, dev = _both_paths(monkeypatch, point_task,
                            lambda: point_task.interactive_session(tiny_model, embedding, gts, sample.ignore,
                                                                   max_clicks=3))
    assert len(ours[0].clicks) == 3 and dev == ours


def test_miou_session_device_path_equals_numpy(tiny_model, monkeypatch):
    image, gts, ignore = _synthetic()
    embedding = tiny_model.encode(image)
    boxes = np.array([[np.nonzero(g)[1].min(), np.nonzero(g)[0].min(), np.nonzero(g)[1].max() + 1,
                       np.nonzero(g)[0].max() + 1] for g in gts], float)
    ours, dev = _both_paths(monkeypatch, miou_session,
                            lambda: miou_session.prompted_session(tiny_model, embedding, gts, boxes, ignore,
                                                                  "box+center", clicks=3))
    assert [len(r.ious) for r in ours] == [3, 3, 3] and dev == ours
