"""sed.training.fast_step and sed.augment.host_draws: the step without host sync, its option, and (on CUDA) its graph replay.

On the CPU the step function runs eagerly (FastStep(capture=False)): it must
give the eager trainer step's losses, draw what it draws, and train the same
weights. The graph tests need CUDA and are skipped elsewhere.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

from sed.augment import host_draws
from sed.augment.perturb import LogMelSpace
from sed.config import ConfigError, TrainConfig
from sed.features.scaler import Scaler
from sed.nn.model import build_model
from sed.presets import PRESETS, REALISTIC_PRESETS
from sed.training.batches import Batch
from sed.training.fast_step import LOSS_NAMES, BatchRows, FastStep, bce, resolve, step_losses
from sed.training.objectives import compute_losses, sigmoid_rampup, update_ema

SPACE = LogMelSpace(Scaler(np.full(128, -40.0), np.full(128, 12.0)))
CUDA = torch.cuda.is_available()


def tiny(cfg: TrainConfig) -> TrainConfig:
    return dataclasses.replace(cfg, cnn_filters=(4, 8, 8), rnn_hidden=8, bn_eps=1e-5)


def batch(seed: int, device: str = "cpu", b: int = 8, frames: int = 64, c: int = 10) -> Batch:
    g = torch.Generator().manual_seed(seed)
    q = b // 4
    weak = torch.zeros(b, dtype=torch.bool)
    strong = torch.zeros(b, dtype=torch.bool)
    weak[:q] = True
    strong[b - q :] = True
    return Batch(
        torch.randn(b, frames, 128, generator=g),
        (torch.rand(b, frames // 4, c, generator=g) > 0.8).float(),
        (torch.rand(b, c, generator=g) > 0.5).float(),
        strong,
        weak,
    ).to(torch.device(device))


def models(cfg: TrainConfig, device: str = "cpu"):
    torch.manual_seed(3)
    student = build_model(cfg, 10).to(device)
    teacher = None
    if cfg.has_teacher:
        teacher = build_model(cfg, 10).to(device)
        for p in teacher.parameters():
            p.requires_grad_(False)
    return student, teacher, torch.optim.Adam(student.parameters(), lr=cfg.lr)


def eager_steps(cfg: TrainConfig, n: int, rampup_steps: float, device: str = "cpu") -> np.ndarray:
    """The trainer's eager step (compute_losses, Adam at lr x ramp-up, EMA), n steps: the loss table."""
    student, teacher, optimizer = models(cfg, device)
    rng = random.Random(1)
    torch.manual_seed(7)
    rows = []
    for i in range(n):
        r = sigmoid_rampup(i, rampup_steps)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * r
        terms = compute_losses(student, teacher, batch(i, device), cfg, cfg.consistency_weight * r, rng, SPACE)
        values = terms.as_floats()
        rows.append([values[k] for k in LOSS_NAMES])
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        optimizer.step()
        if teacher is not None:
            update_ema(teacher, student, i + 1, cfg.ema_decay)
    return np.array(rows)


def fast_steps(cfg: TrainConfig, n: int, rampup_steps: float, device: str = "cpu") -> tuple[np.ndarray, FastStep]:
    student, teacher, optimizer = models(cfg, device)
    fast = FastStep(student, teacher, optimizer, cfg, random.Random(1), SPACE, rampup_steps, capacity=n)
    torch.manual_seed(7)
    fast.set_step(0)
    for i in range(n):
        fast.step(batch(i, device))
    return fast.read_history(n), fast


def test_option_is_validated_and_resolved():
    with pytest.raises(ConfigError, match="fast_step"):
        TrainConfig(fast_step="fast").validate()
    assert TrainConfig().fast_step == "auto"
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve(TrainConfig(), cpu) == "off"
    assert resolve(TrainConfig(), cuda) == "graph"
    assert resolve(TrainConfig(amp=True), cuda) == "off"
    assert resolve(TrainConfig(fast_step="off"), cuda) == "off"
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve(TrainConfig(fast_step="graph"), cpu)
    with pytest.raises(ValueError, match="amp=false"):
        resolve(TrainConfig(fast_step="graph", amp=True), cuda)


def test_bce_matches_torch_and_survives_nan():
    torch.manual_seed(0)
    p = torch.rand(50, 10).clamp(1e-6, 1 - 1e-6)
    t = (torch.rand(50, 10) > 0.5).float()
    assert torch.allclose(bce(p, t), torch.nn.functional.binary_cross_entropy(p, t), rtol=1e-6)
    p[0, 0] = float("nan")
    assert torch.isnan(bce(p, t))  # no range assert: the trainer names the step afterwards
    assert bce(p[:0], t[:0]).item() == 0.0


