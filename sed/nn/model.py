"""The DCASE 2020 task 4 baseline CRNN, with named injection points.

Architecture (docs/reference.md, "CRNN"): 7 blocks of Conv2d 3x3 -> BatchNorm2d
(eps 1e-3, momentum 0.99: the reference passes Keras' momentum to PyTorch,
so running statistics are 99 % the latest batch) -> gated unit
`Linear_c(x) * sigmoid(x)` -> Dropout 0.5 -> AvgPool2d (the paper says max
pooling, the code averages); filters 16-32-64-128-128-128-128; pooling
(time, freq) (2,2), (2,2), then (1,2) five times -> [B, 157, 128]. Then a
2-layer BiGRU with 128 units per direction -> Dropout 0.5 -> [B, 157, 256].
Heads: strong = sigmoid(Linear(256, C)) per frame; attention =
softmax over the *class* axis of Linear(256, C), clamped to [1e-7, 1];
weak = sum_t(strong * att) / sum_t(att). Default: 1,112,420 parameters.

The gated unit's per-position linear map over channels is computed as a
1x1 convolution: the same parameters (c*c + c), the same function, and no
permute/copy of the activation in channels-last order.

Injection points (docs/design.md, paper Figure 1): `input` ([B, 628, 128]
log-mel), `cnn` (CNN output [B, 157, F]) and `rnn` (RNN output after
dropout, [B, 157, 2H]). `CRNN.run(h, start, hooks)` runs the network from any
point with a function applied to the activation at chosen points, which is
all the perturbations of `sed.augment.perturb` need.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from sed.constants import N_MELS
from sed.errors import ConfigError
from sed.nn.dropout import Dropout

Hook = Callable[[Tensor], Tensor]


#: Injection points of the CRNN, in the order the forward pass meets them (paper Figure 1).
LOCATIONS: tuple[str, ...] = ("input", "cnn", "rnn")
#: Named location sets: the paper's Figure 1 calls {cnn, rnn} "latent".
LOCATION_ALIASES: dict[str, tuple[str, ...]] = {"latent": ("cnn", "rnn"), "all": LOCATIONS}
GATED_UNITS: tuple[str, ...] = ("linear_sigmoid", "glu", "none")
#: Bounds of `n_mels` (the mel filterbank of 2048-point frames at 16 kHz has 1025 bins).
MIN_MELS, MAX_MELS = 8, 256


def parse_locations(value: str) -> tuple[str, ...]:
    """`'latent'` -> ('cnn', 'rnn'); `'input+rnn'` -> ('input', 'rnn'), in network order."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"locations={value!r}: give a non-empty '+'-joined subset of {list(LOCATIONS)} "
            f"or one of {sorted(LOCATION_ALIASES)} (e.g. locations=latent)"
        )
    names: set[str] = set()
    for part in value.replace(",", "+").split("+"):
        part = part.strip()
        if part in LOCATION_ALIASES:
            names.update(LOCATION_ALIASES[part])
        elif part in LOCATIONS:
            names.add(part)
        else:
            raise ConfigError(
                f"locations={value!r}: unknown location {part!r}; use a '+'-joined subset of "
                f"{list(LOCATIONS)} or one of {sorted(LOCATION_ALIASES)}"
            )
    return tuple(loc for loc in LOCATIONS if loc in names)


