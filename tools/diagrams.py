"""Write the chapters' pipeline diagrams as small SVG files in _static/diagrams/.

Each chapter opens with one figure: what is learned (orange), what stays frozen (grey),
and what flows between them. The SVGs are plain text, committed, and remade with

    python tools/diagrams.py
"""

from __future__ import annotations

from html import escape
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "_static" / "diagrams"
STYLE = {  # fill, stroke
    "data": ("#e8f1fb", "#4a7bb7"),
    "learned": ("#fde7cf", "#d9822b"),
    "frozen": ("#e6e6e6", "#777777"),
    "output": ("#e5f4e3", "#4c9a45"),
}
BOX_W, BOX_H, GAP, PAD = 150, 74, 42, 16


def pipeline(boxes: list[tuple[str, str]], caption: str, loops_back: str | None = None) -> str:
    """A left-to-right chain of boxes ``(kind, "line 1|line 2")``; ``loops_back`` labels a gradient
    arrow from the last box back to the learned one."""
    width = PAD * 2 + len(boxes) * BOX_W + (len(boxes) - 1) * GAP
    height = PAD * 2 + BOX_H + 70
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" font-family="sans-serif" font-size="13" role="img" aria-label="{escape(caption)}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>']
    y = PAD
    for i, (kind, text) in enumerate(boxes):
        x = PAD + i * (BOX_W + GAP)
        fill, stroke = STYLE[kind]
        dash = ' stroke-dasharray="5,3"' if kind == "frozen" else ""
        parts.append(f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}" '
                     f'stroke="{stroke}" stroke-width="2"{dash}/>')
        lines = text.split("|")
        for j, line in enumerate(lines):
            ty = y + BOX_H / 2 + (j - (len(lines) - 1) / 2) * 16 + 4
            weight = ' font-weight="bold"' if j == 0 else ""
            parts.append(f'<text x="{x + BOX_W / 2}" y="{ty:.0f}" text-anchor="middle"{weight}>{escape(line)}</text>')
        if i:
            parts.append(f'<line x1="{x - GAP + 2}" y1="{y + BOX_H / 2}" x2="{x - 3}" y2="{y + BOX_H / 2}" '
                         'stroke="#444" stroke-width="2" marker-end="url(#arrow)"/>')
    if loops_back:
        learned = next(i for i, (k, _) in enumerate(boxes) if k == "learned")
        x0 = PAD + learned * (BOX_W + GAP) + BOX_W / 2
        x1 = PAD + (len(boxes) - 1) * (BOX_W + GAP) + BOX_W / 2
        yb = y + BOX_H + 22
        parts.append(f'<path d="M{x1},{y + BOX_H} L{x1},{yb} L{x0},{yb} L{x0},{y + BOX_H + 4}" fill="none" '
                     'stroke="#d9822b" stroke-width="2" stroke-dasharray="6,4" marker-end="url(#arrow)"/>')
        parts.append(f'<text x="{(x0 + x1) / 2}" y="{yb + 16}" text-anchor="middle" fill="#b5641a">'
                     f'{escape(loops_back)}</text>')
    legend = [("learned", "learned"), ("frozen", "frozen, never changed"), ("data", "data"), ("output", "output")]
    lx = PAD
    for kind, label in legend:
        fill, stroke = STYLE[kind]
        parts.append(f'<rect x="{lx}" y="{height - 20}" width="12" height="12" fill="{fill}" stroke="{stroke}"/>')
        parts.append(f'<text x="{lx + 17}" y="{height - 10}" font-size="11">{escape(label)}</text>')
        lx += 30 + 7 * len(label)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


DIAGRAMS = {
    "01_frozen_networks": pipeline(
        [("data", "photo|any size, [0, 1]"), ("frozen", "preprocessing|resize, crop, scale"),
         ("frozen", "classifier|weights frozen"), ("output", "1000 logits|softmax: p(class)")],
        "A frozen classifier: preprocessing lives inside the model, its weights never change"),
    "02_reprogramming": pipeline(
        [("data", "MNIST digit|28 x 28"), ("learned", "frame P = tanh(W M)|digit in its hole"),
         ("frozen", "ImageNet classifier|weights frozen"), ("learned", "label map|ImageNet class -> digit"),
         ("output", "10 digit scores|cross-entropy")],
        "Adversarial reprogramming: a learned frame and a label map turn an ImageNet classifier into a digit reader",
        loops_back="gradient: only W changes"),
    "03_universal_perturbations": pipeline(
        [("data", "every photo x|no labels needed"), ("learned", "one change v|+ v, |v| <= eps"),
         ("frozen", "classifier|weights frozen"), ("output", "prediction|changed? (fooling)")],
        "A universal perturbation: one change v, added to every photo, changes most predictions",
        loops_back="gradient: push the clean prediction down"),
    "04_data_free": pipeline(
        [("data", "prior|none, noise or photos"), ("learned", "change delta|+ delta, |delta| <= eps"),
         ("frozen", "classifier's layers|activations at each"), ("output", "sum of log|activation energies")],
        "GD-UAP: the change is crafted to make every layer's activations explode, with no label and no class",
        loops_back="gradient: maximise the energies"),
    "05_gallery": pipeline(
        [("data", "any photo|(crafting set)"), ("learned", "change|delta = eps tanh(w)"),
         ("frozen", "random views|flip, blur, crop"), ("frozen", "classifier|weights frozen"),
         ("output", "target class t|p(t) up")],
        "A targeted universal image: one change per class, seen through random views, sends any photo to the class",
        loops_back="gradient through the views"),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, svg in DIAGRAMS.items():
        (OUT / f"{name}.svg").write_text(svg)
        print(f"wrote {OUT / name}.svg")


if __name__ == "__main__":
    main()
