"""The one training configuration every entry point shares.

`TrainConfig` is flat on purpose: its field names are the keys of
`--set key=value` on the command line and of the search spaces
(`spaces/*.yaml`), so a hyperparameter has one name everywhere.

The objective is the paper's `L = L_class + w(t) * L_const + L_reg`
(section 4.1): `augmentation` and `locations` choose the perturbation `d`
of section 4.2, `regularization` chooses between eq. 4 (`none`), the mean
teacher of eq. 1/3/11 (`mt`) and the L2 penalty of eq. 13 (`l2`).

The augmentation registry (`sed.augment`) owns each augmentation's fields, their
ranges and where it can be injected; the named configs are in `sed.presets`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from sed import augment as augmentations
from sed.errors import ConfigError
from sed.eval.scores import VALIDATION_SCORE_NAMES, VALIDATION_SCORES
from sed.nn.model import LOCATION_ALIASES, LOCATIONS, CRNNFields, parse_locations

#: Every value of `augmentation`, in registry order (sed.augment owns each one).
AUGMENTATIONS: tuple[str, ...] = augmentations.NAMES
#: Augmentations defined on the log-mel input only (they go through the linear mel).
INPUT_ONLY_AUGMENTATIONS: tuple[str, ...] = tuple(
    a.name for a in augmentations.REGISTRY.values() if a.locations == ("input",)
)
#: Dropout masks of the student's perturbed training pass (sed.augment.perturb, "One network instance").
CONSISTENCY_DROPOUTS: tuple[str, ...] = ("tied", "independent")
#: How an event's offset time maps to its last target frame (sed.data.desed.encode_strong).
OFFSET_ROUNDINGS: tuple[str, ...] = ("floor", "ceil")
REGULARIZATIONS: tuple[str, ...] = ("none", "mt", "l2")
SELECTIONS: tuple[str, ...] = ("student", "teacher")
#: Validation scores the best epoch of a run can be selected on (higher is better).
SELECTION_METRICS: tuple[str, ...] = VALIDATION_SCORE_NAMES
SELECTION_SPLITS: tuple[str, ...] = ("synthetic_val", "validation")  # where validation scores come from
EMBEDDED_SIZES: tuple[str, ...] = ("tiny", "small", "default", "gap", "scarce", "scarce-eval400", "scarce-far")
#: The training step on a GPU (sed.training.fast_step).
FAST_STEPS: tuple[str, ...] = ("auto", "off", "graph")

_CHOICES: dict[str, tuple[str, ...]] = {  # fields with a fixed set of values
    "regularization": REGULARIZATIONS,
    "consistency_dropout": CONSISTENCY_DROPOUTS,
    "offset_rounding": OFFSET_ROUNDINGS,
    "select": SELECTIONS,
    "selection_split": SELECTION_SPLITS,
    "selection_metric": SELECTION_METRICS,
    "embedded_size": EMBEDDED_SIZES,
    "fast_step": FAST_STEPS,
}

#: 30 dB SNR expressed as a relative norm: ||d|| / ||h|| = 10 ** (-30 / 20).
SNR_30DB_SCALE: float = 10 ** (-30 / 20)


@dataclass(frozen=True)
class TrainConfig(CRNNFields):
    """Everything that defines one training run (defaults: the DCASE 2020 baseline).

    Defaults reproduce the reference (docs/reference.md): batch 24 (6 weak / 12 unlabeled / 6 strong),
    Adam 1e-3, 200 epochs, ramp-up over 50 epochs, consistency weight 2,
    mean teacher with Gaussian input noise, student selected on event F1 of
    the 20 % synthetic split, seed 2020. One exception: the default
    augmentation is `random` (defined at every location), so that a space or
    `--set` can choose `locations` without naming the augmentation; the exact
    reference, with its 30 dB SNR noise on the linear mel (`snr_noise`), is
    the `baseline` preset. The CRNN's fields (cnn_filters, rnn_hidden,
    dropout, ...) are declared once, in `sed.nn.model.CRNNFields`, and inherited.
    """

    # --- objective (paper section 4) ---
    augmentation: str = "random"
    locations: str = "input"
    regularization: str = "mt"
    #: `random`: ||d|| = noise_scale * ||h|| per example (eq. 5) on whatever the
    #: location holds. The default, 10^(-30/20), is a 30 dB *norm ratio* on the
    #: normalised input -- not the reference's noise, which is `snr_noise`.
    noise_scale: float = SNR_30DB_SCALE
    #: `snr_noise`: SNR in dB of the Gaussian noise added per mel band to the linear
    #: mel (the reference baseline's AugmentGaussianNoise, noise_snr 30).
    noise_snr: float = 30.0
    #: `adversarial`/`vat`: ||d|| = epsilon * ||h|| per example (eq. 6-9).
    epsilon: float = 0.1
    #: `vat`: relative size of the finite-difference probe of the power iteration.
    xi: float = 1e-3
    vat_iters: int = 1
    #: `mixup`: lambda ~ Beta(mixup_alpha, mixup_alpha) (eq. 10).
    mixup_alpha: float = 0.2
    #: `filter`, `filter_adversarial`, `filter_vat` (FilterAugment, Nam et al. 2022): the mel
    #: axis cut into `filter_bands` bands of >= `filter_min_width` bins at random edges; gains
    #: in [-filter_db, filter_db] dB, a gain per band (`step`) or at the edges, interpolated
    #: (`linear`). `filter_db` is also the bound of the adversarial/VAT gains.
    filter_bands: int = 3
    filter_min_width: int = 6
    filter_db: float = 6.0
    filter_mode: str = "linear"
    #: Maximum of w(t); the baseline uses 2.
    consistency_weight: float = 2.0
    #: Clip BCE on the weak part only (reference) or on weak + strong parts (docs/design.md).
    weak_loss_on_strong: bool = False
    #: `l2`: L_reg = l2 * sum of squared parameters (eq. 13).
    l2: float = 1e-5
    #: `mt`: EMA alpha = min(1 - 1/(n + 1), ema_decay) at the n-th update, n = 1, 2, ...
    #: (eq. 1; the reference counts the step after its increment: alpha 0.5 first).
    ema_decay: float = 0.999
    #: Dropout masks of the student's perturbed pass (l2 / none): 'tied' replays the
    #: clean pass's masks, so L_const measures the perturbation alone (and an
    #: adversarial d meets the network instance it was searched for);
    #: 'independent' draws new masks (L_const then also penalises dropout noise).
    consistency_dropout: str = "tied"

    # --- optimisation ---
    lr: float = 1e-3
    batch_size: int = 24
    epochs: int = 200
    rampup_epochs: float = 50.0
    seed: int = 2020
    #: Shares of each batch taken by the weak and the strong (synthetic) parts; the
    #: unlabeled part gets the rest (reference and paper 4.1: 1/4 weak, 1/2 unlabeled,
    #: 1/4 strong). Part sizes are floor(batch_size * fraction); a part of size 0 is
    #: left out of the batch (its stream is not read); the strong part needs >= 1 clip.
    weak_fraction: float = 0.25
    strong_fraction: float = 0.25
    #: Cap on steps per epoch (None: an epoch ends when the shortest stream runs out).
    max_steps_per_epoch: int | None = None

    # --- data ---
    #: Dataset root in DESED layout; None = the embedded generated dataset.
    data: str | None = None
    embedded_size: str = "default"
    embedded_seed: int = 0
    skip_missing_audio: bool = False
    #: Where the parts live under `data` (sed.data.layouts): auto (detect DESED 2020 / 2021+),
    #: desed2020, desed2021, or the path of a layout YAML file.
    layout: str = "auto"
    val_fraction: float = 0.2
    split_seed: int = 2020
    #: Last target frame of an event: 'floor' (reference: frames [floor(on/step),
    #: floor(off/step)) ) or 'ceil' (every frame the event overlaps).
    offset_rounding: str = "floor"

    # --- evaluation ---
    threshold: float = 0.5
    median_window: int = 7
    #: Scores computed at every validation besides the event F1 (sed.eval.scores: their cost): `val_psds`
    #: (psds_eval at `val_psds_thresholds` points; the final stage uses 50), `val_psds1` (threshold-free),
    #: `val_frame_ap` (frame average precision, sed.eval.frame_scores: ranks the first epochs).
    compute_val_psds: bool = False
    val_psds_thresholds: int = 10
    compute_val_psds1: bool = False
    compute_val_frame_ap: bool = False
    #: Which model is selected and reported: the student (reference) or the EMA teacher.
    select: str = "student"
    #: The validation score whose best epoch is kept as the run's model (the reference: event
    #: F1). A search sets it to its space's first metric.
    selection_metric: str = "val_macro_f1"
    #: Where the validation scores come from: `synthetic_val` (the held-out synthetic clips, as the
    #: reference and the paper) or `validation` (the recorded part: it sees the synthetic/recorded
    #: gap; its scores then select, so only the public evaluation set stays unbiased).
    selection_split: str = "synthetic_val"

    # --- runtime ---
    device: str = "auto"
    num_threads: int | None = None
    #: CPU only: keep freed host memory for reuse (glibc mallopt; sed/training/host_memory.py):
    #: full-size CPU steps 1.3-1.5x faster for ~0.7 GB more peak RSS. Process-wide once set.
    reuse_host_memory: bool = True
    amp: bool = False
    num_workers: int = 0
    #: Measure the run's energy with CodeCarbon's offline tracker (sed/training/energy.py); the
    #: country (ISO 3166-1 alpha-3) sets its carbon intensity, no network is used.
    track_energy: bool = True
    energy_country: str = "FRA"
    #: The GPU training step (sed/training/fast_step.py): 'graph' = the whole step as one CUDA graph
    #: (no host sync per step), 'off' = eager, 'auto' = graph on CUDA without amp (CPU: always eager).
    fast_step: str = "auto"

    # ------------------------------------------------------------------
    @property
    def location_set(self) -> tuple[str, ...]:
        return parse_locations(self.locations)

    @property
    def has_teacher(self) -> bool:
        return self.regularization == "mt"

    def validate(self) -> TrainConfig:
        """Refuse inconsistent values with a message naming the key and the fix."""
        augmentation = augmentations.get(self.augmentation)
        for key, choices in _CHOICES.items():
            if getattr(self, key) not in choices:
                raise ConfigError(f"{key}={getattr(self, key)!r}: choose one of {list(choices)}")
        parse_locations(self.locations)
        # Every augmentation field's range, whichever augmentation is chosen; then the
        # chosen one's own rules (locations, requirements, cross-field checks).
        for rule in augmentations.field_rules().values():
            rule.check(self)
        augmentation.validate(self)
        for key in ("consistency_weight", "l2"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{key}={value!r} must be a finite number >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay={self.ema_decay!r} must be in [0, 1)")
        if self.regularization == "mt" and not augmentation.perturbs:
            raise ConfigError(
                f"regularization='mt' with augmentation={self.augmentation!r}: the mean-teacher target of "
                "eq. 11 is the teacher on the perturbed input x+d, and it has no d. Use "
                "augmentation=random (the baseline) or regularization=none/l2"
            )
        if self.select == "teacher" and not self.has_teacher:
            raise ConfigError(
                f"select='teacher' needs regularization='mt' (no teacher is built for "
                f"regularization={self.regularization!r}); use select=student"
            )
        for metric, flag in ((s.name, s.flag) for s in VALIDATION_SCORES if s.flag is not None):
            if self.selection_metric == metric and not getattr(self, flag):
                raise ConfigError(
                    f"selection_metric={metric} needs {flag}=true (it is only computed then); "
                    f"set {flag}=true or select on val_macro_f1"
                )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr={self.lr!r} must be > 0")
        if self.batch_size < 4:
            raise ConfigError(
                f"batch_size={self.batch_size} is too small: it is split 1/4 weak, 1/2 unlabeled, "
                "1/4 strong, so it must be >= 4"
            )
        for key in ("weak_fraction", "strong_fraction"):
            value = getattr(self, key)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ConfigError(f"{key}={value!r} must be in [0, 1]")
        if self.weak_fraction + self.strong_fraction > 1.0 + 1e-9:
            raise ConfigError(
                f"weak_fraction + strong_fraction = {self.weak_fraction + self.strong_fraction:g} > 1; "
                "the unlabeled part gets 1 - weak_fraction - strong_fraction of the batch"
            )
        if math.floor(self.batch_size * self.strong_fraction + 1e-9) < 1:
            raise ConfigError(
                f"batch_size={self.batch_size} x strong_fraction={self.strong_fraction} leaves no strong "
                "clip in a batch; raise either"
            )
        if self.epochs < 1:
            raise ConfigError(f"epochs={self.epochs} must be >= 1")
        if self.rampup_epochs < 0:
            raise ConfigError(f"rampup_epochs={self.rampup_epochs} must be >= 0")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ConfigError(f"max_steps_per_epoch={self.max_steps_per_epoch} must be >= 1 or None")
        self.check_model_fields()
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction={self.val_fraction} must be in (0, 1)")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold={self.threshold} must be in (0, 1)")
        if self.median_window < 1:
            raise ConfigError(f"median_window={self.median_window} must be >= 1 (1 = no filter)")
        if self.val_psds_thresholds < 2:
            raise ConfigError(f"val_psds_thresholds={self.val_psds_thresholds} must be >= 2")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device={self.device!r}: use auto, cpu, cuda or cuda:N")
        country = self.energy_country
        if not (isinstance(country, str) and len(country) == 3 and country.isalpha() and country.isupper()):
            raise ConfigError(
                f"energy_country={self.energy_country!r}: give an ISO 3166-1 alpha-3 code in capitals "
                "(FRA, USA, DEU, ...), the country whose carbon intensity CodeCarbon uses"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["cnn_filters"] = list(self.cnn_filters)
        return out


FIELD_TYPES: dict[str, Any] = {f.name: f.type for f in fields(TrainConfig)}

#: Old names of renamed fields, still read (with a FutureWarning) from --set, spaces and stored
#: configs: `val_psds` / `val_psds1` name the validation score columns, the flags are compute_*.
RENAMED_KEYS: dict[str, str] = {"val_psds": "compute_val_psds", "val_psds1": "compute_val_psds1"}


def canonical_key(key: str) -> str:
    """`key`, or its new name if it is a renamed field's old one (with a deprecation warning)."""
    new = RENAMED_KEYS.get(key)
    if new is None:
        return key
    warnings.warn(
        f"config key {key!r} is deprecated: it is now {new!r} ({key} is the name of the validation score); write {new}",
        FutureWarning,
        stacklevel=3,
    )
    return new