@pytest.mark.parametrize(
    "name", ["baseline", "adversarial-latent-l2", "vat-input-mt", "mixup-latent-l2", "filter-input-l2"]
)
def test_step_losses_equal_compute_losses(name):
    cfg = tiny({**PRESETS, **REALISTIC_PRESETS}[name])
    student, teacher, _ = models(cfg)
    b = batch(0)
    torch.manual_seed(5)
    eager = compute_losses(student, teacher, b, cfg, 1.5, random.Random(2), SPACE).as_floats()
    student, teacher, _ = models(cfg)
    torch.manual_seed(5)
    _, values = step_losses(student, teacher, b, BatchRows.of(b, False), cfg, 1.5, random.Random(2), SPACE)
    np.testing.assert_allclose(values.numpy(), [eager[k] for k in LOSS_NAMES], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("name", ["baseline", "random-latent-l2", "mixup-latent-l2", "filter-input-l2"])
def test_fast_step_trains_as_the_eager_step(name):
    """Four steps (ramp-up, lr, EMA on the device): the first step's losses equal, the rest close.

    After the first step the weights differ by rounding only: the conv biases before BatchNorm get a
    zero gradient up to rounding, which Adam normalises into steps of +-lr.
    """
    cfg = tiny({**PRESETS, **REALISTIC_PRESETS}[name])
    eager = eager_steps(cfg, 4, rampup_steps=5.0)
    fast, _ = fast_steps(cfg, 4, rampup_steps=5.0)
    np.testing.assert_allclose(fast[0], eager[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fast, eager, rtol=2e-3, atol=1e-7)


def test_host_draws_replay_the_eager_draws():
    """Under a Recorder the mixup location is drawn before the step and lambda/permutation refilled
    into buffers, consuming the generators exactly as the eager plan does."""
    from sed.augment.perturb import plan_mixup

    rng = random.Random(4)
    torch.manual_seed(9)
    eager = [plan_mixup(8, ("cnn", "rnn"), 0.2, torch.device("cpu"), rng) for _ in range(3)]

    recorder = host_draws.Recorder()
    rng = random.Random(4)
    torch.manual_seed(9)
    with recorder.run("eager", None):
        first = plan_mixup(8, ("cnn", "rnn"), 0.2, torch.device("cpu"), rng)
    assert recorder.choice_points == [("cnn", "rnn")]
    assert (first.location, first.lam) == (eager[0].location, eager[0].lam)
    for expected in eager[1:]:
        key = recorder.draw_key(rng)
        assert key == (expected.location,)
        if key not in recorder.by_key:  # first time: an eager run keeps the draw and its buffers
            with recorder.run("eager", key):
                plan = plan_mixup(8, ("cnn", "rnn"), 0.2, torch.device("cpu"), rng)
        else:
            with recorder.run("capture", key):
                plan = plan_mixup(8, ("cnn", "rnn"), 0.2, torch.device("cpu"), rng)
            recorder.load(key)
        assert plan.location == expected.location
        assert float(plan.lam) == pytest.approx(expected.lam, rel=1e-7)
        assert torch.equal(plan.permutation, expected.permutation)


def test_recorder_without_draws_loads_nothing():
    recorder = host_draws.Recorder()
    with recorder.run("eager", None):
        pass
    assert recorder.draw_key(random.Random(0)) == ()
    recorder.load(())  # a step with no host value draws (most objectives): nothing to refill


def test_loss_table_names_a_diverged_step():
    cfg = tiny(dataclasses.replace(PRESETS["none"], lr=1e6))
    table, fast = fast_steps(cfg, 6, rampup_steps=0.0)
    assert table.shape == (6, len(LOSS_NAMES))
    assert not np.isfinite(table).all()  # lr 1e6 diverges; no error inside the step
    with pytest.raises(ValueError, match="loss table holds"):
        fast.read_history(7)


# -- CUDA only ------------------------------------------------------------------------
needs_cuda = pytest.mark.skipif(not CUDA, reason="CUDA graph capture needs a CUDA device (none here)")


@needs_cuda
@pytest.mark.parametrize("name", ["baseline", "mixup-latent-l2", "vat-latent-l2", "filter-vat-input-l2"])
def test_graph_replay_gives_the_eager_losses(name):
    """After capture, on the same weights, batch and seeds: a replay's losses are the eager step's."""
    cfg = tiny({**PRESETS, **REALISTIC_PRESETS}[name])
    torch.backends.cudnn.allow_tf32 = False
    try:
        student, teacher, optimizer = models(cfg, "cuda")
        fast = FastStep(student, teacher, optimizer, cfg, random.Random(1), SPACE, 0.0, capacity=64)
        b = batch(0, "cuda")
        for _ in range(40):
            fast.step(b)
            points = fast.recorder.choice_points or []
            if len(fast.graphs) >= int(np.prod([len(p) for p in points])) and fast.graphs:
                break
        assert fast.graphs and fast.capture_error is None, fast.capture_error
        n_graphs = len(fast.graphs)
        s_state = {k: v.clone() for k, v in student.state_dict().items()}
        e_student, e_teacher, _ = models(cfg, "cuda")
        e_student.load_state_dict(s_state)
        if teacher is not None:
            e_teacher.load_state_dict(teacher.state_dict())
        torch.manual_seed(11)
        eager = compute_losses(e_student, e_teacher, b, cfg, cfg.consistency_weight, random.Random(11), SPACE)
        expected = eager.as_floats()
        torch.manual_seed(11)
        fast.rng.seed(11)
        fast.set_step(0)
        fast.step(b)
        assert len(fast.graphs) == n_graphs  # a replay, not a new capture
        got = fast.read_history(1)[0]
    finally:
        torch.backends.cudnn.allow_tf32 = True
    np.testing.assert_allclose(got, [expected[k] for k in LOSS_NAMES], rtol=1e-4, atol=1e-8)
