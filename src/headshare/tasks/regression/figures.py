"""The regression task's figures, declared once each; the draw code is in :mod:`headshare.tasks.regression.plots`."""

from __future__ import annotations

from headshare.figures.spec import FigureSpec, drawn_by

FIGURES = (
    FigureSpec(
        name="regression_vs_gd",
        task="regression",
        title="In-context linear regression: trained attention vs one step of gradient descent",
        caption=(
            "In-context linear regression: evaluation loss, the cosine between the model's and one-step gradient "
            "descent's input gradients, and the distance between their predictions, per attention kind and "
            "model configuration (dots: seeds; bars: mean and min-max), against the one-step GD, least-squares "
            "and zero-predictor losses, one file per number of layers."
        ),
        draw=drawn_by("headshare.tasks.regression.plots", "regression_vs_gd"),
        facets=("attention", "n_heads", "d_head"),
        split=("n_layers",),
    ),
    FigureSpec(
        name="regression_generalisation",
        task="regression",
        title="In-context regression away from the training distribution: loss vs context length and input scale "
        "(lines: mean over seeds, bands: min-max)",
        caption=(
            "Models trained at N context examples with inputs x ~ U(-1/2, 1/2)^d, evaluated at other N (left, "
            "at the training scale) and at inputs scaled by alpha (right, at the training N), beside one step of "
            "gradient descent at the step size line-searched on the training distribution and least squares (the "
            "Bayes-optimal predictor, exact once N >= d); one row per attention kind, one file per number of "
            "layers, heads and head size. Grey lines mark the training distribution."
        ),
        draw=drawn_by("headshare.tasks.regression.plots", "regression_generalisation"),
        facets=("attention",),
        split=("n_layers", "n_heads", "d_head"),
    ),
)
