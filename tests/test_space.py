"""search.space: parsing, define-by-run against real Optuna trials, and every refusal."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import optuna
import pytest

from search.space import SpaceError, config_id, load_space, parse_space
from sed.config import TrainConfig
from sed.presets import PRESETS

REPO = Path(__file__).resolve().parents[1]

BASE = """
name: t
metric: val_macro_f1
mode: max
num_samples: 8
searcher: {kind: optuna-tpe, seed: 0}
scheduler: {kind: asha, max_epochs: 6, grace_period: 2, reduction_factor: 3}
fixed: {regularization: l2, epochs: 6, rampup_epochs: 2}
params:
  augmentation: {choice: [random, adversarial, vat, mixup]}
  locations: {choice: [cnn, rnn, latent]}
  noise_scale: {loguniform: [0.01, 1.0], when: {augmentation: random}}
  epsilon: {loguniform: [0.01, 1.0], when: {augmentation: [adversarial, vat]}}
  mixup_alpha: {uniform: [0.1, 1.0], when: {augmentation: mixup}}
  vat_iters: {int: [1, 3], when: {augmentation: vat}}
  xi: {value: 0.002, when: {augmentation: vat}}
  consistency_weight: {loguniform: [0.1, 10.0]}
  l2: {loguniform: [1e-7, 1e-3], when: {regularization: l2}}
final: {top_k: 3, seeds: [1, 2, 3], epochs: 6}
"""

CONDITIONAL = {
    "noise_scale": "random",
    "epsilon": ("adversarial", "vat"),
    "mixup_alpha": "mixup",
    "vat_iters": "vat",
    "xi": "vat",
}


def space_from(text: str, tmp_path: Path | None = None):
    return parse_space(textwrap.dedent(text), "test_space.yaml")


def edited(**replacements: str) -> str:
    """BASE with whole lines replaced: key -> new line (None deletes)."""
    lines = []
    for line in BASE.splitlines():
        key = line.strip().split(":")[0]
        if key in replacements:
            if replacements[key] is not None:
                lines.append(replacements[key])
        else:
            lines.append(line)
    return "\n".join(lines)


def run_define_by_run(space, n_trials: int, seed: int = 0) -> list[tuple[dict, dict]]:
    """(suggested params, returned constants) of n trials of a real in-memory study."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n_trials):
        trial = study.ask()
        constants = space.define_by_run(trial)
        out.append((dict(trial.params), constants))
        study.tell(trial, 0.5)
    return out


# ----------------------------------------------------------------------------- parsing
def test_parse_base_space_fields():
    space = space_from(BASE)
    assert space.name == "t"
    assert space.metrics == ("val_macro_f1",) and space.metric == "val_macro_f1"
    assert space.num_samples == 8
    assert space.scheduler.max_epochs == 6 and space.scheduler.grace_period == 2
    assert space.scheduler.reduction_factor == 3.0
    assert space.final.top_k == 3 and space.final.seeds == (1, 2, 3)
    assert space.resources.gpu == "auto" and space.resources.cpu == 1.0
    # YAML 1.1 reads 1e-7 (no dot) as text: it is turned into a number
    assert space.params["l2"].low == pytest.approx(1e-7) and space.params["l2"].high == pytest.approx(1e-3)
    assert [p.kind for p in space.params.values()] == [
        "choice",
        "choice",
        "loguniform",
        "loguniform",
        "uniform",
        "int",
        "value",
        "loguniform",
        "loguniform",
    ]
    assert space.constants() == {"regularization": "l2", "epochs": 6, "rampup_epochs": 2}


