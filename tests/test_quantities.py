"""The quantity registry: every quantity declared once in its task's folder, and the verdict rules built from it."""

from __future__ import annotations

import sys
import textwrap

import pytest
from helpers.paths import PROJECT_ROOT

from headshare import tasks
from headshare.predictions import load_predictions
from headshare.scoring import quantities, verdict_rules_markdown
from headshare.scoring.convergence import CONVERGENCE_VARIABLES
from headshare.scoring.readme import rules_block, with_rules
from headshare.scoring.registry import get, task_quantities

# Coordinates on the condition axis of the hmm store, which store contracts do not list as variables.
CONDITION_COORDS = {"lambda1", "lambda2"}


def test_every_quantity_the_predictions_use_is_registered():
    used = {entry["quantity"] for entry in load_predictions()["predictions"]}
    assert used <= set(quantities())


def test_each_quantity_reads_variables_its_task_store_declares():
    for quantity in quantities().values():
        contract = tasks.get(quantity.task).combined_store
        assert set(quantity.variables) - set(contract.variables) <= CONDITION_COORDS, quantity.name


def test_every_task_store_declares_the_convergence_evidence_scoring_gates_on():
    for task in tasks.all_tasks():
        missing = set(CONVERGENCE_VARIABLES) - set(task.combined_store.variables)
        assert not missing, f"the {task.name} store contract lacks {sorted(missing)}"


def test_quantities_come_from_their_task_folders():
    for task in tasks.all_tasks():
        declared = task_quantities(task)
        assert all(quantity.task == task.name for quantity in declared)
        assert all(type(quantity.measure).__name__ == "function" for quantity in declared)
    by_task = {name: quantity.task for name, quantity in quantities().items()}
    assert by_task["decay_rate"] == "hmm" and by_task["preference_inversion"] == "readoff"
    assert by_task["gradient_cosine"] == "regression"


def test_unknown_quantity_names_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown quantity 'loss_curvature'; registered: minimal_heads, "):
        get("loss_curvature")


def make_task_package(tmp_path, monkeypatch, declared_task: str) -> tasks.Task:
    """A task in its own package whose quantities module declares one quantity for ``declared_task``."""
    package = tmp_path / "toy_scoring_task"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            from headshare.tasks.base import Task

            class ToyTask(Task):
                name = "toy"
                cohort_axes = ("n_layers", "n_heads", "d_head")
                member_axes = ("seed",)
            """
        )
    )
    (package / "quantities.py").write_text(
        textwrap.dedent(
            f"""
            from headshare.scoring.quantity import Quantity, scalar

            QUANTITIES = (
                Quantity("toy_loss", {declared_task!r}, ("loss",), scalar("loss"), "the toy model's loss."),
            )
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("toy_scoring_task", "toy_scoring_task.quantities"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    from toy_scoring_task import ToyTask

    return ToyTask()


def test_a_task_package_brings_its_quantities(tmp_path, monkeypatch):
    (quantity,) = task_quantities(make_task_package(tmp_path, monkeypatch, "toy"))
    assert (quantity.name, quantity.task, quantity.variables) == ("toy_loss", "toy", ("loss",))


def test_a_quantity_declared_for_another_task_is_refused(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"declares 'toy_loss' for task 'hmm', not 'toy'"):
        task_quantities(make_task_package(tmp_path, monkeypatch, "hmm"))


# ------------------------------------------------------------------------------- verdict rules


def test_rules_name_every_verdict_and_every_quantity_once():
    rules = verdict_rules_markdown()
    for verdict in ("confirmed / refuted", "inconclusive", "infeasible", "not run"):
        assert rules.count(f"**{verdict}**") == 1
    for column in ("`agreement`", "`power`", "`converged`", "`max_steps`"):
        assert column in rules
    for name, quantity in quantities().items():
        assert rules.count(f"- *{name}* ({quantity.task}): ") == 1


def test_readme_states_the_generated_verdict_rules():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert rules_block(readme) == verdict_rules_markdown(), (
        "README.md's verdict rules are stale: run python -m headshare.scoring --write-readme-rules README.md"
    )


def test_readme_rules_command_rewrites_only_the_marked_block(tmp_path):
    from headshare.scoring.__main__ import main

    readme = (PROJECT_ROOT / "README.md").read_text()
    stale = readme.replace(rules_block(readme), "old rules\n")
    path = tmp_path / "README.md"
    path.write_text(stale)
    main(["--write-readme-rules", str(path)])
    assert path.read_text() == readme == with_rules(readme)


def test_readme_without_markers_is_refused():
    with pytest.raises(ValueError, match="no verdict-rules block"):
        rules_block("# A README\n")
