"""Mixed training batches: weak 1/4, unlabeled 1/2, synthetic-strong 1/4 (paper 4.1).

One job: turn the prepared training parts into a stream of normalised
`Batch`es with their masks. Each part is shuffled by its own seeded
generator (their states are part of a checkpoint); an epoch ends when the
shortest stream runs out (the reference) or at `max_steps_per_epoch`.
Features are normalised on the run's device with the dataset's `Scaler`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from sed.config import TrainConfig
from sed.constants import N_OUT_FRAMES
from sed.features.scaler import Scaler

if TYPE_CHECKING:  # only the type: the objectives import Batch without the data machinery
    from sed.data.prepare import PreparedData

__all__ = ["Batch", "ClipDataset", "MixedBatches", "part_sizes"]


@dataclass
class Batch:
    """One mixed training batch; masks select each part (weak / unlabeled / strong)."""

    features: Tensor  # [B, 628, 128], normalised
    strong_targets: Tensor  # [B, 157, C]; zeros where not strong
    weak_targets: Tensor  # [B, C]; zeros where unlabeled
    strong_mask: Tensor  # [B] bool: synthetic strongly labelled clips
    weak_mask: Tensor  # [B] bool: weakly labelled clips

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        return Batch(
            *(
                t.to(device, non_blocking=non_blocking)
                for t in (self.features, self.strong_targets, self.weak_targets, self.strong_mask, self.weak_mask)
            )
        )


class ClipDataset(Dataset):
    """Features of one split with its frame and clip targets (zeros where unknown)."""

    def __init__(self, features: np.ndarray, strong: np.ndarray | None, weak: np.ndarray | None, n_classes: int):
        self.features = features
        self.strong = strong
        self.weak = weak
        self.n_out = N_OUT_FRAMES if strong is None else strong.shape[1]
        self._zero_strong = np.zeros((self.n_out, n_classes), dtype=np.float32)
        self._zero_weak = np.zeros((n_classes,), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        x = torch.from_numpy(np.array(self.features[index], dtype=np.float32))
        strong = self._zero_strong if self.strong is None else self.strong[index]
        weak = self._zero_weak if self.weak is None else self.weak[index]
        return x, torch.from_numpy(np.asarray(strong)), torch.from_numpy(np.asarray(weak))


def part_sizes(batch_size: int, weak_fraction: float = 0.25, strong_fraction: float = 0.25) -> tuple[int, int, int]:
    """(weak, unlabeled, strong) clips per batch; default (1/4, 1/2, 1/4) (paper 4.1).

    weak = floor(batch_size * weak_fraction), strong likewise, unlabeled the rest.
    """
    n_weak = math.floor(batch_size * weak_fraction + 1e-9)
    n_strong = math.floor(batch_size * strong_fraction + 1e-9)
    return n_weak, batch_size - n_weak - n_strong, n_strong


class MixedBatches:
    """The training stream of one run: iterate it once per epoch."""

    def __init__(self, data: PreparedData, config: TrainConfig, device: torch.device, scaler: Scaler) -> None:
        self.device = device
        self.scaler = scaler
        labels = data.labels
        n_weak, n_unlabeled, n_strong = part_sizes(config.batch_size, config.weak_fraction, config.strong_fraction)

        def dataset(name: str, strong: bool, weak: bool) -> ClipDataset:
            split = data.split(name)
            return ClipDataset(
                data.features[name],
                split.strong_targets(labels, config.offset_rounding) if strong else None,
                split.weak_targets(labels) if weak else None,
                len(labels),
            )

        parts = [  # (batch part, split, clips per batch, frame targets?, clip targets?)
            ("weak", "weak", n_weak, False, True),
            ("unlabeled", "unlabeled", n_unlabeled, False, False),
            ("strong", "synthetic_train", n_strong, True, True),
        ]
        #: One shuffling generator per part read (saved in checkpoints).
        self.generators: list[torch.Generator] = []
        self.loaders: list[DataLoader] = []
        #: The batch part of each loader, in batch order; parts of size 0 have none.
        self.parts: list[str] = []
        for i, (part_name, name, size, strong, weak) in enumerate(parts):
            if size == 0:
                continue
            part = dataset(name, strong=strong, weak=weak)
            if len(part) < size:
                raise ValueError(
                    f"the {name!r} part has {len(part)} clips but each batch takes {size} "
                    f"(batch_size={config.batch_size}); lower batch_size or add data"
                )
            generator = torch.Generator()
            generator.manual_seed(config.seed * 1000 + i)
            self.generators.append(generator)
            self.parts.append(part_name)
            sampler = BatchSampler(RandomSampler(part, generator=generator), size, drop_last=True)
            self.loaders.append(
                DataLoader(
                    part,
                    batch_sampler=sampler,
                    num_workers=config.num_workers,
                    pin_memory=device.type == "cuda",
                )
            )
        steps = min(len(loader) for loader in self.loaders)
        if config.max_steps_per_epoch is not None:
            steps = min(steps, config.max_steps_per_epoch)
        self.steps_per_epoch = steps

    def __iter__(self) -> Iterator[Batch]:
        for step, parts in enumerate(zip(*self.loaders)):
            if step >= self.steps_per_epoch:
                break
            # order in the batch: weak, unlabeled, strong (parts of size 0 absent)
            by_part = dict(zip(self.parts, parts))
            features = torch.cat([x for x, _, _ in parts])
            b = features.shape[0]
            n_weak = len(by_part["weak"][0]) if "weak" in by_part else 0
            weak_mask = torch.zeros(b, dtype=torch.bool)
            strong_mask = torch.zeros(b, dtype=torch.bool)
            weak_mask[:n_weak] = True
            strong_mask[b - len(by_part["strong"][0]) :] = True
            batch = Batch(
                features=features,
                strong_targets=torch.cat([s for _, s, _ in parts]),
                weak_targets=torch.cat([w for _, _, w in parts]),
                strong_mask=strong_mask,
                weak_mask=weak_mask,
            ).to(self.device, non_blocking=True)
            batch.features = self.scaler.transform(batch.features)
            yield batch

    def generator_states(self) -> list[Tensor]:
        return [g.get_state() for g in self.generators]

    def load_generator_states(self, states: list[Tensor]) -> None:
        for generator, state in zip(self.generators, states):
            generator.set_state(state)