def test_define_by_run_samples_conditionals_only_when_their_condition_holds():
    space = space_from(BASE)
    seen_augmentations = set()
    for params, constants in run_define_by_run(space, 40):
        aug = params["augmentation"]
        seen_augmentations.add(aug)
        assert params["locations"] in ("cnn", "rnn", "latent")
        assert 0.1 <= params["consistency_weight"] <= 10.0
        # l2's condition is on a fixed key and always true here
        assert 1e-7 <= params["l2"] <= 1e-3
        assert ("noise_scale" in params) == (aug == "random")
        assert ("epsilon" in params) == (aug in ("adversarial", "vat"))
        assert ("mixup_alpha" in params) == (aug == "mixup")
        assert ("vat_iters" in params) == (aug == "vat")
        if "noise_scale" in params:
            assert 0.01 <= params["noise_scale"] <= 1.0
        if "mixup_alpha" in params:
            assert 0.1 <= params["mixup_alpha"] <= 1.0
        if "vat_iters" in params:
            assert isinstance(params["vat_iters"], int) and 1 <= params["vat_iters"] <= 3
        # `value:` params are constants returned to Ray, never suggested
        assert "xi" not in params
        expected = {"regularization": "l2", "epochs": 6, "rampup_epochs": 2}
        if aug == "vat":
            expected["xi"] = 0.002
        assert constants == expected
        # the sampled config is a valid TrainConfig carrying the sampled values
        cfg = space.sample_config({**params, **constants})
        assert isinstance(cfg, TrainConfig)
        assert cfg.augmentation == aug and cfg.regularization == "l2" and cfg.epochs == 6
        if aug == "random":
            assert cfg.noise_scale == pytest.approx(params["noise_scale"])
    assert seen_augmentations == {"random", "adversarial", "vat", "mixup"}


def test_conditional_on_fixed_value_that_does_not_hold_is_never_sampled():
    text = edited(fixed="fixed: {regularization: mt, epochs: 6, rampup_epochs: 2}")
    text = text.replace(
        "  l2: {loguniform: [1e-7, 1e-3], when: {regularization: l2}}",
        "  l2: {loguniform: [1e-7, 1e-3], when: {regularization: [l2, none]}}",
    )
    # regularization is fixed to mt, so a condition that can never hold is refused ...
    with pytest.raises(SpaceError, match=r"params\.l2\.when\.regularization.*can never occur"):
        space_from(text)
    # ... while a condition on an earlier choice param is honoured per trial
    text = edited(fixed="fixed: {epochs: 6, rampup_epochs: 2}").replace(
        "  locations: {choice: [cnn, rnn, latent]}",
        "  locations: {choice: [cnn, rnn, latent]}\n  regularization: {choice: [none, l2]}",
    )
    space = space_from(text)
    results = run_define_by_run(space, 30, seed=3)
    assert {p["regularization"] for p, _ in results} == {"none", "l2"}
    for params, _ in results:
        assert ("l2" in params) == (params["regularization"] == "l2")


def test_tpe_sampler_runs_define_by_run():
    space = space_from(BASE)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
    for _ in range(8):
        trial = study.ask()
        space.define_by_run(trial)
        study.tell(trial, float(trial.params.get("consistency_weight", 0)))
    assert len(study.trials) == 8


def test_int_log_and_value_list():
    text = """
    num_samples: 2
    scheduler: {kind: fifo, max_epochs: 2}
    fixed: {regularization: l2}
    params:
      vat_iters: {int: [1, 8], log: true}
      cnn_filters: {value: [8, 16, 16]}
    """
    space = space_from(text)
    params, constants = run_define_by_run(space, 1)[0]
    assert 1 <= params["vat_iters"] <= 8
    assert constants["cnn_filters"] == [8, 16, 16]
    assert space.sample_config({**params, **constants}).cnn_filters == (8, 16, 16)
    assert space.name == "test_space" and space.scheduler.kind == "fifo"


def test_metric_list_and_val_psds():
    text = edited(
        metric="metric: [val_macro_f1, val_psds]",
        fixed="fixed: {regularization: l2, epochs: 6, compute_val_psds: true, rampup_epochs: 2}",
    )
    space = space_from(text)
    assert space.metrics == ("val_macro_f1", "val_psds") and space.metric == "val_macro_f1"


