"""Published numbers for the report's reference rows: the SAM paper's and later SAM-family papers'."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

PAPER_JSON = Path(__file__).with_name("sam_paper.json")
PEERS_JSON = Path(__file__).with_name("peers.json")


@lru_cache(maxsize=1)
def paper() -> dict[str, Any]:
    return json.loads(PAPER_JSON.read_text())


@lru_cache(maxsize=1)
def peers() -> dict[str, Any]:
    """Numbers of later SAM-family papers (EfficientViT-SAM, the efficient-SAM survey, HQ-SAM)."""
    return json.loads(PEERS_JSON.read_text())


@lru_cache(maxsize=1)
def sa23_published() -> dict[str, Any]:
    """Published SA-23 means (SAM 2 Table 6 layout): columns, rows name -> six numbers, source."""
    return json.loads(PAPER_JSON.with_name("sa23.json").read_text())


@lru_cache(maxsize=1)
def saco() -> dict[str, Any]:
    """SA-Co Gold / Silver per-subset cgF1, IL_MCC, pmF1 of SAM 3 and its baselines; human and LVIS rows."""
    return json.loads(PAPER_JSON.with_name("saco.json").read_text())


@lru_cache(maxsize=1)
def vos_published() -> dict[str, Any]:
    """Published semi-supervised VOS J&F: rows (checkpoint -> source, values by '<dataset>/<split>')."""
    return json.loads(PAPER_JSON.with_name("vos.json").read_text())
