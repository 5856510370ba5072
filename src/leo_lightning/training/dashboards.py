"""Pictures for TensorBoard: one validation episode drawn with the model's predictions.

Why: validation accuracy says how often the model is right, not on what. Drawing the same fixed
validation episode at every validation (one row per class: its support images, then that class's
queries framed green when predicted correctly and red when not, with "p<predicted> t<true>" under
each) shows which classes get confused and how the predictions settle as training goes on.

The drawing lives here, apart from the LightningModule, so that it can be tested without a
Trainer. Everything is composed into one pixel canvas and drawn on a single matplotlib axes
(rather than one axes per image: hundreds of them for a 20-way 5-shot episode), rendered with the
Agg canvas directly: pyplot and its global figure registry are never touched.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

GREEN = (0.10, 0.65, 0.15)
RED = (0.85, 0.10, 0.10)
NEUTRAL = (0.55, 0.55, 0.55)  # the frame of support images
BACKGROUND = (1.0, 1.0, 1.0)
INCHES_PER_CELL = 0.8  # on-screen size of one image, whatever its pixel size (28 px or 84 px)
DPI = 100


@dataclass(frozen=True)
class Panel:
    """One image of the grid: where it sits and what it shows."""

    kind: str  # "support" or "query"
    row: int  # the class of the row (its label)
    column: int  # 0.. over the images of the row, the support images first
    top: int  # pixel box of the framed cell in the canvas
    left: int
    height: int
    width: int
    label: int  # the true label
    predicted: int | None = None  # queries only

    @property
    def correct(self) -> bool | None:
        return None if self.predicted is None else self.predicted == self.label

    @property
    def caption(self) -> str:
        return "" if self.predicted is None else f"p{self.predicted} t{self.label}"


def drawable(example_shape: tuple[int, ...]) -> bool:
    """Only images ([C, H, W] with 1 or 3 channels) are drawn; feature vectors are not."""
    return len(example_shape) == 3 and example_shape[0] in (1, 3)


def to_display(images: Tensor) -> np.ndarray:
    """[M, C, H, W] uint8 or normalised float -> [M, H, W, 3] in [0, 1], each image rescaled
    to its own minimum and maximum (a constant image becomes black)."""
    x = images.detach().float().cpu()
    low = x.amin(dim=(1, 2, 3), keepdim=True)
    span = x.amax(dim=(1, 2, 3), keepdim=True) - low
    x = torch.where(span > 0, (x - low) / span.clamp_min(1e-12), torch.zeros_like(x))
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).numpy()


def episode_canvas(
    support_x: Tensor,
    support_y: Tensor,
    query_x: Tensor,
    query_y: Tensor,
    predicted: Tensor,
    max_queries: int = 8,
) -> tuple[np.ndarray, list[Panel]]:
    """One task (no batch dimension) -> an RGB canvas [H, W, 3] in [0, 1] and its panels.

    Row n holds the support images of class n, a gap, then at most `max_queries` of the queries
    whose true class is n. Every image gets a frame: grey for support, green for a correct
    prediction, red for a wrong one. Below each row a blank strip leaves room for captions.
    """
    support_y, query_y, predicted = (
        t.detach().cpu().long() for t in (support_y, query_y, predicted)
    )
    n_way = int(max(support_y.max(), query_y.max())) + 1
    support_img, query_img = to_display(support_x), to_display(query_x)
    h, w = support_img.shape[1:3]
    frame = max(1, round(min(h, w) / 14))  # 2 px at 28 px, 6 px at 84 px
    spacing = frame
    cell_h, cell_w = h + 2 * frame, w + 2 * frame
    caption_h = math.ceil(0.3 * cell_h)
    gap = cell_w // 2  # between the support block and the query block

    rows = []
    for n in range(n_way):
        supports = (support_y == n).nonzero().flatten().tolist()
        queries = (query_y == n).nonzero().flatten().tolist()[:max_queries]
        rows.append((supports, queries))
    k_max = max(len(s) for s, _ in rows)
    q_max = max(len(q) for _, q in rows)

    width = (k_max + q_max) * (cell_w + spacing) + spacing + (gap if q_max else 0)
    height = n_way * (cell_h + caption_h + spacing) + spacing
    canvas = np.empty((height, width, 3), dtype=np.float32)
    canvas[:] = BACKGROUND
    panels = []
    for n, (supports, queries) in enumerate(rows):
        top = spacing + n * (cell_h + caption_h + spacing)
        for column, index in enumerate(supports):
            left = spacing + column * (cell_w + spacing)
            _paste(canvas, support_img[index], top, left, frame, NEUTRAL)
            panels.append(Panel("support", n, column, top, left, cell_h, cell_w, n))
        for j, index in enumerate(queries):
            left = spacing + (k_max + j) * (cell_w + spacing) + gap
            guess = int(predicted[index])
            _paste(canvas, query_img[index], top, left, frame, GREEN if guess == n else RED)
            panels.append(Panel("query", n, k_max + j, top, left, cell_h, cell_w, n, guess))
    return canvas, panels


def _paste(canvas: np.ndarray, image: np.ndarray, top: int, left: int, frame: int, color) -> None:
    h, w = image.shape[:2]
    canvas[top : top + h + 2 * frame, left : left + w + 2 * frame] = color
    canvas[top + frame : top + frame + h, left + frame : left + frame + w] = image


class EpisodeFigure(Figure):
    """A matplotlib figure that shows itself in a notebook (Jupyter asks for `_repr_png_`) even
    when pyplot was never imported, which is what registers matplotlib's own display hook: a
    plain Figure then printed as `<Figure size 550x365 with 1 Axes>`."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


