"""Plots people would rather look at than read: image grids, perturbations, training curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .gallery import read_index
from .render import amplify, change_picture, inline_pictures, render_change  # noqa: F401 (plots' API too)
from .train import History


def _to_hwc(img: torch.Tensor):
    img = img.detach().float().cpu()
    return img.squeeze(0).numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()


def show_images(images: torch.Tensor, titles: list[str] | None = None, ncols: int = 8,
                size: float = 1.8, suptitle: str | None = None):
    """A grid of ``(N, C, H, W)`` images in [0, 1], with optional titles. Returns the figure."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(_to_hwc(images[i]).clip(0, 1), cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_history(history: History, keys: list[str] | None = None, title: str | None = None):
    """One panel per logged metric against the step (means over the training batches
    since the previous log, not held-out numbers). Returns the figure."""
    keys = keys or list(history.metrics)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 2.8), squeeze=False)
    for ax, k in zip(axes.flat, keys):
        ax.plot(history.steps, history.metrics[k], marker=".")
        ax.set_xlabel("step")
        ax.set_ylabel(k.replace("_", " "))
        ax.set_title(k.replace("_", " "))
        ax.grid(alpha=0.3)
    fig.suptitle((title + " " if title else "") + "(training batches)")
    fig.tight_layout()
    return fig


def plot_confusion(pred: torch.Tensor, y: torch.Tensor, n: int, title: str = "confusion matrix"):
    """Row-normalised confusion matrix (rows: true class, columns: predicted). Returns the figure."""
    cm = torch.zeros(n, n)
    cm.index_put_((y.long(), pred.long()), torch.ones(len(y)), accumulate=True)
    cm = cm / cm.sum(1, keepdim=True).clamp_min(1)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    im = ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
    ax.set(xlabel="predicted", ylabel="true", title=title, xticks=range(n), yticks=range(n))
    for i in range(n):
        for j in range(n):
            if cm[i, j] >= 0.005:
                ax.text(j, i, f"{cm[i, j]:.2f}"[1:] if cm[i, j] < 1 else "1", ha="center", va="center",
                        fontsize=7, color="w" if cm[i, j] > 0.5 else "k")
    fig.colorbar(im)
    fig.tight_layout()
    return fig


def change_grid(program, ids: list[int], class_names: list[str], rates: list[float] | None = None,
                ncols: int = 3, size: float = 3.2):
    """Each perturbation of a multi-target ``program`` rendered as in a gallery, titled with its class."""
    ncols = min(ncols, len(ids))
    nrows = (len(ids) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * 2 * ncols / 1.6, size * nrows / 1.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    deltas = program.delta().detach()
    for k, (ax, c) in enumerate(zip(axes.flat, ids)):
        ax.imshow(render_change(deltas[k]))
        rate = f", success {rates[k]:.0%}" if rates is not None else ""
        ax.set_title(f"{class_names[c][:28]} (#{c}){rate}", fontsize=8)
    fig.tight_layout()
    return fig


def gallery_grid(gallery_dir, ids: list[int] | None = None, ncols: int = 3, size: float = 3.2):
    """The saved gallery images (change | grey + change) with class names and success. Returns the figure."""
    from pathlib import Path

    from PIL import Image

    index = read_index(gallery_dir)["classes"]
    ids = ids if ids is not None else sorted(int(c) for c in index)
    ncols = min(ncols, len(ids))
    nrows = (len(ids) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * 2 * ncols / 1.6, size * nrows / 1.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, c in zip(axes.flat, ids):
        e = index[str(c)]
        ax.imshow(Image.open(Path(gallery_dir) / e["png"]))
        rate = f", success {e['target_success']:.0%}" if "target_success" in e else ""
        ax.set_title(f"{e['name'][:28]} (#{c}){rate}", fontsize=8)
    fig.tight_layout()
    return fig


def picture_grid(pictures: dict, ids: list[int], class_names: list[str], rates: dict | None = None,
                 photos: dict | None = None, ncols: int = 6, size: float = 2.2):
    """Gallery pictures (files, e.g. :func:`reprolab.zoo.pictures`) titled with class and success.

    ``photos``: class id -> an image tensor ``(3, H, W)`` shown right after that class's
    picture (a photo of the class, to check a reading of the picture against).
    """
    from PIL import Image

    panels = []
    for c in ids:
        rate = f" {rates[c]:.0%}" if rates and c in rates else ""
        panels.append((Image.open(pictures[c]), f"{class_names[c][:20]} (#{c}){rate}"))
        if photos and c in photos:
            panels.append((photos[c].permute(1, 2, 0).cpu().numpy(), f"a photo of {class_names[c][:16]}"))
    ncols = min(ncols, len(panels))
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, title) in zip(axes.flat, panels):
        ax.imshow(image)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def compare_pictures(galleries: dict[str, dict], ids: list[int], class_names: list[str],
                     rates: dict[str, dict] | None = None, ncols: int = 6, size: float = 2.2):
    """The same classes in several galleries: a row per gallery under each block of ``ncols`` classes.

    Args:
        galleries: label (e.g. the model) -> class id -> picture file (:func:`reprolab.zoo.pictures`).
        ids: the classes to show; each must be in every gallery.
        rates: label -> class id -> held-out target success, shown in the titles.
    """
    from PIL import Image

    missing = {label: [c for c in ids if c not in pics] for label, pics in galleries.items()}
    missing = {label: cs for label, cs in missing.items() if cs}
    if missing:
        raise ValueError(f"classes missing from a gallery: {missing}; pass ids that every gallery holds")
    blocks = [ids[i:i + ncols] for i in range(0, len(ids), ncols)]
    nrows, ncols = len(blocks) * len(galleries), min(ncols, len(ids))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.15) * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for b, block in enumerate(blocks):
        for g, (label, pics) in enumerate(galleries.items()):
            for ax, c in zip(axes[b * len(galleries) + g], block):
                ax.imshow(Image.open(pics[c]))
                rate = f" {rates[label][c]:.0%}" if rates and c in rates.get(label, {}) else ""
                ax.set_title(f"{class_names[c][:18]}, {label}{rate}", fontsize=7)
    fig.tight_layout()
    return fig


