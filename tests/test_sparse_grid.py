"""Sparse grids: ``extra_grids`` add a few cohorts beside the main grid, and every reader copes with the NaN
the combined store holds where no grid trains a model."""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr
from helpers.configs import deep_merge, default_config, smoke_config
from helpers.scoring_stores import entry, hmm_store, scored, set_rates
from helpers.synthetic import synthetic_hmm_store

from headshare import tasks
from headshare.combine import combine_members
from headshare.figures import get as get_figure
from headshare.figures.render import draw_page

DECAY_ONE = entry("decay_rate", {"condition": "c", "n_heads": 1}, "==", [0.7], 0.05, figure="attention_decay")
MINIMAL_ONE = entry("minimal_heads", {"condition": "c"}, "==", 1)


def without(store: xr.Dataset, **point) -> xr.Dataset:
    """``store`` with every per-model variable NaN at ``point``, as combine leaves a point no grid trains."""
    mask = xr.ones_like(store["steps_trained"], dtype=bool)
    mask.loc[point] = False
    return store.assign({name: var.where(mask) for name, var in store.data_vars.items() if "seed" in var.dims})


def test_extra_grids_add_exactly_their_cohorts_once_each():
    task, settings = tasks.configured(default_config(), "hmm")
    section = default_config()["hmm"]
    main = set(
        itertools.product(
            [c["id"] for c in section["conditions"]], section["grid"]["n_heads"], section["emission_fidelity"],
            section["loss_positions"],
        )
    )
    wanted = set(main)
    for extra in section["extra_grids"]:
        wanted |= set(
            itertools.product(extra["conditions"], extra["n_heads"], extra["emission_fidelity"], extra["loss_positions"])
        )
    cohorts = task.cohorts(settings)
    found = [(c.coords["condition"], c.coords["n_heads"], c.coords["a"], c.coords["loss"]) for c in cohorts]
    assert len(found) == len(set(found)) == len(wanted) > len(main)
    assert set(found) == wanted
    assert all([m.coords["seed"] for m in c.members] == section["grid"]["seeds"] for c in cohorts)
    datasets = {(key["condition"], key["a"]) for key in task.dataset_keys(settings)}
    assert datasets == {(condition, a) for condition, _, a, _ in wanted}


def test_the_combined_store_is_nan_where_no_grid_trains():
    config = deep_merge(smoke_config(), {"device": "cpu"})
    task, settings = tasks.configured(config, "hmm")
    members = [member for cohort in task.cohorts(settings) for member in cohort.members]
    sizes = {"sample": 2, "simplex_point": 2, "query_pos": 2, "key_pos": 2, "d_model": 2, "distance": 3}
    stores = []
    for index, member in enumerate(members):
        dims = {dim for var in task.model_store.variables.values() for dim in var.dims}
        coords = {dim: np.arange(sizes.get(dim, 2)) for dim in dims}
        coords.update(layer=np.arange(member.coords["n_layers"]), head=np.arange(member.coords["n_heads"]))
        stores.append(task.model_store.template(coords).assign(excess_loss=float(index)))
    records = [
        {"final_loss": 1.0, "steps_trained": 30, "converged": True, "plateau": 1.0, "plateau_se": 0.01,
         "convergence_fall": 0.0, "eval_steps": [10, 20, 30], "evaluations": evaluations_for(task, member, sizes)}
        for member in members
    ]
    combined = combine_members(task, members, stores, records, {})
    trained = combined["steps_trained"].notnull()
    assert int(trained.sum()) == len(members)
    (extra,) = config["hmm"]["extra_grids"]
    last = combined["steps_trained"].sel(loss="last")
    assert int(last.notnull().sum()) == len(extra["emission_fidelity"]) * len(config["hmm"]["grid"]["seeds"])
    assert bool(last.sel(condition="ts_0.7_ts_-0.7").isnull().all())
    for index, member in enumerate(members):
        point = {axis: member.coords[axis] for axis in task.grid_axes}
        assert combined["excess_loss"].sel(point).item() == index


def evaluations_for(task, member, sizes: dict[str, int]) -> dict:
    """Three evaluations of every curve the hmm contract records, shaped for ``member`` (zeros)."""
    sizes = {**sizes, "layer": member.coords["n_layers"], "head": member.coords["n_heads"]}
    grid = len(task.grid_axes)
    return {
        name.removeprefix("eval_"): np.zeros([3, *[sizes.get(dim, 2) for dim in var.dims[grid + 1 :]]]).tolist()
        for name, var in task.combined_store.variables.items()
        if name.startswith("eval_")
    }


def test_points_no_grid_trains_get_no_row_and_a_single_trained_head_count_is_no_sweep():
    store = set_rates(hmm_store(a=(0.85, 0.6), n_heads=(1, 2)), [0.7], n_heads=1)
    sparse = without(store, a=0.6, n_heads=2)  # a = 0.6 trains one head only
    decay = scored(sparse, DECAY_ONE)
    assert list(decay["condition"]) == [
        "c (n_layers=1, n_heads=1, d_head=8, a=0.85, loss=all)",
        "c (n_layers=1, n_heads=1, d_head=8, a=0.6, loss=all)",
    ]
    heads = scored(sparse, MINIMAL_ONE)
    assert list(heads["condition"]) == ["c (n_layers=1, d_head=8, a=0.85, loss=all, n_heads=1,2)"]
    nowhere = scored(without(store, a=0.6, n_heads=1), entry("decay_rate", {"condition": "c", "n_heads": 1, "a": 0.6},
                                                              "==", [0.7], 0.05, figure="attention_decay"))
    assert list(nowhere["verdict"]) == ["not run"] and "no grid" in nowhere["reason"].iloc[0]


def test_figures_of_a_sparse_grid_draw_only_what_some_grid_trains():
    blocks = (
        {"condition": ("m3_0.7_m3_0.7", "ts_0.7_ts_-0.7"), "n_layers": (1,), "n_heads": (1, 2), "d_head": (4,),
         "a": (0.85,), "loss": ("all",), "seed": (0, 1)},
        {"condition": ("m3_0.7_m3_0.7",), "n_layers": (1,), "n_heads": (1,), "d_head": (4,), "a": (0.85, 0.6),
         "loss": ("last",), "seed": (0, 1)},
    )
    grid = {axis: tuple(dict.fromkeys(v for block in blocks for v in block[axis])) for axis in blocks[0]}
    spec = get_figure("attention_decay")
    stems = [page.stem for page in spec.pages(grid, blocks)]
    assert stems == [
        "attention_decay/a~0.85_loss~all_d_head~4_n_layers~1",
        "attention_decay/a~0.85_loss~last_d_head~4_n_layers~1",
        "attention_decay/a~0.6_loss~last_d_head~4_n_layers~1",
    ]  # no page for a = 0.6 trained on every position: no grid has it
    simplex = get_figure("belief_simplex").pages(grid, blocks)
    assert [page.model["loss"] for page in simplex] == ["all", "all"]
    store = synthetic_hmm_store(a=(0.85, 0.6), n_heads=(1, 2), d_head=(4,))
    store = without(store, a=0.6, loss="all")
    for other in ("m3_0.7_m3_-0.3", "ts_0.7_ts_-0.7"):
        store = without(store, loss="last", condition=other)
    store = without(store, loss="last", n_heads=2)
    page = spec.pages(grid, blocks)[2]
    fig = draw_page(spec, page, store)
    assert len([ax for ax in fig.axes if ax.get_visible() and ax.has_data()]) == 1  # one trained panel
