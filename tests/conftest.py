"""Shared fixtures: the real data samples beside the checkout, tiny models, synthetic data."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    # 2-core CI machine: one intra-op thread keeps timing-insensitive tests predictable.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real third-party samples); tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data samples not found at {SHARED_DATA} (../shared/data beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def grabcut_root(shared_data: Path) -> Path:
    return shared_data / "grabcut"


#: Three GrabCut images, copied by `grabcut_copy` for tests that change or damage files.
GRABCUT_THREE = ("106024", "124080", "153077")


@pytest.fixture
def grabcut_copy(grabcut_root: Path, tmp_path: Path) -> Path:
    """GRABCUT_THREE's images and trimaps copied into a temporary GrabCut layout."""
    import shutil

    root = tmp_path / "grabcut"
    for sub in ("data_GT", "boundary_GT"):
        (root / sub).mkdir(parents=True)
    for name in GRABCUT_THREE:
        shutil.copy(grabcut_root / "data_GT" / f"{name}.jpg", root / "data_GT")
        shutil.copy(grabcut_root / "boundary_GT" / f"{name}.bmp", root / "boundary_GT")
    return root


@pytest.fixture(scope="session")
def bsds_root(shared_data: Path) -> Path:
    return shared_data / "bsds500"


@pytest.fixture(scope="session")
def tiny_model():
    from sam_bench.models.sam import build_tiny_model

    return build_tiny_model(device=torch.device("cpu"))


@pytest.fixture(scope="session")
def synthetic_roots(tmp_path_factory) -> dict[str, Path]:
    """The demo's synthetic dataset: {'demo': COCO/LVIS root, 'demo_bsds': BSDS root}."""
    from sam_bench.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("synthetic"), n_images=4, seed=0)


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """A small random SAM saved exactly like the official .pth files (a plain state dict)."""
    from sam_bench.core.checkpoint import SamArchitecture, build_sam

    torch.manual_seed(1)
    arch = SamArchitecture(encoder_embed_dim=48, encoder_depth=3, encoder_num_heads=3,
                           encoder_global_attn_indexes=(2,), encoder_mlp_ratio=4.0, window_size=14,
                           image_size=1024, decoder_depth=2, decoder_mlp_dim=2048)
    path = tmp_path_factory.mktemp("ckpt") / "sam_small_random.pth"
    torch.save(build_sam(arch).state_dict(), path)
    return path
