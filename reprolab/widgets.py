"""Interactive views for the chapters. Each widget's work is a plain ``*_view`` function
that returns what it renders (a figure and numbers), so it is tested without a browser
and the static book can show the same figure for the default values."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from . import plots
from .metrics import evaluate_perturbation


def uap_scale_view(model, program, x: torch.Tensor, y: torch.Tensor, eps: float, n_show: int = 4):
    """A universal perturbation rescaled to bound ``eps``: its look, predictions, held-out metrics.

    Returns:
        ``(figure, metrics)``; ``metrics`` has ``eps``, ``fooling_rate``, ``error_rate``, ...
    """
    scaled = program.scaled(eps)
    device = next(model.parameters()).device
    shown = x[:n_show].to(device)
    with torch.no_grad():
        adv = scaled(shown)
        clean_pred, adv_pred = model(shown).argmax(1).cpu(), model(adv).argmax(1).cpu()
    out = {"eps": eps, **evaluate_perturbation(model, scaled, x, y)}
    names = model.class_names
    titles = [f"delta, eps={eps * 255:.1f}/255"] + [
        f"{names[c][:14]}\n-> {names[a][:14]}" for c, a in zip(clean_pred, adv_pred)]
    fig = plots.show_images(torch.cat([plots.amplify(scaled.delta().cpu()), adv.cpu()]), titles,
                            ncols=n_show + 1, size=2.2,
                            suptitle=f"held-out fooling rate {out['fooling_rate']:.1%}")
    return fig, out


def uap_explorer(model, program, x: torch.Tensor, y: torch.Tensor, max_eps: float = 20 / 255):
    """A slider over the bound eps (in 0-255 units) that redraws :func:`uap_scale_view`."""
    import ipywidgets as w
    from IPython.display import display

    slider = w.FloatSlider(value=program.eps * 255, min=1, max=max_eps * 255, step=1,
                           description="eps x 255", continuous_update=False)
    out = w.Output()

    def redraw(change=None):
        with out:
            out.clear_output(wait=True)
            fig, _ = uap_scale_view(model, program, x, y, slider.value / 255)
            display(fig)
            plt.close(fig)

    slider.observe(redraw, names="value")
    redraw()
    return w.VBox([slider, out])
