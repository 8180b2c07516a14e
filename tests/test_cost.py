"""Training cost in FLOPs (sed.training.cost) and its leaderboard columns (issue #21)."""

from __future__ import annotations

import dataclasses
import random

import pandas as pd
import pytest
import torch
from batches import make_batch
from torch.utils.flop_counter import FlopCounterMode

from sed.nn.model import CRNN, CRNNConfig
from sed.presets import PRESETS
from sed.training.cost import StepCost
from sed.training.objectives import compute_losses

TINY = CRNNConfig(cnn_filters=(4, 8, 8), rnn_hidden=8, n_classes=10, dropout=0.5)


def step_flops(cfg, teacher: bool = False) -> tuple[float, StepCost, int]:
    torch.manual_seed(0)
    student = CRNN(TINY).train()
    other = CRNN(TINY).train() if teacher else None
    cost = StepCost([student, other])
    batch = make_batch(c=10)
    terms = compute_losses(student, other, batch, cfg, 1.0, random.Random(0))
    terms.total.backward()
    flops = cost.end_step()
    cost.close()
    return flops, cost, int(batch.features.shape[0])


def test_stage_flops_add_up_to_the_counters_whole_forward_pass():
    _, cost, _ = step_flops(PRESETS["none"])
    model = CRNN(TINY).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 628, 128))
    assert sum(cost.per_example.values()) == pytest.approx(counter.get_total_flops())
    assert set(cost.per_example) == {"cnn", "rnn", "heads"}


def test_a_step_counts_each_pass_forward_plus_backward():
    supervised, cost, batch = step_flops(PRESETS["none"])
    whole = sum(cost.per_example.values())
    assert supervised == pytest.approx(3 * whole * batch)  # one clean pass with gradients
    vat = PRESETS["vat-input-l2"]
    # clean + power iterations + perturbed pass, each from the input with gradients
    assert step_flops(vat)[0] == pytest.approx(3 * supervised)
    assert step_flops(dataclasses.replace(vat, vat_iters=3))[0] == pytest.approx(5 * supervised)
    adversarial = dataclasses.replace(vat, augmentation="adversarial")
    assert step_flops(adversarial)[0] == pytest.approx(3 * supervised)  # one gradient pass, like 1-iteration VAT
    # mean teacher: VAT on the student (clean + 1 search pass), the teacher's pass without gradients
    assert step_flops(dataclasses.replace(vat, regularization="mt"), teacher=True)[0] == pytest.approx(
        (3 + 3 + 1) * whole * batch
    )


def test_search_rows_carry_steps_and_gflop():
    from search.rows import last_value

    history = pd.DataFrame({"epoch": [1, 2], "step": [5, 10], "train_gflop": [0.5, 1.0]})
    assert last_value(history, "step") == 10 and last_value(history, "train_gflop") == 1.0
    assert pd.isna(last_value(pd.DataFrame({"epoch": [1]}), "train_gflop"))
