"""Interactive views for the chapters. Each widget's work is a plain ``*_view`` function
that returns what it renders (a figure and numbers), so it is tested without a browser
and the static book can show the same figure for the default values."""

from __future__ import annotations


import matplotlib.pyplot as plt
import torch

from . import plots
from .metrics import evaluate_perturbation




def live() -> bool:
    """False in static builds (``$REPROLAB_STATIC=1``: the book, papermill in the tests).

    There a widget has no kernel to talk to, and an Output widget can stall nbclient;
    the chapters show the same view as a static figure next to each widget.
    """
    from .config import static_build

    return not static_build()


def _static_note():
    print("(interactive widget: run this notebook with a live kernel, e.g. in Colab; "
          "the figure below shows the default view)")


def _figure_output(draw):
    """An ``Output`` widget and a ``redraw(*_)`` that replaces what it shows with ``draw()``'s figure.

    Every explorer here is controls plus this pair: the controls call ``redraw``.
    """
    import ipywidgets as w
    from IPython.display import display

    out = w.Output()

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            fig = draw()
            display(fig)
            plt.close(fig)

    return out, redraw


def uap_scale_view(model, program, x: torch.Tensor, y: torch.Tensor, eps: float, n_show: int = 4):
    """A universal perturbation rescaled to bound ``eps``: its look, predictions, held-out metrics.

    Returns:
        ``(figure, metrics)``; ``metrics`` has ``eps``, ``fooling_rate``, ``error_rate``, ...
    """
    scaled = program.scaled(eps)
    device = model.device
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
    if not live():
        return _static_note()
    import ipywidgets as w

    slider = w.FloatSlider(value=program.eps * 255, min=1, max=max_eps * 255, step=1,
                           description="eps x 255", continuous_update=False)
    out, redraw = _figure_output(lambda: uap_scale_view(model, program, x, y, slider.value / 255)[0])
    slider.observe(redraw, names="value")
    redraw()
    return w.VBox([slider, out])


def reprogram_view(model, program, x: torch.Tensor, y: torch.Tensor, index: int, k: int = 5):
    """One held-out task image through the reprogrammed model: its input, top-k ImageNet classes.

    Returns:
        ``(figure, info)``; ``info`` has ``label``, ``prediction`` (mapped task class) and
        ``top`` (the top-k ``(ImageNet name, probability)`` pairs).
    """
    device = model.device
    with torch.no_grad():
        adv = program(x[index:index + 1].to(device))
        logits = model(adv)
        probs = logits.softmax(1)[0].cpu()
        pred = int(program.map_logits(logits).argmax(1))
    top = [(model.class_names[i], float(probs[i])) for i in probs.topk(k).indices.tolist()]
    mapped = {int(c): t for t, row in enumerate(program.label_map.tolist()) for c in row}
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(7.5, 3), gridspec_kw={"width_ratios": [1, 1.4]})
    a0.imshow(adv[0].permute(1, 2, 0).cpu().numpy())
    a0.set_title(f"label {int(y[index])}, predicted {pred}")
    a0.axis("off")
    names = [f"{n[:22]}{' -> ' + str(mapped[model.class_names.index(n)]) if model.class_names.index(n) in mapped else ''}"
             for n, _ in top]
    a1.barh(range(k)[::-1], [p for _, p in top], color=["C1" if "->" in n else "C0" for n in names])
    a1.set_yticks(range(k)[::-1], names, fontsize=8)
    a1.set_xlabel("ImageNet probability")
    a1.set_title("top ImageNet classes (orange: mapped)")
    fig.tight_layout()
    return fig, {"label": int(y[index]), "prediction": pred, "top": top}


def reprogram_explorer(model, program, x: torch.Tensor, y: torch.Tensor):
    """A slider over held-out task images that redraws :func:`reprogram_view`."""
    if not live():
        return _static_note()
    import ipywidgets as w

    slider = w.IntSlider(value=0, min=0, max=len(x) - 1, description="image", continuous_update=False)
    out, redraw = _figure_output(lambda: reprogram_view(model, program, x, y, slider.value)[0])
    slider.observe(redraw, names="value")
    redraw()
    return w.VBox([slider, out])