def episode_figure(
    support_x: Tensor,
    support_y: Tensor,
    query_x: Tensor,
    query_y: Tensor,
    predicted: Tensor,
    max_queries: int = 8,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
) -> EpisodeFigure:
    """The canvas of `episode_canvas` on one axes, with the rows' class names (`class_names`,
    indexed by label; "class <label>" without them), column headers and a
    "p<predicted> t<true>" caption under every query.

    The figure is sized per image cell (INCHES_PER_CELL), so captions stay legible whether
    the images are 28 px or 84 px.
    """
    canvas, panels = episode_canvas(support_x, support_y, query_x, query_y, predicted, max_queries)
    scale = INCHES_PER_CELL / panels[0].height  # inches per canvas pixel
    grid_w, grid_h = canvas.shape[1] * scale, canvas.shape[0] * scale
    left, right, bottom = 0.7, 0.1, 0.05
    top = 0.25 + (0.4 if title else 0.0)  # column headers, then the title above them
    fig_w = max(left + grid_w + right, 4.0)  # room for the title on narrow grids
    fig_h = bottom + grid_h + top
    fig = EpisodeFigure(figsize=(fig_w, fig_h), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((left / fig_w, bottom / fig_h, grid_w / fig_w, grid_h / fig_h))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_xticks([])
    centres = {p.row: p.top + p.height / 2 for p in panels}
    if class_names is not None and len(class_names) < len(centres):
        raise ValueError(
            f"class_names has {len(class_names)} names for an episode of {len(centres)} classes"
        )
    names = [f"class {n}" if class_names is None else str(class_names[n]) for n in centres]
    ax.set_yticks(list(centres.values()), names, fontsize=8)
    ax.tick_params(axis="y", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for kind, header in (("support", "support"), ("query", "queries of the row's class")):
        first = min((p for p in panels if p.kind == kind), key=lambda p: p.left, default=None)
        if first is not None:
            ax.text(first.left, -2, header, ha="left", va="bottom", fontsize=8)
    for panel in panels:
        if panel.kind == "query":
            ax.text(
                panel.left + panel.width / 2,
                panel.top + panel.height + 1,
                panel.caption,
                ha="center",
                va="top",
                fontsize=7,
                color=GREEN if panel.correct else RED,
            )
    if title:
        fig.text(left / fig_w, 1 - 0.05 / fig_h, title, ha="left", va="top", fontsize=9)
    return fig


def render(fig: Figure) -> np.ndarray:
    """A figure -> uint8 RGB pixels [H, W, 3] (for SummaryWriter.add_image, dataformats HWC)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def episode_title(
    name: str, support_y: Tensor, query_y: Tensor, predicted: Tensor, max_queries: int = 8
) -> str:
    """Two lines, e.g. "validation episode 0, step 300" / "5-way 1-shot: 13/15 queries
    correct"; the count is over all queries, also those beyond `max_queries` per class."""
    n_way = int(max(support_y.max(), query_y.max())) + 1
    k_shot, n_query = support_y.numel() // n_way, query_y.numel() // n_way
    correct = int((predicted.cpu() == query_y.cpu()).sum())
    shown = f" ({max_queries} per class shown)" if n_query > max_queries else ""
    return f"{name}\n{n_way}-way {k_shot}-shot: {correct}/{query_y.numel()} queries correct{shown}"


# The Custom Scalars tab: the curves a run is judged by, each chart several curves at once
# (TensorBoard's Scalars tab lists every tag alphabetically, one chart each). Tags are regexes.
LAYOUT = {
    "LEO": {
        "accuracy: train queries and validation": ["Multiline", ["train/query_acc", "val/acc"]],
        "meta-loss and its query term": ["Multiline", ["train/loss", "train/query_loss"]],
        "support loss after each step": ["Multiline", [r"train/support_loss/.*"]],
        "outer learning rate": ["Multiline", [r"train/lr.*"]],
        "skipped (non-finite) updates": ["Multiline", ["train/skipped_steps"]],
    }
}


def add_layout(writer) -> None:
    """Give a TensorBoard writer the Custom Scalars layout (once per run, at the start)."""
    writer.add_custom_scalars(LAYOUT)
