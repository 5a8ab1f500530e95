"""Click prompts for one object on one video frame (the `vos` task's `--prompt clicks`, reused by the
interactive video task): the image tasks' RITM rule (prompts/clicks.py) against the tracker's own mask.

Click 1: the object's pixel farthest from its boundary and the image border (distance-transform
maximum; ties to the first pixel in row-major order). Clicks 2..N: RITM's corrective click against
the mask the model returned for that object on that frame after the previous clicks (positive in
the larger false-negative region, else negative in the false-positive one). SAM 2's paper says "the
center of the object, then the centers of the error regions" without code: the rule is marked
[open] in docs/PROTOCOLS.md. It is deterministic, so no seed is involved.

`session` is any object with the VideoSession method `add_points` (models/video.py); this layer
sits below the models, so the type is not imported.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from .clicks import Click, next_click


def click_object(session: Any, frame: int, object_id: int, gt: np.ndarray, n_clicks: int,
                 pred: Optional[np.ndarray] = None, between: Optional[Callable[[], None]] = None) -> list[Click]:
    """Prompt `object_id` on `frame` with up to `n_clicks` clicks derived from `gt` ((H, W) bool);
    returns the clicks given (none for an empty mask; fewer when no error pixel is left).

    `pred`: the object's mask on that frame before the clicks (the interactive task's tracked mask;
    None: nothing yet, so click 1 is the center). `between`: called before each click after the
    first (the interactive task's optional re-propagation between clicks)."""
    clicks: list[Click] = []
    click = next_click(gt, pred)  # with pred None: the center click
    while click is not None:
        if clicks and between is not None:
            between()
        clicks.append(click)
        masks = session.add_points(frame, object_id, np.array([[click.x, click.y]], np.float32),
                                   np.array([int(click.positive)], np.int32), clear_old=len(clicks) == 1)
        if len(clicks) == n_clicks:
            break
        pred = masks.get(object_id)
        click = next_click(gt, pred, clicked=[(c.x, c.y) for c in clicks])
    return clicks