def datafree_view(model, prior: str, layers: list[str], x: torch.Tensor, y: torch.Tensor,
                  steps: int = 30, craft: torch.Tensor | None = None, eps: float = 10 / 255, n_show: int = 3):
    """Craft a data-free perturbation with ``prior`` on ``layers``, show it and its held-out metrics.

    ``craft`` supplies the images of the data prior. Returns ``(figure, metrics)``.
    """
    from .datafree import datafree_uap

    program, _ = datafree_uap(model, prior, craft if prior == "data" else None, eps, steps=steps,
                              layers=layers, progress=False)
    fig, out = uap_scale_view(model, program, x, y, eps, n_show)
    fig.suptitle(f"{prior} prior, {len(layers)} layers: held-out fooling rate {out['fooling_rate']:.1%}")
    return fig, {"prior": prior, "layers": len(layers), **out}


def datafree_explorer(model, x: torch.Tensor, y: torch.Tensor, craft: torch.Tensor, steps: int = 30):
    """Pick a prior and a range of blocks, press *craft*, see :func:`datafree_view`."""
    if not live():
        return _static_note()
    import ipywidgets as w

    blocks = model.block_layers()
    prior = w.ToggleButtons(options=["none", "range", "data"], description="prior")
    span = w.IntRangeSlider(value=[0, len(blocks) - 1], min=0, max=len(blocks) - 1, description="blocks")
    button = w.Button(description=f"craft ({steps} steps)")
    out, craft_now = _figure_output(
        lambda: datafree_view(model, prior.value, blocks[span.value[0]:span.value[1] + 1], x, y, steps, craft)[0])
    button.on_click(craft_now)
    return w.VBox([prior, span, button, out])


def gallery_view(model, program, target: int, x: torch.Tensor, n_show: int = 3, k: int = 5):
    """One gallery class: its change, and a few held-out images clean vs changed with top-k.

    ``program`` is the class's single perturbation. Returns ``(figure, info)``; ``info``
    has ``target_success`` on ``x`` and, per shown image, the clean and changed top-k names.
    """
    from .metrics import targeted_success

    device = model.device
    shown = x[:n_show].to(device)
    with torch.no_grad():
        changed = program(shown)
        clean, adv = model(shown).softmax(1).cpu(), model(changed).softmax(1).cpu()
    names = model.class_names
    tops = [{"clean": [names[i] for i in c.topk(k).indices], "changed": [names[i] for i in a.topk(k).indices]}
            for c, a in zip(clean, adv)]
    rate = targeted_success(model, program, x, [target])["target_success"]
    fig = plt.figure(figsize=(2.4 * (n_show + 2), 3.2))
    grid = fig.add_gridspec(1, n_show + 2)
    big = fig.add_subplot(grid[0, :2])
    big.imshow(plots.render_change(program.delta()[0]))
    big.set_title(f"{names[target][:30]} (#{target})\nchange x{0.5 / program.eps:.0f} | grey + change", fontsize=9)
    for i in range(n_show):
        ax = fig.add_subplot(grid[0, i + 2])
        ax.imshow(changed[i].permute(1, 2, 0).cpu().numpy())
        ax.set_title(f"{tops[i]['clean'][0][:16]}\n-> {tops[i]['changed'][0][:16]}", fontsize=8)
    for ax in fig.axes:
        ax.axis("off")
    fig.suptitle(f"held-out target success {rate:.1%} on {len(x)} photos", fontsize=10)
    fig.tight_layout()
    return fig, {"target": target, "target_success": rate, "top": tops}


