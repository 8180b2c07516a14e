"""The trainer learns: a narrow CRNN trained 120 steps beats its untrained self on validation F1.

The slowest test of the trainer (30-40 CPU seconds), kept because every other
test would still pass if training did nothing useful. Marked `dynamics`:
`.ci/run` runs it again under other CPU kernel paths (`ATEN_CPU_CAPABILITY`),
because a recipe that learns only on some kernels is a failure on other machines.

The recipe is the demo's CPU recipe (benchmarks/README.md, "CPU recipe of the
demo") on the `small` embedded dataset (126 synthetic training clips, 34
validation clips: the `tiny` set's 4 validation clips make F1 too coarse):
4 conv blocks 8-16-16-16, BiGRU 16, max pooling, PyTorch's default init,
dropout 0, Adam 0.01 without ramp-up, batches of 4 weak + 4 strong clips,
supervised (preset `none`), 8 epochs of 15 steps, one thread.

Why not the reference's recipe at reduced width (reference init, average
pooling, Adam 0.03, the previous version of this test): it learns on a knife
edge. On an AVX-512 machine its validation F1 stayed at 0.0-0.02 for 8 epochs
while the same code under `ATEN_CPU_CAPABILITY=avx2` or `default` reached
~0.1 (issue #27): last-bit differences between vector kernels decided whether
it learned at all.

Measured for this recipe (issue #27; AMD EPYC with AVX-512, torch 2.14.1,
one thread), best validation F1 over the 8 epochs, per kernel path
(`ATEN_CPU_CAPABILITY`) avx512 (this CPU's default) / avx2 / default:
  seed 2020 (this test): 0.303 / 0.280 / 0.248, untrained 0.005;
  seeds 1, 2, 3: 0.299, 0.266, 0.295 / 0.295, 0.264, 0.253 / 0.293, 0.303,
  0.207, untrained 0.000, 0.021, 0.005.
The 12 trained values lie in 0.21-0.30 and every untrained one below 0.025:
the threshold 0.12 is ~0.1 from both.
"""

from __future__ import annotations

import dataclasses

import pytest

from sed.data.synth import ensure_embedded
from sed.presets import PRESETS
from sed.training.trainer import Trainer, prepare_data

EPOCHS = 8
STEPS = 15
#: Best validation F1 the trained model must reach (trained: 0.21-0.30; untrained: 0.00-0.02).
LEARNED_F1 = 0.12

# slow: the inner loop runs -m "not slow"; dynamics: .ci/run reruns it under other CPU kernel paths
pytestmark = [pytest.mark.slow, pytest.mark.dynamics]


@pytest.mark.timeout(900)  # ~1 min on 2 quiet cores; 7+ min on a shared machine at load 25
def test_a_few_epochs_beat_the_untrained_model_on_validation_f1(session_cache):
    cfg = dataclasses.replace(
        PRESETS["none"],
        embedded_size="small",
        cnn_filters=(8, 16, 16, 16),
        rnn_hidden=16,
        pooling="max",
        weight_init="torch",
        dropout=0.0,
        rampup_epochs=0.0,
        lr=0.01,
        batch_size=8,
        weak_fraction=0.5,
        strong_fraction=0.5,
        max_steps_per_epoch=STEPS,
        median_window=11,
        device="cpu",
        num_threads=1,
    ).validate()
    root = ensure_embedded("small", seed=0, cache_dir=session_cache)
    data = prepare_data(cfg, data_root=root, cache_dir=session_cache, progress=False)
    trainer = Trainer(cfg, data=data, progress=False)
    assert len(data.split("synthetic_val")) == 34 and trainer.steps_per_epoch == STEPS

    untrained = trainer.validate()["val_macro_f1"]
    trainer.fit(EPOCHS)
    history = trainer.history
    f1 = [row["val_macro_f1"] for row in history]
    strong = [row["loss_class_strong"] for row in history]
    weak = [row["loss_class_weak"] for row in history]

    # the losses fall well below their first-epoch values (measured: to 0.43-0.49 and 0.56-0.60 of them) ...
    assert strong[-1] < 0.65 * strong[0] and weak[-1] < 0.8 * weak[0], (strong, weak)
    # ... and the selected model detects events the untrained one does not
    assert untrained < 0.05, untrained
    assert trainer.best_metrics["val_macro_f1"] == max(f1)
    assert max(f1) >= LEARNED_F1, (untrained, f1)
