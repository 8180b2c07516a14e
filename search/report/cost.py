"""Score against training cost (issue #21): does a winner only win by spending more?"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def score_vs_cost(search: pd.DataFrame, summary: pd.DataFrame, names: Mapping[str, str]) -> Figure | None:
    """Validation F1 of each search trial and eval F1 of each final config against their train GFLOP."""
    panels = []
    if {"train_gflop", "val_macro_f1"} <= set(search):
        panels.append((search, "train_gflop", "val_macro_f1", "search trials", list(search["trial_id"].astype(str))))
    if {"train_gflop_mean", "eval_macro_f1_mean"} <= set(summary):
        labels = [names.get(str(c), str(c)) for c in summary["config_id"]]
        panels.append((summary, "train_gflop_mean", "eval_macro_f1_mean", "final configs (mean over seeds)", labels))
    panels = [p for p in panels if np.isfinite(p[0][[p[1], p[2]]].astype(float).to_numpy()).all(axis=1).any()]
    if not panels:
        return None
    fig = Figure(figsize=(5.5 * len(panels), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (frame, x, y, title, labels) in zip(axes, panels):
        xs, ys = frame[x].astype(float).to_numpy(), frame[y].astype(float).to_numpy()
        ax.scatter(xs, ys, color="tab:blue")
        for xi, yi, label in zip(xs, ys, labels):
            if np.isfinite(xi) and np.isfinite(yi):
                ax.annotate(label, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("training GFLOP (sed.training.cost)")
        ax.set_ylabel(y)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    return fig


__all__ = ["score_vs_cost"]
