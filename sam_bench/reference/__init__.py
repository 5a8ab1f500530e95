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


NOT_STATED = "checkpoint not stated"


def checkpoint(reference: dict[str, Any], block: str, row: str) -> str:
    """The exact checkpoint a published row's numbers belong to, as its source names it, else
    NOT_STATED. `reference` is paper() or peers(); their top-level 'checkpoints' map block -> row."""
    return reference.get("checkpoints", {}).get(block, {}).get(row, NOT_STATED)


def published_label(name: str, checkpoint_text: str, tag: str = "published") -> str:
    """A published row's label: the model, the checkpoint its numbers belong to, where it comes from."""
    return f"{name} ({checkpoint_text}) ({tag})"


def protocol_differences(stated: dict[str, Any], used: dict[str, Any]) -> list[str]:
    """The settings a source states (`stated`, e.g. first_click, refine) that a run's `used` ones do
    not match, as "name: run X, source Y"; free text ('text') is description, not a setting."""
    return [f"{name}: run {used.get(name)!r}, source {value!r}" for name, value in stated.items()
            if name != "text" and used.get(name) != value]