def coerce_value(key: str, value: Any) -> Any:
    """Turn a command-line string (or YAML scalar) into the type of TrainConfig field `key`.

    The one coercion of config values: `apply_overrides` (hence `--set`) and
    the search-space parser (`search.space`) both use it.
    """
    default = getattr(TrainConfig(), key)
    annotation = str(FIELD_TYPES[key])
    if isinstance(value, str):
        text = value.strip()
        if "None" in annotation and text.lower() in ("none", "null", ""):
            return None
        if key == "cnn_filters":
            try:
                return tuple(int(v) for v in text.strip("()[] ").split(",") if v.strip())
            except ValueError:
                raise ConfigError(f"cnn_filters={value!r}: give comma-separated ints, e.g. 16,32,64") from None
        if isinstance(default, bool) or annotation.startswith("bool"):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{key}={value!r}: expected true or false")
        if annotation.startswith("int") or isinstance(default, int) and not isinstance(default, bool):
            try:
                return int(text)
            except ValueError:
                try:
                    as_float = float(text)
                except ValueError:
                    raise ConfigError(f"{key}={value!r}: expected an integer") from None
                if as_float.is_integer():
                    return int(as_float)
                raise ConfigError(f"{key}={value!r}: expected an integer") from None
        if annotation.startswith("float") or isinstance(default, float):
            try:
                return float(text)
            except ValueError:
                raise ConfigError(f"{key}={value!r}: expected a number") from None
        return text
    if key == "cnn_filters" and isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r}: expected true or false")
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ConfigError(f"{key}={value!r}: expected an integer")
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={value!r}: expected a number")
    if key == "fast_step" and value is False:
        return "off"  # YAML 1.1 (PyYAML) reads an unquoted `fast_step: off` as false
    if isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{key}={value!r}: expected a string")
    return value