def _searchable_tiles(entries: list[dict], picture, on_open, columns: int):
    """A class-name search box and a grid of up to 60 matching tiles (picture, name, success).

    ``entries`` are records with ``name`` (and ``target_success``); ``picture(i)`` gives
    entry ``i``'s image bytes; ``on_open(i)`` runs when a tile is clicked or a name chosen.
    """
    import ipywidgets as w

    names = [e["name"] for e in entries]
    search = w.Combobox(placeholder="class name", options=names, description="search")
    grid = w.GridBox(layout=w.Layout(grid_template_columns=f"repeat({columns}, 130px)"))

    def tile(i, e):
        button = w.Button(description=f"{e['name'][:14]} {e.get('target_success', 0):.0%}",
                          layout=w.Layout(width="124px"))
        button.on_click(lambda _: on_open(i))
        return w.VBox([w.Image(value=picture(i), width=120), button])

    def refresh(_=None):
        query = search.value.lower()
        grid.children = [tile(i, e) for i, e in enumerate(entries) if query in e["name"].lower()][:60]
        if search.value in names:
            on_open(names.index(search.value))

    search.observe(refresh, names="value")
    refresh()
    return search, grid


def gallery_browser(model, gallery_dir, x: torch.Tensor, columns: int = 6):
    """Search a gallery folder by class name, browse thumbnails, click one to see :func:`gallery_view`."""
    if not live():
        return _static_note()
    from pathlib import Path

    import ipywidgets as w

    from .gallery import load_gallery

    ids, programs, index = load_gallery(gallery_dir)
    entries = [index["classes"][str(c)] for c in ids]
    shown = {"i": 0}
    out, redraw = _figure_output(lambda: gallery_view(model, programs.select(shown["i"]), ids[shown["i"]], x)[0])

    def open_class(i):
        shown["i"] = i
        redraw()

    search, grid = _searchable_tiles(entries, lambda i: (Path(gallery_dir) / entries[i]["png"]).read_bytes(),
                                     open_class, columns)
    return w.VBox([search, grid, out])


def zoo_gallery_browser(name: str = "gallery-efficientnet_lite0", columns: int = 6):
    """Browse a zoo gallery kept as pictures (:func:`reprolab.zoo.pictures`) by class name; no model needed.

    A click (or a name chosen in the search box) shows the class's change full size with
    its held-out target success. In a static build it shows nothing and says so.
    """
    if not live():
        return _static_note()
    import ipywidgets as w

    from . import zoo

    files, info = zoo.pictures(name), zoo.info(name)
    entries, n = info["per_class"], info["metrics"]["n"]
    big, caption = w.Image(width=448), w.HTML()

    def open_class(i):
        e = entries[i]
        big.value = files[e["id"]].read_bytes()
        caption.value = (f"<b>{e['name']}</b> (#{e['id']}): held-out target success {e['target_success']:.1%} "
                         f"on {n} photos, mean target probability {e['target_prob']:.2f}")

    search, grid = _searchable_tiles(entries, lambda i: files[entries[i]["id"]].read_bytes(), open_class, columns)
    open_class(0)
    return w.VBox([search, w.HBox([big, caption]), grid])


def zoo_gallery(name: str = "gallery-efficientnet_lite0", static_root: str = "../_static/zoo"):
    """A zoo gallery as a page shows it: :func:`zoo_gallery_browser` where a kernel is live
    (Colab, Jupyter), else :func:`reprolab.plots.gallery_page` over the built book's copies.

    ``static_root``: where the built site serves the gallery folders, relative to the page
    (the book's ``_ext/zoo_pictures.py`` copies them to ``_static/zoo``).
    """
    if live():
        return zoo_gallery_browser(name)
    from . import plots, zoo
    from .models import imagenet_class_names

    entry = zoo.info(name)
    urls = {c: f"{static_root}/{name}/{f.name}" for c, f in zoo.pictures(name).items()}
    return plots.gallery_page(urls, imagenet_class_names(), entry["per_class"],
                              title=f"{entry['model']}: {entry['metrics']['classes']} of 1000 classes")


def glue(name: str, value, display: bool = False) -> None:
    """Record ``value`` for a chapter's prose (MyST-NB ``{glue:text}`name```).

    Outside a Jupyter Book build (Colab, a script) there is nothing to record into, so
    it does nothing.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return None
    myst_glue(name, value, display=display)
    return None  # not the value: a cell ending in glue(...) would display it
