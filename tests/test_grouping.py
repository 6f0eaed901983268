"""Training groups: a cohort trained alone and inside a family of cohorts (fewer-headed members zero-padded
and masked) ends with the same weights and records, to float tolerance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from headshare import layout, tasks
from headshare.checkpoint import load_ensemble
from headshare.cohort_training import train_cohorts
from headshare.grouping import TrainingGroup, family_config, training_groups
from headshare.mixed_ensemble import head_mask
from headshare.model import EnsembleTransformer, ModelConfig, init_member_state, with_heads
from helpers.configs import deep_merge, smoke_config

SHAPE = ModelConfig(vocab_size=5, n_ctx=6, d_model=8, n_heads=2, d_head=3, d_out=5)


def test_zero_heads_change_no_output_and_get_no_gradient():
    """A member padded to 4 heads computes what it computed with 2 (the unpadded model is the reference),
    its extra heads get exactly zero gradient, and cutting it back gives the original parameters."""
    state = init_member_state(SHAPE, seed=3)
    wide = ModelConfig(**{**SHAPE.__dict__, "n_heads": 4})
    narrow_model = EnsembleTransformer.from_members(SHAPE, [state])
    wide_model = EnsembleTransformer.from_members(wide, [with_heads(state, SHAPE, 4)])
    tokens = torch.randint(0, 5, (1, 7, 6), generator=torch.Generator().manual_seed(0))
    mask = head_mask([SHAPE], wide)
    torch.testing.assert_close(wide_model(tokens, head_mask=mask), narrow_model(tokens), rtol=1e-6, atol=1e-6)
    wide_model(tokens, head_mask=mask).square().sum().backward()
    grad = wide_model.blocks[0].attn.W_QKV.grad.view(1, 8, 3, 4, 3)
    assert grad[:, :, :, 2:].abs().max() == 0 and grad[:, :, :, :2].abs().max() > 0
    assert wide_model.blocks[0].attn.W_O.grad[:, 2:].abs().max() == 0
    back = with_heads(wide_model.member_state_dict(0), wide, 2)
    assert all(torch.equal(back[name], state[name]) for name in state)


def test_family_config_refuses_models_that_differ_in_more_than_heads():
    other = ModelConfig(**{**SHAPE.__dict__, "d_head": 4})
    assert family_config([SHAPE, ModelConfig(**{**SHAPE.__dict__, "n_heads": 1})]).n_heads == 2
    with pytest.raises(ValueError, match="n_heads only"):
        family_config([SHAPE, other])


def grouping_config() -> dict:
    """The smoke config, with a regression family too (linear attention with 1 and 2 heads)."""
    return deep_merge(
        smoke_config(),
        {
            "device": "cpu",
            "regression": {"grid": {"attention": ["linear"], "n_heads": [1, 2], "seeds": [0, 1]}, "extra_grids": []},
        },
    )


def probe_inputs(cfg: ModelConfig) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    if cfg.vocab_size is not None:
        return torch.randint(0, cfg.vocab_size, (1, 16, cfg.n_ctx), generator=generator)
    return torch.randn(1, 16, cfg.n_ctx, cfg.input_dim, generator=generator)


def train_to(workdir: Path, task, settings, cohorts) -> None:
    members = [member for cohort in cohorts for member in cohort.members]
    train_cohorts(
        task,
        settings,
        cohorts,
        [layout.model_file(str(workdir), m.path, "model.pt") for m in members],
        [layout.model_file(str(workdir), m.path, "training.json") for m in members],
        progress=False,
    )


@pytest.mark.parametrize("task_name", ["hmm", "regression"])
def test_a_cohort_trains_alike_alone_and_inside_its_family(tmp_path: Path, task_name: str):
    torch.set_num_threads(1)
    task, settings = tasks.configured(grouping_config(), task_name)
    family = max(training_groups(task, settings, "family"), key=lambda group: len(group.cohorts))
    assert len(family.cohorts) >= 2 and len({task.model_config(settings, c).n_heads for c in family.cohorts}) == 2
    train_to(tmp_path / "family", task, settings, family.cohorts)
    for cohort in (family.cohorts[0], family.cohorts[-1]):  # a narrow cohort and the last one
        train_to(tmp_path / "alone", task, settings, [cohort])
        cfg = task.model_config(settings, cohort)
        for member in cohort.members:
            files = {
                where: Path(layout.model_file(str(tmp_path / where), member.path, "model.pt"))
                for where in ("family", "alone")
            }
            models = {where: load_ensemble(path, cfg, n_members=1)[0] for where, path in files.items()}
            grouped, alone = (models[where].member_state_dict(0) for where in ("family", "alone"))
            for name in alone:
                if name.endswith("b_QKV"):
                    # The key bias shifts every score of a query alike, which softmax ignores: its gradient is
                    # zero but for rounding, which Adam scales up to steps of lr, differently in each ensemble.
                    # It changes no output (checked on the logits below); the query and value biases must agree.
                    keep = torch.tensor([True, False, True]).repeat_interleave(cfg.n_heads * cfg.d_head)
                    grouped[name], alone[name] = grouped[name][keep], alone[name][keep]
                torch.testing.assert_close(
                    grouped[name], alone[name], rtol=1e-4, atol=1e-5, msg=f"{member.path} {name}"
                )
            inputs = probe_inputs(cfg)
            with torch.no_grad():
                torch.testing.assert_close(models["family"](inputs), models["alone"](inputs), rtol=1e-4, atol=1e-5)
            records = {where: json.loads(path.with_name("training.json").read_text()) for where, path in files.items()}
            assert records["family"]["steps_trained"] == records["alone"]["steps_trained"]
            assert records["family"]["model_config"] == records["alone"]["model_config"]
            np.testing.assert_allclose(records["family"]["losses"], records["alone"]["losses"], rtol=1e-4)
            for name, curve in records["alone"]["evaluations"].items():
                np.testing.assert_allclose(records["family"]["evaluations"][name], curve, rtol=1e-3, atol=1e-6)


def test_groupings_cover_every_cohort_once():
    task, settings = tasks.configured(grouping_config(), "hmm")
    cohorts = [c.name for c in task.cohorts(settings)]
    for grouping in ("cohort", "family"):
        groups = training_groups(task, settings, grouping)
        assert sorted(c.name for group in groups for c in group.cohorts) == sorted(cohorts)
    families = training_groups(task, settings, "family")
    assert len(families) == 2  # the mess3 product (vocab 9) and the two-state product (vocab 4)
    assert len({group.name for group in families}) == 2
    assert TrainingGroup("hmm", families[0].cohorts[:1]).name == families[0].cohorts[0].name


@pytest.mark.parametrize("device", [None, torch.device("cpu")])
def test_members_of_different_factor_shapes_draw_their_own_streams_in_one_source(device):
    """A family may hold products whose factors differ in shape (3x2 and 2x3 both give 6 tokens): each
    member's tokens are those it draws alone, on the host sampler and on the torch one."""
    from headshare.tasks.hmm.processes import mess3, two_state
    from headshare.tasks.hmm.source import HMMSource

    first, second = (mess3(0.7, 0.85), two_state(0.5, 0.85)), (two_state(0.5, 0.85), mess3(0.7, 0.85))
    mixed = HMMSource([first, second, first], [1, 2, 3], 64, 6, device=device).tokens(5)
    for index, (pair, seed) in enumerate([(first, 1), (second, 2), (first, 3)]):
        assert torch.equal(mixed[index], HMMSource([pair], [seed], 64, 6, device=device).tokens(5)[0])