def plot_layer_growth(history: History, layers: list[str], baseline=None, title: str | None = None):
    """Per-layer log activation energy over optimisation (minus ``baseline``, e.g. the clean value)."""
    import numpy as np

    curves = np.array([history.metrics[f"log_act.{n}"] for n in layers])  # (layers, logs)
    if baseline is not None:
        curves = curves - np.asarray(baseline, dtype=float)[:, None]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    colours = plt.cm.viridis(np.linspace(0, 1, len(layers)))
    for name, curve, colour in zip(layers, curves, colours):
        ax.plot(history.steps, curve, color=colour, label=name)
    ax.set(xlabel="step", ylabel="log energy" + (" - clean (nats)" if baseline is not None else " (nats)"),
           title=title or "activation growth per layer")
    # the layer order is the legend: a colour bar from the first to the last layer
    bar = fig.colorbar(plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(1, len(layers))), ax=ax)
    bar.set_label("layer (1 = first)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_transfer(rows: list[str], cols: list[str], matrix, title: str = "held-out fooling rate",
                  ylabel: str = "crafted on"):
    """A transfer matrix (rows: source model, columns: target model) as an annotated heat map."""
    short = lambda names: [n.replace("efficientnet_", "") for n in names]  # noqa: E731
    fig, ax = plt.subplots(figsize=(2.4 + 1.0 * len(cols), 1.4 + 0.45 * len(rows)))
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    # names like mobilenet_v2 are wider than a column: slanted, they do not run into each other
    ax.set_xticks(range(len(cols)), short(cols), rotation=30, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(rows)), short(rows))
    ax.set(xlabel="evaluated on", ylabel=ylabel, title=title)
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = float(matrix[i][j])
            ax.text(j, i, f"{v:.0%}", ha="center", va="center", color="w" if v < 0.6 else "k")
    fig.colorbar(im)
    fig.tight_layout()
    return fig


class GalleryPage:
    """A gallery as one self-contained HTML page: a card per class, searchable, filterable, sortable.

    Shown inline by Jupyter (and Colab), or written to a file with :meth:`save`. Each card
    holds the class's change (amplified to the full range), its name, id, group and held-out
    target success; a click shows it full size.
    """

    def __init__(self, html: str, n_cards: int):
        self.html, self.n_cards = html, n_cards

    def _repr_html_(self) -> str:
        return self.html

    def save(self, path) -> None:
        from pathlib import Path

        from .artifacts import atomic_write

        page = f"<!doctype html><meta charset='utf-8'><title>reprolab gallery</title>{self.html}"
        atomic_write(Path(path), lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))


_GALLERY_CSS = """
#{id} .rl-controls {{display:flex; flex-wrap:wrap; gap:.5em; margin:.5em 0 1em}}
#{id} .rl-controls input, #{id} .rl-controls select {{font:inherit; padding:.2em .4em}}
#{id} .rl-cards {{display:grid; grid-template-columns:repeat(auto-fill, minmax(220px, 1fr)); gap:.8em}}
#{id} figure {{margin:0; border:1px solid #ddd; border-radius:6px; padding:.4em; background:#fafafa}}
#{id} figure img {{width:100%; cursor:zoom-in; display:block}}
#{id} figcaption {{font-size:.85em; line-height:1.3; margin-top:.3em}}
#{id} .rl-full {{position:fixed; inset:0; background:rgba(0,0,0,.85); display:none; align-items:center;
  justify-content:center; z-index:1000; cursor:zoom-out}}
#{id} .rl-full img {{max-width:95vw; max-height:90vh; image-rendering:pixelated}}
"""

