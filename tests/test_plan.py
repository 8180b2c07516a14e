"""The run plan (search.plan, --plan): steps per epoch, ASHA epochs, scheduling, and the printed table."""

from __future__ import annotations

import pytest
from clusters import REPO

from search import step_rates
from search.plan import (
    DESED2020,
    asha_epochs,
    asha_rungs,
    desed2020_sizes,
    embedded_sizes,
    makespan,
    objective_configs,
    plan_stages,
    table_cost,
)
from search.resources import derive_resources
from search.run import main
from search.space import load_space
from sed.config import TrainConfig


def test_desed2020_is_263_steps_per_epoch_at_batch_24():
    sizes = desed2020_sizes()
    # batch 24 = 6 weak + 12 unlabeled + 6 strong: 1578 // 6 = 263 (the weak part runs out first)
    assert sizes.steps_per_epoch(TrainConfig(batch_size=24)) == 263 == DESED2020["weak"] // 6
    assert sizes.steps_per_epoch(TrainConfig(batch_size=24, max_steps_per_epoch=100)) == 100
    # the demo's batch: 4 weak + 4 strong, no unlabeled part, on the embedded default data
    demo = TrainConfig(batch_size=8, weak_fraction=0.5, strong_fraction=0.5)
    embedded = embedded_sizes(TrainConfig())
    assert (embedded.weak, embedded.synthetic_train + embedded.synthetic_val) == (200, 400)
    assert embedded.steps_per_epoch(demo) == min(200 // 4, embedded.synthetic_train // 4)


def test_asha_rungs_and_expected_epochs_follow_rays_rule():
    assert asha_rungs(3, 3, 9) == [3]  # the demo: one rung, then the end
    assert asha_rungs(5, 3, 30) == [5, 15]
    # Ray's cutoff: the first trial at a rung always continues; the 2nd half the time, the 3rd a third
    runs = asha_epochs(3, 3, 3, 9, simulations=3000)
    promoted = [sum(run[i] == 9 for run in runs) / len(runs) for i in range(3)]
    assert promoted[0] == 1.0
    assert promoted[1] == pytest.approx(1 / 2, abs=0.04)
    assert promoted[2] == pytest.approx(1 / 3, abs=0.04)


def test_makespan_list_schedules_in_order():
    assert makespan([10, 10, 10, 10], 2) == 20
    assert makespan([30, 10, 10, 10], 2) == 30
    assert makespan([5], 8) == 5


def test_packing_slows_each_trial_as_measured():
    # graph step (the default on CUDA): trials sharing a GPU only time-slice it
    assert step_rates.packing_factor(1) == 1.0
    assert step_rates.packing_factor(4) == pytest.approx(16.9 / 73.8)
    assert step_rates.packing_factor(8) == pytest.approx(8.4 / 73.8)
    # eager step: 4 sharing a GPU give more in total than one alone
    assert step_rates.packing_factor(4, graph=False) == pytest.approx(15.3 / 46.8)
    assert 4 * step_rates.packing_factor(4, graph=False) > 1 > 2 * step_rates.packing_factor(2)
    cfg = TrainConfig(augmentation="vat", locations="input", regularization="l2")
    assert step_rates.gpu_step_seconds(cfg, 1).seconds == pytest.approx(1 / 35.4)
    assert "graph-step" in step_rates.gpu_step_seconds(cfg, 1).source
    eager = TrainConfig(augmentation="vat", locations="input", regularization="l2", fast_step="off")
    assert step_rates.gpu_step_seconds(eager, 1).seconds == pytest.approx(1 / 31.6)
    amp = TrainConfig(augmentation="vat", locations="input", regularization="l2", amp=True)
    assert "eager-step" in step_rates.gpu_step_seconds(amp, 4).source


def test_latent_on_8_h200_fills_them_and_the_plan_adds_up():
    space = load_space(REPO / "spaces" / "latent.yaml")
    packing = derive_resources(space, [{"CPU": 64.0, "GPU": 8.0}])
    sizes = desed2020_sizes()
    cost, _ = table_cost(packing, sizes, 64)
    search, final = plan_stages(space, packing, sizes, cost)
    # one trial per GPU (the graph step's measured packing): 8 at once
    assert (search.trials, search.at_once, search.steps_per_epoch) == (32, 8, 263)
    # per_group: [augmentation] -> the best of each of the 4 augmentations x 3 seeds
    expected = 4 * space.final.top_k * len(space.final.seeds) + (len(space.final.seeds) if space.final.control else 0)
    assert (final.trials, final.at_once) == (expected, 8)
    # 12 objectives (4 augmentations x cnn/rnn/latent), all at the latent step rates
    assert len(objective_configs(space)) == 12
    # a search trial runs between 8 (the first rung) and 30 epochs; 32 trials on 8 slots: the wall time
    # lies between the longest trial and a perfect packing of the mean trial plus the longest
    epoch_s = 263 * search.step_s + step_rates.validation_seconds(space.base_config(), 517, True)
    longest, mean = 30 * epoch_s, search.mean_epochs * epoch_s
    assert max(longest, 32 * mean / 8) <= search.wall_s <= 32 * mean / 8 + longest + 60
    assert search.gpu_hours == pytest.approx(32 * mean / 3600, rel=0.05)


def test_the_post_processing_of_the_final_runs_is_planned():
    import dataclasses

    from search.plan import POSTPROCESS_S_PER_CLIP

    demo = load_space(REPO / "spaces" / "demo.yaml")
    assert not demo.final.postprocess  # the demo leaves it out (10 minutes); planned here with it on
    space = dataclasses.replace(demo, final=dataclasses.replace(demo.final, postprocess=True))
    without = demo
    sizes = embedded_sizes(space.base_config())
    assert (sizes.validation, sizes.public_eval) == (100, 400)
    packing = derive_resources(space, [{"CPU": 2.0}])
    cost, _ = table_cost(packing, sizes, 2)
    final_on = plan_stages(space, packing, sizes, cost)[1]
    final_off = plan_stages(without, packing, sizes, cost)[1]
    # 10 final runs (best config x 5 seeds + the control x 5) of 100 + 400 clips, one after the other
    assert final_on.wall_s - final_off.wall_s == pytest.approx(10 * 500 * POSTPROCESS_S_PER_CLIP)
    assert 10 * 200 * POSTPROCESS_S_PER_CLIP == pytest.approx(70.5)


def test_plan_command_prints_the_table_without_starting_anything(capsys, tmp_path):
    code = main(
        [
            "--space",
            str(REPO / "spaces" / "table1.yaml"),
            "--plan",
            "--plan-cluster",
            "16:1",
            "--plan-data",
            "desed2020",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "search: 1 trials at once on 1 of 1 GPUs, 1 per GPU" in out
    assert "263 steps per epoch at batch 24" in out
    # a search per Table 1 row (tests/test_groups.py), then the best of each x 3 seeds
    assert "| search none | 1 | 200 | 263 |" in out and "| final | 27 | 200 | 263 |" in out
    assert not (tmp_path / "out").exists()
    assert main(["--space", str(REPO / "spaces" / "table1.yaml"), "--plan", "--plan-cluster", "lots"]) == 2
    assert "--plan-cluster 'lots': give CPUS:GPUS[:NODES]" in capsys.readouterr().err


def test_the_demo_is_planned_from_its_own_measured_step_times():
    import dataclasses

    # spaces/demo.yaml's model at batch 16 and 64 mel bands has its own table (not the full CRNN's)
    space = load_space(REPO / "spaces" / "demo.yaml")
    configs = [space.sample_config(point.overrides) for point in space.grid_configs()]
    assert {(c.batch_size, c.n_mels) for c in configs} == {(16, 64)}
    for cfg in configs:
        cost = step_rates.cpu_step_seconds(cfg)
        assert cost.source == "CPU demo-model table, batch 16, 64 mel bands" and not cost.derived
        assert cost.seconds == step_rates.CPU_DEMO_B16_M64_STEP_S[step_rates.objective_key(cfg)]
        assert step_rates.validation_seconds(cfg, 100, on_gpu=False) == pytest.approx(0.378)
    # the worst-case band gains cost about three forward-backward passes: the slowest of the grid
    slowest = max(configs, key=lambda c: step_rates.cpu_step_seconds(c).seconds)
    assert slowest.augmentation == "filter_adversarial"
    # at 128 bands the batch-16 table does not apply: the full model's rates, marked as derived
    wide = dataclasses.replace(configs[0], n_mels=128)
    assert step_rates.cpu_step_seconds(wide).derived