def test_grid_of_presets_and_configs():
    text = """
    searcher: {kind: grid}
    scheduler: {kind: fifo, max_epochs: 3}
    presets: all
    fixed: {embedded_size: tiny, rampup_epochs: 1}
    final: {top_k: 9, seeds: [1], epochs: 3}
    """
    space = space_from(text)
    assert space.is_grid and space.num_samples == len(PRESETS) == 9
    labels = [p.label for p in space.grid_configs()]
    assert labels == list(PRESETS)
    for point in space.grid_configs():
        cfg = space.sample_config(point.overrides)
        preset = PRESETS[point.label]
        for key in ("augmentation", "locations", "regularization", "noise_scale", "epsilon", "consistency_weight"):
            assert getattr(cfg, key) == getattr(preset, key), (point.label, key)
        assert cfg.embedded_size == "tiny" and cfg.epochs == 3

    text = """
    searcher: {kind: grid}
    scheduler: {kind: fifo, max_epochs: 2}
    configs:
      - {name: a, augmentation: vat, epsilon: 0.3, regularization: l2}
      - {name: b, augmentation: mixup, regularization: none}
    params:
      locations: {choice: [input, latent]}
    """
    space = space_from(text)
    labels = [p.label for p in space.grid_configs()]
    assert labels == ["a/locations=input", "a/locations=latent", "b/locations=input", "b/locations=latent"]
    assert space.grid_configs()[1].overrides == {
        "augmentation": "vat",
        "epsilon": 0.3,
        "regularization": "l2",
        "locations": "latent",
    }


def test_config_id_ignores_seed_epochs_and_meta():
    a = {"augmentation": "vat", "epsilon": 0.3, "seed": 1, "epochs": 2, "_label": "x"}
    b = {"epsilon": 0.3, "augmentation": "vat", "seed": 7, "epochs": 9}
    assert config_id(a) == config_id(b)
    assert config_id(a) != config_id({**b, "epsilon": 0.31})


def test_with_overrides():
    space = space_from(BASE).with_overrides(num_samples=4, max_epochs=2)
    assert space.num_samples == 4
    assert space.scheduler.max_epochs == 2 and space.scheduler.grace_period == 2
    assert space.final.epochs == 2 and space.constants()["epochs"] == 2
    with pytest.raises(SpaceError, match="final.top_k=3 is larger than num_samples=2"):
        space_from(BASE).with_overrides(num_samples=2)


@pytest.mark.parametrize("name", ["latent", "input", "all", "table1", "table1-short", "demo"])
def test_shipped_spaces_load(name):
    space = load_space(REPO / "spaces" / f"{name}.yaml")
    assert space.name == name
    text = (REPO / "spaces" / f"{name}.yaml").read_text()
    assert text.lstrip().startswith("#"), "each space file starts with a comment saying what it explores"
    if not space.is_grid:
        params, constants = run_define_by_run(space, 5)[0]
        space.sample_config({**params, **constants})
    elif name == "demo":  # one trial per family, every one on 64 mel bands
        labels = [p.label for p in space.grid_configs()]
        assert labels == ["filter-adversarial", "random-latent", "mixup-latent"]
        assert {space.sample_config(p.overrides).n_mels for p in space.grid_configs()} == {64}
    else:
        assert [p.label for p in space.grid_configs()] == list(PRESETS)


def test_table1_runs_the_papers_protocol_and_the_short_budget_says_so():
    paper = load_space(REPO / "spaces" / "table1.yaml")
    assert paper.scheduler.max_epochs == 200 and paper.final.epochs == 200
    assert paper.constants()["rampup_epochs"] == 50
    short = load_space(REPO / "spaces" / "table1-short.yaml")
    assert short.scheduler.max_epochs == 30 and short.constants()["rampup_epochs"] == 8
    assert (
        "short" in short.description.lower()
        and "NOT the\n# paper's protocol" in (REPO / "spaces" / "table1-short.yaml").read_text()
    )


