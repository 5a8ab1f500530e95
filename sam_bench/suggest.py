"""Close matches for a mistyped name ("did you mean ...?"), for every lookup a user can get wrong."""
from __future__ import annotations

import difflib
from typing import Iterable


def close_matches(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names nearest to `name` (difflib's ratio, cutoff 0.6), best first."""
    return difflib.get_close_matches(name, sorted(set(known)), n=n, cutoff=0.6)


def did_you_mean(name: str, known: Iterable[str], prefix: str = "") -> str:
    """`; did you mean X?` (or `X or Y`) when a known name is close to `name`, else ``."""
    found = close_matches(name, known)
    if not found:
        return ""
    return "; did you mean " + " or ".join(f"{prefix}{m}" for m in found) + "?"


def unknown_name(kind: str, name: str, known: Iterable[str]) -> str:
    """`unknown model 'sam_vit_x'; did you mean sam_vit_h?; known: ...` (the hint only when one is close)."""
    known = sorted(set(known))
    return f"unknown {kind} '{name}'{did_you_mean(name, known)}; known: {', '.join(known) or '(none)'}"
