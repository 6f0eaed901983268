"""The readoff task's figures, declared once each; the draw code is in :mod:`headshare.tasks.readoff.plots`."""

from __future__ import annotations

from headshare.figures.spec import FigureSpec, drawn_by

_PLOTS = "headshare.tasks.readoff.plots"

FIGURES = (
    FigureSpec(
        name="readoff_accuracy",
        task="readoff",
        title="Readoff task: held-out accuracy and head-order agreement, mean [min, max] over seeds",
        caption=(
            "Readoff task: held-out accuracy on the unordered signal pair (10 classes, chance 0.1) and, per "
            "layer, the Kendall tau between heads 0 and 1's signal-preference orders (-1 = fully inverted), "
            "over numbers of heads and head sizes, mean [min, max] over seeds, one file per number of layers."
        ),
        draw=drawn_by(_PLOTS, "readoff_accuracy"),
        facets=("n_heads", "d_head"),
        split=("n_layers",),
    ),
    FigureSpec(
        name="readoff_preference",
        task="readoff",
        title="Readoff task: attention from the readoff position to each signal token, per head "
        "(τ: Kendall tau between heads 0 and 1's preference orders per layer; −1 = inverted)",
        caption=(
            "Readoff task: mean attention from the readoff position to each signal token, per head, for every "
            "head size (columns) and seed (rows), one file per number of heads and layers; inverted orders "
            "between heads appear as mirrored bars."
        ),
        draw=drawn_by(_PLOTS, "readoff_preference"),
        facets=("d_head", "seed"),
        split=("n_layers", "n_heads"),
        summarised=(),
    ),
)