# ----------------------------------------------------------------------------- refusals
REFUSALS = [
    # (description, edited text, regex the message must match)
    (
        "unknown top-level key",
        BASE + "\nschedular: {kind: asha}\n",
        r"test_space\.yaml: schedular: unknown key \(did you mean 'scheduler'\?\)",
    ),
    (
        "unknown parameter key (not a TrainConfig field)",
        BASE.replace("  consistency_weight:", "  epsilonn: {uniform: [0, 1]}\n  consistency_weight:"),
        r"params\.epsilonn: not a TrainConfig field \(did you mean 'epsilon'\?\)",
    ),
    (
        "unknown key inside a parameter",
        BASE.replace("{loguniform: [0.1, 10.0]}", "{loguniform: [0.1, 10.0], step: 2}"),
        r"params\.consistency_weight\.step: unknown key",
    ),
    (
        "unknown fixed key",
        edited(fixed="fixed: {regularisation: l2, epochs: 6, rampup_epochs: 2}"),
        r"fixed\.regularisation: not a TrainConfig field \(did you mean 'regularization'\?\)",
    ),
    (
        "wrong type: bound is text",
        BASE.replace("{uniform: [0.1, 1.0]", "{uniform: [low, 1.0]"),
        r"params\.mixup_alpha\.uniform: expected a finite number, got 'low'",
    ),
    (
        "wrong type: params not a mapping",
        BASE.replace("  consistency_weight: {loguniform: [0.1, 10.0]}", "  consistency_weight: 3"),
        r"params\.consistency_weight: expected a mapping",
    ),
    ("wrong type: num_samples", edited(num_samples="num_samples: many"), r"num_samples: expected an integer"),
    (
        "wrong type: fixed value",
        edited(fixed="fixed: {regularization: l2, epochs: 6, dropout: lots, rampup_epochs: 2}"),
        r"fixed: .*dropout",
    ),
    (
        "empty choice",
        BASE.replace("{choice: [cnn, rnn, latent]}", "{choice: []}"),
        r"params\.locations\.choice: the list of choices is empty",
    ),
    (
        "two distributions",
        BASE.replace("{loguniform: [0.1, 10.0]}", "{loguniform: [0.1, 10.0], uniform: [0, 1]}"),
        r"give exactly one distribution",
    ),
    (
        "low > high",
        BASE.replace("{uniform: [0.1, 1.0]", "{uniform: [1.0, 0.1]"),
        r"params\.mixup_alpha\.uniform: low 1\.0 > high 0\.1",
    ),
    (
        "loguniform bound <= 0",
        BASE.replace("{loguniform: [0.1, 10.0]}", "{loguniform: [0.0, 10.0]}"),
        r"params\.consistency_weight\.loguniform: loguniform bounds must be > 0",
    ),
    (
        "int with non-integer bounds",
        BASE.replace("{int: [1, 3]", "{int: [1.5, 3]"),
        r"params\.vat_iters\.int: int bounds must be integers",
    ),
    (
        "uniform on an int field",
        BASE.replace("{int: [1, 3]", "{uniform: [1, 3]"),
        r"params\.vat_iters\.uniform: TrainConfig\.vat_iters is int",
    ),
    (
        "unknown augmentation",
        BASE.replace("[random, adversarial, vat, mixup]", "[random, adverserial]"),
        r"params\.augmentation\.choice: unknown augmentation 'adverserial' \(did you mean 'adversarial'\?\)",
    ),
    (
        "unknown location",
        BASE.replace("[cnn, rnn, latent]", "[cnn, lstm]"),
        r"params\.locations\.choice: unknown location 'lstm'",
    ),
    (
        "unknown regularization (fixed)",
        edited(fixed="fixed: {regularization: dropout, epochs: 6, rampup_epochs: 2}"),
        r"fixed\.regularization: unknown regularization 'dropout'",
    ),
    (
        "unknown value in a when",
        BASE.replace("when: {augmentation: mixup}", "when: {augmentation: mix}"),
        r"params\.mixup_alpha\.when\.augmentation: unknown augmentation 'mix'",
    ),
    (
        "when names a later param",
        BASE.replace("  augmentation: {choice: [random, adversarial, vat, mixup]}\n", "").replace(
            "  consistency_weight:",
            "  augmentation: {choice: [random, adversarial, vat, mixup]}\n  consistency_weight:",
        ),
        r"params\.noise_scale\.when\.augmentation: 'augmentation' is a parameter listed later",
    ),
    (
        "invalid value for apply_overrides",
        BASE.replace("{uniform: [0.1, 1.0]", "{uniform: [-1.0, 1.0]"),
        r"params\.mixup_alpha\.uniform: bound -1\.0 is not valid: mixup_alpha=-1\.0 must be > 0",
    ),
    (
        "invalid combination",
        edited(fixed="fixed: {epochs: 6, rampup_epochs: 2}")
        .replace("[random, adversarial, vat, mixup]", "[random, adversarial, vat, mixup, none]")
        .replace(
            "  locations: {choice: [cnn, rnn, latent]}",
            "  locations: {choice: [cnn, rnn, latent]}\n  regularization: {choice: [mt, l2]}",
        ),
        r"the combination augmentation='none'.*regularization='mt' is not a valid config",
    ),
    (
        "metric not reported",
        edited(metric="metric: eval_psds"),
        r"metric: 'eval_psds' is not reported during the search",
    ),
    (
        "val_psds without compute_val_psds: true",
        edited(metric="metric: val_psds"),
        r"metric: val_psds is only reported when it is computed at every validation \(psds_eval .*\); "
        r"add `compute_val_psds: true` under fixed",
    ),
    (
        "rung metric without its flag",
        edited(scheduler="scheduler: {kind: asha, max_epochs: 6, grace_period: 2, rung_metric: val_frame_ap}"),
        r"scheduler\.rung_metric: val_frame_ap is only reported when .*; add `compute_val_frame_ap: true` under fixed",
    ),
    (
        "unknown rung metric",
        edited(scheduler="scheduler: {kind: asha, max_epochs: 6, grace_period: 2, rung_metric: eval_psds1}"),
        r"scheduler\.rung_metric: 'eval_psds1'; choose a validation score from \['val_macro_f1'",
    ),
    (
        "rung metric with fifo",
        edited(scheduler="scheduler: {kind: fifo, max_epochs: 6, rung_metric: val_frame_ap}"),
        r"scheduler\.rung_metric: only applies to kind: asha",
    ),
    ("mode", edited(mode="mode: maximize"), r"mode: 'maximize': use max or min"),
    (
        "top_k > num_samples",
        edited(final="final: {top_k: 9, seeds: [1], epochs: 6}"),
        r"final\.top_k: 9 is larger than num_samples=8",
    ),
    (
        "YAML syntax error",
        BASE.replace("mode: max", "mode: [max"),
        r"test_space\.yaml: line \d+, column \d+: YAML syntax error",
    ),
    (
        "epochs searched",
        BASE.replace("  consistency_weight:", "  epochs: {int: [1, 5]}\n  consistency_weight:"),
        r"params\.epochs: the number of epochs is set by scheduler\.max_epochs",
    ),
    (
        "fixed epochs differ",
        edited(fixed="fixed: {regularization: l2, epochs: 4}"),
        r"fixed\.epochs: 4 differs from scheduler\.max_epochs 6",
    ),
    (
        "param also fixed",
        edited(fixed="fixed: {regularization: l2, epochs: 6, locations: cnn, rampup_epochs: 2}"),
        r"params\.locations: is also under fixed",
    ),
    ("searcher kind", edited(searcher="searcher: {kind: hyperopt}"), r"searcher\.kind: 'hyperopt'"),
    (
        "skip_repeats not a boolean",
        edited(searcher="searcher: {kind: optuna-tpe, skip_repeats: 1}"),
        r"searcher\.skip_repeats: expected true or false, got 1$",
    ),
    (
        "skip_repeats on a grid",
        "searcher: {kind: grid, skip_repeats: true}\nscheduler: {kind: fifo, max_epochs: 2}\npresets: [baseline]\n",
        r"searcher\.skip_repeats: a grid runs each of its configurations once already",
    ),
    (
        "grace > max",
        edited(scheduler="scheduler: {kind: asha, max_epochs: 6, grace_period: 8}"),
        r"scheduler\.grace_period: 8 > max_epochs 6",
    ),
    (
        "reduction factor",
        edited(scheduler="scheduler: {kind: asha, max_epochs: 6, reduction_factor: 1}"),
        r"scheduler\.reduction_factor: 1 must be > 1",
    ),
    (
        "grid with continuous param",
        edited(searcher="searcher: {kind: grid}", num_samples=None),
        r"params\.noise_scale: loguniform ranges cannot be enumerated by searcher\.kind: grid",
    ),
    (
        "unknown preset",
        "searcher: {kind: grid}\nscheduler: {kind: fifo, max_epochs: 2}\npresets: [baseline, vat-latent]\n",
        r"presets: unknown preset 'vat-latent'",
    ),
    (
        "preset clashes with fixed",
        "searcher: {kind: grid}\nscheduler: {kind: fifo, max_epochs: 2}\npresets: [baseline]\nfixed: {augmentation: vat}\n",
        r"fixed\.augmentation: preset 'baseline' sets augmentation itself",
    ),
    (
        "choice with a list value",
        BASE.replace("[cnn, rnn, latent]", "[[cnn], rnn]"),
        r"params\.locations\.choice: choice \['cnn'\] is not a scalar",
    ),
    ("negative gpu", BASE + "resources: {cpu: 1, gpu: -1}\n", r"resources\.gpu: -1 must be >= 0"),
    ("duplicate seeds", edited(final="final: {top_k: 2, seeds: [1, 1]}"), r"final\.seeds: duplicate seeds"),
    ("not a mapping", "- a\n- b\n", r"expected a YAML mapping"),
    ("missing num_samples", edited(num_samples=None), r"num_samples: missing"),
]


