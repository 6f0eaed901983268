"""Scoring quantities of the in-context regression task: how close the model comes to one step of GD."""

from __future__ import annotations

import numpy as np
import xarray as xr

from headshare.scoring.quantity import Measured, Pooled, Quantity, judged, outcomes, per_seed, scalar, spread
from headshare.scoring.rule import Rule
from headshare.scoring.statistics import proportion_interval, trials_to_separate
from headshare.store import ArtifactError

_UNLEARNED = (
    "Inconclusive when the model never left the zero predictor's plateau: its loss is not closer to one-step "
    "GD's than to always predicting zero."
)


def _learned(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> tuple[np.ndarray, str]:
    """A model learned when its loss is below the midpoint of GD's and the zero predictor's: a model on the
    zero predictor's plateau neither matches GD nor shows that its architecture cannot."""
    missing = [key for key in ("zero_loss", "gd_loss") if key not in store.attrs]
    if missing:
        raise ArtifactError(f"the regression store lacks the {', '.join(missing)} attribute, needed to tell if a model learned")
    zero, gd = float(store.attrs["zero_loss"]), float(store.attrs["gd_loss"])
    midpoint = 0.5 * (zero + gd)
    return per_seed(point["loss"]) < midpoint, (
        f"loss not below {midpoint:.4g}, midway between one-step GD's {gd:.4g} and the zero predictor's {zero:.4g}"
    )


def _worst_over_grid(reduce: str, what: str):
    """A measurement judging each seed by its worst (N, alpha) point of the generalisation grid: the largest
    |loss / GD loss - 1| (``reduce`` "ratio") or the smallest gradient cosine ("cosine")."""

    def measure(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
        if reduce == "ratio":
            ratio = point["generalisation_loss"] / point["generalisation_gd_loss"]
            worst = per_seed(abs(ratio - 1).max(("n_eval", "scale"), skipna=False))
        else:
            worst = per_seed(point["generalisation_gradient_cosine"].min(("n_eval", "scale"), skipna=False))
        learned, unlearned = _learned(point, rule, store)
        return Measured(
            outcomes=outcomes(np.array([rule.holds(v) for v in worst]), finite=np.isfinite(worst), learned=learned),
            observed=spread(worst),
            explain={**judged(what, rule), "unlearned": unlearned, "missing": f"{what} is NaN"},
        )

    return measure


def _context_mean(variable: str):
    """A per-model variable measured on each held-out context (currying), judged by its mean over them."""
    judge = scalar(variable, _learned)

    def measure(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
        return judge(point.assign({variable: point[variable].mean("curry_context", skipna=False)}), rule, store)

    return measure


def _escape_fraction(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
    """The share of seeds that left the zero predictor's plateau, judged by its 95% Clopper-Pearson interval
    against the rule's threshold: training that finds the solution only sometimes is a measured rate."""
    escaped, _ = _learned(point, rule, store)
    finite = np.isfinite(per_seed(point["loss"]))
    count, seeds = int(escaped[finite].sum()), int(finite.sum())
    low, high = proportion_interval(count, seeds) if seeds else (0.0, 1.0)
    rate = count / seeds if seeds else float("nan")
    observed = f"{count}/{seeds} seeds escaped (95% CI {low:.2f}-{high:.2f})"
    threshold = float(rule.value)
    if low > threshold or high < threshold:
        holds = rule.holds(low if low > threshold else high)
        verdict = "confirmed" if holds else "refuted"
        pooled = Pooled(verdict, f"{observed}: the interval lies {'above' if low > threshold else 'below'} {threshold:g}")
    else:
        needed = trials_to_separate(rate, threshold) if seeds else None
        power = (
            f"escape rate {rate:.2f}; a 95% interval excluding {threshold:g} needs about {needed} seeds at this rate"
            if needed else f"undecidable: the observed rate {rate:.2f} sits at the threshold {threshold:g}"
        )
        pooled = Pooled("unresolved", f"{observed}: the interval contains {threshold:g}", power)
    return Measured(
        outcomes=outcomes(escaped, finite=finite),
        observed=observed,
        explain={"confirmed": "left the plateau", "refuted": "stayed on the plateau", "missing": "loss is NaN"},
        pooled=pooled,
    )


_MULTISTEP = """
    K = n_layers steps from w = 0, their step sizes line-searched jointly (and for GD++ the input transforms
    x <- (I - gamma S) x before each step, S the context's second moments; von Oswald et al.) on 200,000 tasks
    of their own, the loss measured on the evaluation set (construction: headshare.tasks.regression.multistep)."""
_CURRYING = """
    For each of `regression.currying.contexts` held-out contexts c, weights W' are fitted (Adam from the
    model's W) so that the model run on the query alone matches the model run on c and the query, over
    fresh queries (headshare.tasks.regression.currying); the value is the mean over the contexts."""

QUANTITIES = (
    Quantity(
        name="regression_loss_ratio",
        task="regression",
        variables=("loss", "gd_loss_ratio"),
        measure=scalar("gd_loss_ratio", _learned),
        verdict="the model's held-out loss over the loss of one step of gradient descent (1: GD's loss). " + _UNLEARNED,
    ),
    Quantity(
        name="gradient_cosine",
        task="regression",
        variables=("loss", "gradient_cosine"),
        measure=scalar("gradient_cosine", _learned),
        verdict="the cosine between the model's and one-step GD's d y_hat / d x_query. " + _UNLEARNED,
    ),
    Quantity(
        name="generalisation_loss_ratio",
        task="regression",
        variables=("loss", "generalisation_loss", "generalisation_gd_loss"),
        measure=_worst_over_grid("ratio", "the largest |loss / GD loss - 1| over (N, scale)"),
        verdict="""
            the largest |loss / loss of one-step GD - 1| over every evaluated context length N and input scale
            (config `regression.generalisation`), GD taking the step size line-searched on the training
            distribution. """ + _UNLEARNED,
    ),
    Quantity(
        name="generalisation_cosine",
        task="regression",
        variables=("loss", "generalisation_gradient_cosine"),
        measure=_worst_over_grid("cosine", "the smallest gradient cosine over (N, scale)"),
        verdict="""
            the smallest cosine between the model's and one-step GD's d y_hat / d x_query over every evaluated
            context length N and input scale. """ + _UNLEARNED,
    ),
    Quantity(
        name="least_squares_gap",
        task="regression",
        variables=("loss", "least_squares_gap_closed"),
        measure=scalar("least_squares_gap_closed", _learned),
        verdict="""
            the share of the gap from one-step GD's loss to least squares' that the model closes: (GD loss -
            loss) / (GD loss - least-squares loss); 0 is one step of GD, 1 the Bayes-optimal predictor, negative
            worse than GD. """ + _UNLEARNED,
    ),
    *(
        Quantity(
            name=f"{reference}_{kind}",
            task="regression",
            variables=("loss", variable),
            measure=scalar(variable, _learned),
            verdict=f"{what} {name}: " + _MULTISTEP + " " + _UNLEARNED,
        )
        for reference, name in (("multistep", "K steps of gradient descent"), ("gdpp", "K steps of GD++"))
        for kind, variable, what in (
            ("loss_ratio", f"{reference}_loss_ratio", "the model's loss over the loss of"),
            ("cosine", f"{reference}_gradient_cosine", "the cosine between the model's d y_hat / d x_query and that of"),
        )
    ),
    Quantity(
        name="curry_residual",
        task="regression",
        variables=("loss", "curry_residual"),
        measure=_context_mean("curry_residual"),
        verdict="""
            how far a context is from a weight update: the fitted W' leaves a residual mean squared difference,
            relative to the variance of the model's predictions on that context (0: exactly a weight
            update in the model's own class). """ + _CURRYING + " " + _UNLEARNED,
    ),
    Quantity(
        name="curry_finetune_cosine",
        task="regression",
        variables=("loss", "curry_finetune_cosine"),
        measure=_context_mean("curry_finetune_cosine"),
        verdict="""
            whether the weight update a context amounts to is one step of fine-tuning: the cosine between W' - W
            and the gradient step of the same model on the context's examples, each fed as a query alone (Dai
            et al.'s comparison). """ + _CURRYING + " " + _UNLEARNED,
    ),
    Quantity(
        name="curry_gd_cosine",
        task="regression",
        variables=("loss", "curry_gd_cosine"),
        measure=_context_mean("curry_gd_cosine"),
        verdict="""
            the cosine between the linear predictor the fitted W' implies (least-squares fit of its predictions
            on the query) and one-step GD's w on the same context. """ + _CURRYING + " " + _UNLEARNED,
    ),
    Quantity(
        name="escape_fraction",
        task="regression",
        variables=("loss",),
        measure=_escape_fraction,
        verdict="""
            the share of seeds whose model left the zero predictor's plateau (loss closer to one-step GD's than
            to always predicting zero), judged by its 95% Clopper-Pearson interval over seeds: confirmed or
            refuted only when the interval lies wholly on one side of the rule's threshold; the power column
            gives the seeds that would separate the observed rate from it.
        """,
    ),
)