def apply_overrides(config: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    """Return `config` with `overrides` applied, coerced and validated.

    Unknown keys are refused with the list of valid ones.
    """
    updates: dict[str, Any] = {}
    for key, value in overrides.items():
        key = canonical_key(key)
        if key not in FIELD_TYPES:
            close = [name for name in FIELD_TYPES if key.lower() in name or name in key.lower()]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown config key {key!r}{hint}; valid keys: {', '.join(sorted(FIELD_TYPES))}")
        updates[key] = coerce_value(key, value)
    return dataclasses.replace(config, **updates).validate()


def parse_set_arguments(pairs: list[str]) -> dict[str, str]:
    """Parse repeated `--set key=value` arguments."""
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r}: write key=value, e.g. --set epsilon=0.5")
    return {key.strip(): value for key, value in (pair.split("=", 1) for pair in pairs)}


__all__ = [
    "AUGMENTATIONS",
    "CONSISTENCY_DROPOUTS",
    "INPUT_ONLY_AUGMENTATIONS",
    "OFFSET_ROUNDINGS",
    "REGULARIZATIONS",
    "LOCATIONS",
    "LOCATION_ALIASES",
    "ConfigError",
    "TrainConfig",
    "apply_overrides",
    "coerce_value",
    "parse_locations",
    "parse_set_arguments",
]