@pytest.mark.parametrize("description,text,pattern", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_name_file_key_and_fix(description, text, pattern):
    with pytest.raises(SpaceError, match=pattern) as info:
        space_from(text)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("test_space.yaml")


def test_missing_file_and_yaml_line(tmp_path):
    with pytest.raises(SpaceError, match="no such space file"):
        load_space(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nparams:\n  epsilon: {uniform: [0, 1]\n  l2: 3\n")
    with pytest.raises(SpaceError) as info:
        load_space(bad)
    message = str(info.value)
    assert str(bad) in message and "line 4" in message and "YAML syntax error" in message


def test_loading_does_not_start_ray():
    import sys

    space_from(BASE)
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()
    assert math.isfinite(space_from(BASE).params["epsilon"].high)


# ----------------------------------------------------------------------------- sed.config's rules
def test_numbers_yaml_left_as_text_are_read_by_sed_coerce_value():
    # YAML 1.1 reads 3e-4 (no dot) as text; the space reads it as `--set lr=3e-4` would
    from sed.config import coerce_value

    space = space_from(
        edited(fixed="fixed: {regularization: l2, epochs: 6, lr: 3e-4, max_steps_per_epoch: 2e0, rampup_epochs: 2}")
    )
    assert space.fixed["lr"] == coerce_value("lr", "3e-4") == 3e-4 and isinstance(space.fixed["lr"], float)
    assert space.fixed["max_steps_per_epoch"] == coerce_value("max_steps_per_epoch", "2e0") == 2
    assert isinstance(space.fixed["max_steps_per_epoch"], int)
    # everything else stays as written: an int for a float field, comma text in a choice
    space = space_from(edited(fixed="fixed: {regularization: l2, epochs: 6, rampup_epochs: 2}"))
    assert space.fixed["rampup_epochs"] == 2 and isinstance(space.fixed["rampup_epochs"], int)
    assert space.sample_config({}).rampup_epochs == 2.0
    filters = "  cnn_filters: {choice: ['4,8', '4,8,8']}\n"
    space = space_from(BASE.replace("  consistency_weight:", filters + "  consistency_weight:"))
    assert space.params["cnn_filters"].choices == ("4,8", "4,8,8")


def test_locations_are_checked_by_sed_parse_locations_with_a_hint():
    hint = r"params\.locations\.choice: unknown location 'cnnn' \(did you mean 'cnn'\?\); use a '\+'-joined subset"
    with pytest.raises(SpaceError, match=hint):
        space_from(BASE.replace("[cnn, rnn, latent]", "[cnn, input+cnnn]"))
    space = space_from(BASE.replace("[cnn, rnn, latent]", "[cnn, 'input+rnn', 'rnn,cnn']"))
    assert space.params["locations"].choices == ("cnn", "input+rnn", "rnn,cnn")


def test_the_printed_comparison_with_the_paper_names_its_budget():
    from search.console import budget_line

    paper = budget_line(load_space(REPO / "spaces" / "table1.yaml"))
    short = budget_line(load_space(REPO / "spaces" / "table1-short.yaml"))
    assert "200 epochs per final run" in paper and "ramp-up over 50 epochs" in paper
    assert "(the paper protocol" in paper
    assert "30 epochs per final run" in short and "NOT the paper protocol" in short


# ----------------------------------------------------------------------------- realistic augmentations (#16)
def test_the_realistic_space_parses_and_samples_valid_configs():
    from sed.augment import REGISTRY

    space = load_space(REPO / "spaces" / "realistic.yaml")
    assert space.name == "realistic" and (REPO / "spaces" / "realistic.yaml").read_text().startswith("#")
    choices = set(space.params["augmentation"].possible_values())
    assert {
        "random",
        "adversarial",
        "filter",
        "filter_adversarial",
        "filter_vat",
        "snr_noise",
        "snr_adversarial",
    } == choices
    seen = set()
    for params, constants in run_define_by_run(space, 40, seed=1):
        cfg = space.sample_config({**params, **constants})
        seen.add(cfg.augmentation)
        reads = set(REGISTRY[cfg.augmentation].field_names)
        # a sampled augmentation field is one the chosen augmentation reads (the registry's)
        for name in params:
            if name in (
                "filter_db",
                "filter_bands",
                "filter_min_width",
                "filter_mode",
                "noise_snr",
                "noise_scale",
                "epsilon",
                "vat_iters",
            ):
                assert name in reads, (cfg.augmentation, name)
        if cfg.augmentation in ("random", "adversarial"):
            assert set(cfg.location_set) <= {"cnn", "rnn"}
        else:
            assert cfg.location_set == ("input",)
    assert len(seen) >= 5


REALISTIC_BASE = """
name: t
num_samples: 4
scheduler: {kind: fifo, max_epochs: 2}
fixed: {regularization: l2}
params:
  augmentation: {choice: [random, filter]}
  locations: {choice: [cnn, input]}
{extra}"""


@pytest.mark.parametrize(
    "text, pattern",
    [
        (
            BASE.replace("when: {augmentation: [adversarial, vat]}", "when: {augmentation: [adversarial, filter]}"),
            r"params\.epsilon\.when\.augmentation: epsilon is not read by augmentation 'filter' \(it is read by "
            r"\['adversarial', 'vat'\]\); list only augmentations that use it",
        ),
        (
            REALISTIC_BASE.replace("{extra}", ""),
            r"the combination augmentation='filter', locations='cnn' is not a valid config: augmentation='filter' "
            r"is defined at \['input'\] only",
        ),
        (
            REALISTIC_BASE.replace("{extra}", "  filter_bands: {int: [2, 30], when: {augmentation: filter}}\n").replace(
                "[cnn, input]", "[input]"
            ),
            r"params\.filter_bands\.int: bound 30 is not valid: filter_bands=30 x filter_min_width=6 = 180 mel bins",
        ),
    ],
)
def test_realistic_refusals_come_from_the_registry(text, pattern):
    with pytest.raises(SpaceError, match=pattern):
        space_from(text)


def test_a_grid_runs_realistic_presets_by_name_and_all_stays_table1():
    from sed.presets import REALISTIC_PRESETS

    text = "searcher: {kind: grid}\nscheduler: {kind: fifo, max_epochs: 2}\npresets: [baseline, filter-vat-input-l2]\n"
    space = space_from(text)
    assert [p.label for p in space.grid_configs()] == ["baseline", "filter-vat-input-l2"]
    point = space.grid[1].overrides
    assert point["augmentation"] == "filter_vat" and point["regularization"] == "l2"
    assert space_from(text.replace("[baseline, filter-vat-input-l2]", "all")).num_samples == len(PRESETS) == 9
    assert not set(REALISTIC_PRESETS) & set(PRESETS)