@dataclass(frozen=True)
class CRNNFields:
    """The CRNN hyperparameters a run sets; declared once, here.

    `sed.config.TrainConfig` inherits them (so they are `--set` and search
    keys under these names) and `CRNNConfig` adds what the data decides
    (classes, mel bands). Defaults reproduce the reference exactly.
    """

    cnn_filters: tuple[int, ...] = (16, 32, 64, 128, 128, 128, 128)
    #: Log-mel bands of the input (the features are built with this many; 128 = the reference).
    #: Fewer bands halve the first blocks' work (the CPU demo uses 64); a data field: every
    #: run of one dataset and feature cache reads features built for its own value.
    n_mels: int = N_MELS
    rnn_hidden: int = 128
    rnn_layers: int = 2
    dropout: float = 0.5
    #: 'avg' (the reference code) or 'max' (the paper's text).
    pooling: str = "avg"
    #: PyTorch's convention: the reference passes Keras' 0.99, so running stats are 99 % the latest batch.
    bn_momentum: float = 0.99
    #: BatchNorm eps of the reference (1e-3). With narrow test/demo models the
    #: conv outputs' variance falls below 1e-3 and BN stops normalising; 1e-5
    #: (PyTorch's default) lets such models learn in a few hundred steps.
    bn_eps: float = 1e-3
    #: 'linear_sigmoid' (reference: Linear_c(x) * sigmoid(x)), 'glu' (channel-split GLU,
    #: halves the channels so the conv doubles them), or 'none' (ReLU).
    gated_unit: str = "linear_sigmoid"
    #: 'reference' (`reset_parameters`: docs/reference.md "Init": xavier conv, N(1, 0.02) BN,
    #: orthogonal GRU, N(0, 0.01) linears incl. the gated unit's channel map) or 'torch'
    #: (PyTorch's default initialisation of every layer). With the reference init every
    #: block of a narrow CRNN outputs std ~0.02 and BN (eps 1e-3) stops normalising.
    weight_init: str = "reference"
    #: 'bits': p = 0.5 dropout masks from random bytes (same distribution, cheaper); 'torch'.
    dropout_impl: str = "bits"
    #: Run the CNN in channels-last layout (much faster oneDNN convolutions for the
    #: few-channel, large-map first blocks on the CPU); same function.
    channels_last: bool = True

    def model_fields(self) -> dict[str, object]:
        """This object's `CRNNFields` values, by name."""
        return {f.name: getattr(self, f.name) for f in fields(CRNNFields)}

    def check_model_fields(self) -> None:
        """Refuse inconsistent model values with a message naming the key and the fix."""
        if len(self.cnn_filters) < 2 or any(int(f) < 1 for f in self.cnn_filters):
            raise ConfigError(f"cnn_filters={self.cnn_filters!r}: give at least 2 positive widths, e.g. 16,32,64")
        if not MIN_MELS <= self.n_mels <= MAX_MELS:
            raise ConfigError(
                f"n_mels={self.n_mels}: give between {MIN_MELS} and {MAX_MELS} log-mel bands (128 = the reference)"
            )
        if 2 ** len(self.cnn_filters) > self.n_mels:
            raise ConfigError(
                f"cnn_filters has {len(self.cnn_filters)} blocks, each pooling frequency by 2: too many for "
                f"n_mels={self.n_mels} (at most {self.n_mels.bit_length() - 1}); drop blocks or raise n_mels"
            )
        if self.rnn_hidden < 1 or self.rnn_layers < 1:
            raise ConfigError("rnn_hidden and rnn_layers must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1)")
        if self.pooling not in ("avg", "max"):
            raise ConfigError(f"pooling={self.pooling!r}: choose 'avg' (reference code) or 'max' (paper text)")
        if self.gated_unit not in GATED_UNITS:
            raise ConfigError(f"gated_unit={self.gated_unit!r}: choose 'linear_sigmoid' (reference), 'glu' or 'none'")
        if self.weight_init not in ("reference", "torch"):
            raise ConfigError(f"weight_init={self.weight_init!r}: choose 'reference' or 'torch'")
        if self.dropout_impl not in ("bits", "torch"):
            raise ConfigError(f"dropout_impl={self.dropout_impl!r}: choose 'bits' or 'torch'")
        if not 0.0 < self.bn_eps < 1.0:
            raise ConfigError(f"bn_eps={self.bn_eps} must be in (0, 1)")
        if not 0.0 < self.bn_momentum <= 1.0:
            raise ConfigError(f"bn_momentum={self.bn_momentum} must be in (0, 1]")


