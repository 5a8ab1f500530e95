"""Close matches for a mistyped name ("did you mean ...?"), for every lookup a user can get wrong."""
from __future__ import annotations

import difflib
from typing import Iterable


def close_matches(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names nearest to `name` (difflib's ratio, cutoff 0.6), best first."""
    return difflib.get_close_matches(name, sorted(set(known)), n=n, cutoff=0.6)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`; did you mean X?` with the closest known name, when one is close to `name`, else ``."""
    found = close_matches(name, known, n=1)
    return f"; did you mean {found[0]}?" if found else ""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> str:
    """`unknown model 'felzenzwalb'; did you mean felzenszwalb? (known: ...)`, or with no close
    match `unknown model 'x'; known: ...`."""
    known = sorted(set(known))
    listing = ", ".join(known) or "(none)"
    hint = did_you_mean(name, known)
    return f"unknown {kind} '{name}'{hint} (known: {listing})" if hint else f"unknown {kind} '{name}'; known: {listing}"
