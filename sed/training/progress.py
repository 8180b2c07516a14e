"""What a run shows while it trains: one console line per epoch and the TensorBoard scalars.

The TensorBoard writer is opened on first use, only when the run has a log folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def format_progress(m: dict[str, Any], target: int) -> str:
    """The console line of an epoch's metrics (`target`: the epochs the run goes to)."""
    psds = "" if m.get("val_psds") is None else f" val_psds {m['val_psds']:.3f}"
    if m.get("val_psds1") is not None:
        psds += f" val_psds1 {m['val_psds1']:.3f}"
    if m.get("val_frame_ap") is not None:
        psds += f" val_frame_ap {m['val_frame_ap']:.3f}"
    return (
        f"epoch {m['epoch']:>3}/{target} loss {m['loss_total']:.4f} "
        f"(class {m['loss_class']:.4f} const {m['loss_const']:.4f} reg {m['loss_reg']:.4f}) "
        f"val_macro_f1 {m['val_macro_f1']:.3f}{psds} best@{m['best_epoch']} "
        f"{m['epoch_seconds']:.1f}s"
    )


class ScalarLog:
    """TensorBoard scalars of a run: loss terms every 10 steps, every numeric metric per epoch."""

    def __init__(self, log_dir: Path | str | None) -> None:
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._writer: Any = None

    def writer(self) -> Any:
        if self._writer is None and self.log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.log_dir))
        return self._writer

    def step(self, step: int, values: dict[str, float]) -> None:
        writer = self.writer()
        if writer is not None and step % 10 == 0:
            for k, v in values.items():
                writer.add_scalar(f"train_step/{k}", v, step)

    def epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        writer = self.writer()
        if writer is None:
            return
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value is not None:
                group = "val" if key.startswith("val_") else "train"
                writer.add_scalar(f"{group}/{key}", value, epoch)
        writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