@dataclass(frozen=True)
class CRNNConfig(CRNNFields):
    """Architecture hyperparameters: the run's `CRNNFields` plus what the data fixes (classes)."""

    n_classes: int = 10
    #: (time, freq) pooling per block; None = (2,2), (2,2), then (1,2).
    cnn_pooling: tuple[tuple[int, int], ...] | None = None

    @classmethod
    def from_fields(cls, run: CRNNFields, n_classes: int) -> CRNNConfig:
        """The model of a run's configuration (any `CRNNFields`, e.g. a TrainConfig)."""
        values: dict[str, Any] = run.model_fields()
        values["cnn_filters"] = tuple(int(f) for f in run.cnn_filters)
        return cls(**values, n_classes=n_classes)

    def pools(self) -> tuple[tuple[int, int], ...]:
        if self.cnn_pooling is not None:
            if len(self.cnn_pooling) != len(self.cnn_filters):
                raise ValueError("cnn_pooling needs one (time, freq) pair per entry of cnn_filters")
            return tuple(tuple(p) for p in self.cnn_pooling)  # type: ignore[misc]
        return tuple((2, 2) if i < 2 else (1, 2) for i in range(len(self.cnn_filters)))


class GatedUnit(nn.Module):
    """`Linear_c(x) * sigmoid(x)` over the channel axis of [B, C, T, F] (reference quirk).

    The linear map is a 1x1 convolution: identical function and parameter count.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x) * torch.sigmoid(x)


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int], config: CRNNConfig) -> None:
        super().__init__()
        conv_out = 2 * c_out if config.gated_unit == "glu" else c_out
        self.conv = nn.Conv2d(c_in, conv_out, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(conv_out, eps=config.bn_eps, momentum=config.bn_momentum)
        if config.gated_unit == "linear_sigmoid":
            self.gate: nn.Module = GatedUnit(c_out)
        elif config.gated_unit == "glu":
            self.gate = nn.GLU(dim=1)
        else:
            self.gate = nn.ReLU()
        self.dropout = Dropout(config.dropout, config.dropout_impl)
        self.pool: nn.Module = nn.AvgPool2d(pool) if config.pooling == "avg" else nn.MaxPool2d(pool)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.dropout(self.gate(self.bn(self.conv(x)))))


class CNN(nn.Module):
    """[B, T, F] log-mel -> [B, T/4, C_last * F_left] (time pooled by 4)."""

    def __init__(self, config: CRNNConfig) -> None:
        super().__init__()
        pools = config.pools()
        chans = (1,) + tuple(config.cnn_filters)
        self.blocks = nn.Sequential(*(ConvBlock(chans[i], chans[i + 1], pools[i], config) for i in range(len(pools))))
        freq = config.n_mels
        for _, pool_f in pools:
            freq //= pool_f
        if freq < 1:
            raise ValueError(
                f"cnn_filters has {len(pools)} blocks pooling frequency by 2: too many for {config.n_mels} mel bands"
            )
        self.out_features = chans[-1] * freq
        self.channels_last = config.channels_last
        if self.channels_last:
            self.blocks.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        h = x.unsqueeze(1)
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        h = self.blocks(h)  # [B, C, T', F']
        b, c, t, f = h.shape
        if f == 1:
            return h.squeeze(-1).transpose(1, 2)  # [B, T', C]
        return h.permute(0, 2, 1, 3).reshape(b, t, c * f)


class RNN(nn.Module):
    """BiGRU (no inter-layer dropout) then dropout: [B, T, F] -> [B, T, 2H]."""

    def __init__(self, n_in: int, config: CRNNConfig) -> None:
        super().__init__()
        self.gru = nn.GRU(n_in, config.rnn_hidden, num_layers=config.rnn_layers, batch_first=True, bidirectional=True)
        self.dropout = Dropout(config.dropout, config.dropout_impl)
        self.out_features = 2 * config.rnn_hidden

    def forward(self, h: Tensor) -> Tensor:
        out, _ = self.gru(h)
        return self.dropout(out)


class Heads(nn.Module):
    """Strong head and class-axis attention pooling for the weak head."""

    def __init__(self, n_in: int, n_classes: int) -> None:
        super().__init__()
        self.strong = nn.Linear(n_in, n_classes)
        self.attention = nn.Linear(n_in, n_classes)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        strong = torch.sigmoid(self.strong(h))  # [B, T, C]
        att = torch.softmax(self.attention(h), dim=-1).clamp(1e-7, 1.0)  # softmax over classes
        weak = (strong * att).sum(dim=1) / att.sum(dim=1)  # [B, C]
        return strong, weak


@dataclass
class SEDOutput:
    strong: Tensor  # [B, T_out, C] frame probabilities
    weak: Tensor  # [B, C] clip probabilities
    activations: dict[str, Tensor]  # activation entering each location (before any hook)


class CRNN(nn.Module):
    def __init__(self, config: CRNNConfig = CRNNConfig()) -> None:
        super().__init__()
        config.check_model_fields()
        self.config = config
        self.cnn = CNN(config)
        self.rnn = RNN(self.cnn.out_features, config)
        self.heads = Heads(self.rnn.out_features, config.n_classes)
        if config.weight_init == "reference":
            reset_parameters(self)  # else PyTorch's default init, as each layer was built

    def _after(self, location: str, h: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        if location == "input":
            return self.cnn(h)
        if location == "cnn":
            return self.rnn(h)
        return self.heads(h)

    def stages_from(self, start: str) -> list[nn.Module]:
        """The modules a pass starting at injection point `start` runs, in order."""
        stages = {"input": self.cnn, "cnn": self.rnn, "rnn": self.heads}
        return [stages[loc] for loc in LOCATIONS[LOCATIONS.index(start) :]]

    def run(
        self,
        h: Tensor,
        start: str = "input",
        hooks: Mapping[str, Hook] | None = None,
    ) -> SEDOutput:
        """Run from injection point `start` with activation `h`.

        `hooks[loc](h)` replaces the activation at each named location
        (from `start` on); `activations[loc]` is the activation before the hook.
        """
        if start not in LOCATIONS:
            raise ValueError(f"start={start!r}: one of {LOCATIONS}")
        activations: dict[str, Tensor] = {}
        out: Tensor | tuple[Tensor, Tensor] = h
        for loc in LOCATIONS[LOCATIONS.index(start) :]:
            assert isinstance(out, Tensor)
            activations[loc] = out
            if hooks is not None and loc in hooks:
                out = hooks[loc](out)
            out = self._after(loc, out)
        strong, weak = out
        return SEDOutput(strong=strong, weak=weak, activations=activations)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """[B, 628, 128] -> (strong [B, 157, C], weak [B, C])."""
        out = self.run(x)
        return out.strong, out.weak


def reset_parameters(model: nn.Module) -> None:
    """The reference initialisation (docs/reference.md, "CRNN": init).

    Conv: xavier_uniform(gain sqrt 2), bias 0; BN: weight N(1, 0.02), bias 0;
    GRU matrices orthogonal; Linear (incl. the gated unit's channel map,
    stored as a 1x1 conv): N(0, 0.01), bias 0.
    """
    gate_maps = {id(m.linear) for m in model.modules() if isinstance(m, GatedUnit)}
    for module in model.modules():
        if isinstance(module, GatedUnit):
            nn.init.normal_(module.linear.weight, 0.0, 0.01)
            assert module.linear.bias is not None
            nn.init.zeros_(module.linear.bias)
        elif isinstance(module, nn.Conv2d):
            if id(module) in gate_maps:
                continue
            nn.init.xavier_uniform_(module.weight, gain=math.sqrt(2))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.GRU):
            for param in module.parameters():
                if param.dim() > 1:
                    nn.init.orthogonal_(param)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(config: CRNNFields, n_classes: int) -> CRNN:
    """The CRNN of a run's configuration (a TrainConfig, or any `CRNNFields`)."""
    return CRNN(CRNNConfig.from_fields(config, n_classes))