_GALLERY_JS = """
(function() {{
  const root = document.getElementById("{id}");
  const cards = Array.from(root.querySelectorAll("figure"));
  const box = root.querySelector(".rl-cards"), count = root.querySelector(".rl-count");
  const search = root.querySelector(".rl-search"), group = root.querySelector(".rl-group");
  const sort = root.querySelector(".rl-sort"), full = root.querySelector(".rl-full");
  function update() {{
    const q = search.value.trim().toLowerCase(), g = group.value;
    const key = {{id: c => +c.dataset.id, name: c => c.dataset.name, best: c => -c.dataset.success,
                 worst: c => +c.dataset.success}}[sort.value];
    cards.sort((a, b) => key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0).forEach(c => box.appendChild(c));
    let shown = 0;
    for (const c of cards) {{
      const ok = (!q || c.dataset.name.includes(q) || c.dataset.id === q) && (!g || c.dataset.group === g);
      c.style.display = ok ? "" : "none"; shown += ok;
    }}
    count.textContent = shown + " of " + cards.length + " classes shown";
  }}
  [search, group, sort].forEach(e => ["input", "change"].forEach(t => e.addEventListener(t, update)));
  root.addEventListener("click", e => {{
    if (e.target.matches("figure img")) {{  // the full-size image exists only while shown
      const big = document.createElement("img");
      big.src = e.target.src; big.alt = e.target.alt; full.replaceChildren(big); full.style.display = "flex";
    }}
    else if (full.contains(e.target)) {{ full.style.display = "none"; }}
  }});
  update();
}})();
"""


def gallery_page(pictures: dict[int, str], class_names: list[str], per_class: list[dict] | None = None,
                 title: str = "") -> GalleryPage:
    """An HTML gallery: a card per class with its picture, name, id, group and held-out success.

    Args:
        pictures: class id -> the ``src`` of its picture: a URL or file path relative to the
            page (a zoo gallery's files, :func:`reprolab.zoo.pictures`), or inline ``data:``
            URIs (:func:`inline_pictures`), which make the page one self-contained file.
        per_class: the held-out ``target_success`` of each class (records with an ``id``),
            as ``reprolab evaluate --json`` and the zoo's manifest hold them.
    """
    import html
    import uuid

    from .models import IMAGENET_GROUPS, imagenet_group

    rates = {int(r["id"]): r for r in per_class or []}
    figures = []
    for c, src in pictures.items():
        name = class_names[c]
        group = imagenet_group(c) if len(class_names) == 1000 else "all"
        r = rates.get(int(c), {})
        success = r.get("target_success", float("nan"))
        rate = f"held-out success {success:.1%}" if r else "not measured"
        figures.append(f'<figure data-id="{c}" data-name="{html.escape(name.lower())}" data-group="{group}" '
                       f'data-success="{success if r else -1}"><img src="{html.escape(src)}" '
                       f'alt="{html.escape(name)}"><figcaption><b>{html.escape(name)}</b> (#{c}, {group})<br>'
                       f'{rate}</figcaption></figure>')
    groups = sorted({g for _, _, g in IMAGENET_GROUPS}) if len(class_names) == 1000 else []
    uid = f"rl-gallery-{uuid.uuid4().hex[:8]}"
    options = "".join(f'<option value="{g}">{g}</option>' for g in groups)
    page = (f'<div id="{uid}" class="rl-gallery"><style>{_GALLERY_CSS.format(id=uid)}</style>'
            + (f"<p><b>{html.escape(title)}</b></p>" if title else "")
            + '<div class="rl-controls"><input class="rl-search" type="search" placeholder="search a class name or id" '
            f'aria-label="search"><select class="rl-group" aria-label="group"><option value="">all groups</option>'
            f'{options}</select><select class="rl-sort" aria-label="sort"><option value="id">by class id</option>'
            '<option value="name">by name</option><option value="best">most successful first</option>'
            '<option value="worst">least successful first</option></select><span class="rl-count"></span></div>'
            f'<div class="rl-cards">{"".join(figures)}</div><div class="rl-full"></div>'
            f"<script>{_GALLERY_JS.format(id=uid)}</script></div>")
    return GalleryPage(page, len(figures))

