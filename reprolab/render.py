"""A change rendered for people to look at: amplified, beside grey, as a picture file.

No matplotlib here (``reprolab.gallery`` writes its pictures with these); the figures
that show them live in :mod:`reprolab.plots`, which re-exports these functions.
"""

from __future__ import annotations

import torch


def amplify(delta: torch.Tensor) -> torch.Tensor:
    """Map a perturbation to [0, 1] for display: 0.5 is no change, extremes are +-max|delta|."""
    return (0.5 + 0.5 * delta / delta.abs().max().clamp_min(1e-12)).clamp(0, 1)


def render_change(delta: torch.Tensor):
    """A class's change for viewing, as a PIL image: amplified change (left) and grey + change (right)."""
    import numpy as np
    from PIL import Image

    d = delta.detach().float().cpu()[None] if delta.ndim == 3 else delta.detach().float().cpu()
    panels = torch.cat([amplify(d)[0], (0.5 + d[0]).clamp(0, 1)], dim=2)  # side by side
    return Image.fromarray((panels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def change_picture(delta: torch.Tensor, quality: int = 60) -> bytes:
    """A change amplified to the full range (:func:`amplify`) as JPEG bytes: a gallery's picture of a class.

    Quality 60 keeps a 224 px change near 24 KB (the zoo gallery's mean), so 1,000 classes fit in 30 MB.
    """
    import io

    import numpy as np
    from PIL import Image

    d = delta.detach().float().cpu()
    d = d[None] if d.ndim == 3 else d
    pixels = (amplify(d)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def inline_pictures(program, targets: list[int], quality: int = 60) -> dict[int, str]:
    """Class id -> its change (``program.delta()[k]`` for ``targets[k]``) as an inline ``data:`` URI."""
    import base64

    deltas = program.delta().detach()
    return {int(c): "data:image/jpeg;base64," + base64.b64encode(change_picture(deltas[k], quality)).decode()
            for k, c in enumerate(targets)}
