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
            "model (architecture, layers, heads; dots: seeds; bars: mean and min-max), against the one-step GD, "
            "least-squares and zero-predictor losses. Deeper models are compared with K steps of GD in "
            "regression_depth."
        ),
        draw=drawn_by("headshare.tasks.regression.plots", "regression_vs_gd"),
        facets=("attention", "architecture", "n_layers", "n_heads", "d_head"),
    ),
    FigureSpec(
        name="regression_depth",
        task="regression",
        title="In-context regression with depth: K layers against K steps of gradient descent and of GD++ "
        "(lines: mean over seeds, bands: min-max)",
        caption=(
            "Models with K = n_layers layers (stacked, or one layer applied K times: recurrent) against K steps of "
            "gradient descent and of GD++ (von Oswald et al.: before each step the inputs are transformed as x <- "
            "(I - gamma S) x), step sizes and gammas line-searched on the evaluation set: loss, the cosine between "
            "the model's and each reference's input gradients, and the share of the gap from one-step GD to least "
            "squares that each closes. One-layer models (K = 1, where both references are one step of GD) are "
            "points."
        ),
        draw=drawn_by("headshare.tasks.regression.plots", "regression_depth"),
        facets=("attention", "architecture", "n_layers", "n_heads", "d_head"),
    ),
    FigureSpec(
        name="regression_currying",
        task="regression",
        title="Is a context a weight update? W' fitted so that the model on the query alone matches the model on "
        "context and query",
        caption=(
            "Per model (dots: seeds, each the mean over held-out contexts; bars: mean and min-max): the fit's "
            "residual relative to the variance of the model's predictions (0: the context is exactly a weight "
            "update of the same model), the cosine of W' - W with one fine-tuning step on the context's examples "
            "fed as queries (Dai et al.'s comparison), the cosine of the linear predictor W' implies with one-step "
            "GD's, and the update's size ||W' - W|| / ||W||."
        ),
        draw=drawn_by("headshare.tasks.regression.plots", "regression_currying"),
        facets=("attention", "architecture", "n_layers", "n_heads", "d_head"),
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
            "Bayes-optimal predictor, exact once N >= d); one row per attention kind, one file per architecture, "
            "number of layers, heads and head size. Grey lines mark the training distribution."
        ),
        draw=drawn_by("headshare.tasks.regression.plots", "regression_generalisation"),
        facets=("attention",),
        split=("architecture", "n_layers", "n_heads", "d_head"),
    ),
)
