"""The report's figures, drawn with matplotlib (and Optuna's matplotlib parallel-coordinate plot).

Each function takes leaderboard frames (or the study built from one) and
returns a matplotlib `Figure`, or None when the experiment has nothing to
draw for it (no final stage yet, no PSDS values, ...). Nothing here
computes a score: every plotted number is a leaderboard cell, or a mean /
CI of `search.summary.summarize_final` (final_summary.parquet's own function).
Rendering is offline (the Agg backend; no browser-side code).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # offline rendering; no display needed

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..rows import pareto_front
from ..space import Space

STATUS_COLOURS = {
    "COMPLETED": "tab:blue",
    "EARLY_STOPPED": "tab:orange",
    "ERROR": "tab:red",
    "IN_PROGRESS": "tab:green",
    "INTERRUPTED": "tab:purple",
    "NOT_STARTED": "tab:gray",
}


def asha_rungs(space: Space) -> list[int]:
    """Epochs at which ASHA compares trials: grace_period * reduction_factor^k below max_epochs."""
    sched = space.scheduler
    if sched.kind != "asha":
        return []
    rungs, t = [], float(sched.grace_period)
    while t < sched.max_epochs:
        rungs.append(int(round(t)))
        t *= sched.reduction_factor
    return rungs


def learning_curves(search: pd.DataFrame, histories: Mapping[str, pd.DataFrame], space: Space) -> Figure | None:
    """Validation metric(s) per epoch of every search trial; scheduler stops marked at their last epoch."""
    metrics = [m for m in space.metrics if any(m in h for h in histories.values())]
    if not metrics:
        return None
    fig = Figure(figsize=(9, 3.6 * len(metrics)), layout="constrained")
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    status = dict(zip(search["trial_id"].astype(str), search["status"]))
    rungs = asha_rungs(space)
    for ax, metric in zip(axes, metrics):
        seen: set[str] = set()
        for trial_id, history in histories.items():
            if metric not in history or "epoch" not in history:
                continue
            values = pd.to_numeric(history[metric], errors="coerce")
            epochs = pd.to_numeric(history["epoch"], errors="coerce")
            state = status.get(trial_id, "COMPLETED")
            colour = STATUS_COLOURS.get(state, "black")
            ax.plot(
                epochs,
                values,
                color=colour,
                alpha=0.55,
                linewidth=1,
                label=state.lower() if state not in seen else None,
            )
            seen.add(state)
            if state == "EARLY_STOPPED" and len(values):
                ax.plot(
                    epochs.iloc[-1],
                    values.iloc[-1],
                    "x",
                    color="tab:red",
                    markersize=7,
                    label="stopped by ASHA" if "stop" not in seen else None,
                )
                seen.add("stop")
        for i, rung in enumerate(rungs):
            ax.axvline(rung, color="gray", linestyle=":", linewidth=1, label="ASHA rung" if i == 0 else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_title(f"search trials: {' / '.join(metrics)} on the validation split, per epoch")
    return fig


def parallel_coordinates(study, metric: str) -> Figure | None:
    """Optuna's matplotlib parallel-coordinate plot of the sampled parameters, coloured by `metric`."""
    import warnings

    import matplotlib.pyplot as plt
    import optuna

    if len(study.trials) < 2 or not any(t.params for t in study.trials):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning of optuna.visualization.matplotlib
        ax = optuna.visualization.matplotlib.plot_parallel_coordinate(study, target_name=metric)
    fig = ax.figure
    fig.set_size_inches(10, 4.2)
    plt.close(fig)  # keep pyplot's registry empty: the page owns the figure now
    return fig


def importance_bars(table: pd.DataFrame) -> Figure | None:
    """fANOVA importance per parameter, one panel per metric (`table`: metric, param, importance, n_trials)."""
    if table.empty:
        return None
    metrics = list(dict.fromkeys(table["metric"]))
    fig = Figure(figsize=(5 * len(metrics), 0.45 * table.groupby("metric").size().max() + 1.4), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        part = table[table["metric"] == metric].sort_values("importance")
        ax.barh([f"{p} (n={n})" for p, n in zip(part["param"], part["n_trials"])], part["importance"], color="tab:blue")
        ax.set_xlabel("fANOVA importance")
        ax.set_title(metric)
        ax.set_xlim(0, 1)
    return fig


def _per_config_colours(ids: Sequence[str]) -> dict[str, tuple]:
    cmap = matplotlib.colormaps["tab10"]
    return {cid: cmap(i % 10) for i, cid in enumerate(dict.fromkeys(ids))}


def val_vs_eval(final: pd.DataFrame, names: Mapping[str, str]) -> Figure | None:
    """Validation vs public-evaluation score of each final (config, seed) run."""
    if final.empty:
        return None
    ok = final[final["status"] == "COMPLETED"] if "status" in final else final
    pairs = [
        (v, e)
        for v, e in (("val_macro_f1", "eval_macro_f1"), ("val_psds", "eval_psds"))
        if v in ok and e in ok and np.isfinite(ok[[v, e]].astype(float)).all(axis=1).any()
    ]
    if not pairs:
        return None
    fig = Figure(figsize=(5 * len(pairs), 4.2), layout="constrained")
    axes = fig.subplots(1, len(pairs), squeeze=False)[0]
    colours = _per_config_colours(list(ok["config_id"].astype(str)))
    for ax, (v, e) in zip(axes, pairs):
        for cid, group in ok.groupby(ok["config_id"].astype(str), sort=False):
            ax.scatter(
                group[v].astype(float),
                group[e].astype(float),
                color=colours[cid],
                label=names.get(cid, cid),
                s=30,
                alpha=0.85,
            )
        ax.set_xlabel(f"{v} (validation split)")
        ax.set_ylabel(f"{e} (public evaluation)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    # one panel is 5 inches wide: the title on two lines, or its ends are cut off
    sep = "\n" if len(pairs) == 1 else " "
    fig.suptitle(f"final stage: validation vs public evaluation,{sep}one point per (config, seed)")
    return fig


def _front_panel(ax, frame: pd.DataFrame, x: str, y: str, title: str, labels: Sequence[str]) -> None:
    data = frame[np.isfinite(frame[[x, y]].astype(float)).all(axis=1)]
    # search.parquet's `pareto` (the multi-objective study's best_trials) when it has one
    front = data["pareto"].astype(bool) if "pareto" in data else pareto_front(data, [x, y], "max")
    ax.scatter(data[x].astype(float), data[y].astype(float), color="tab:gray", s=18, alpha=0.6, label="dominated")
    best = data[front].sort_values(x)
    ax.step(best[x].astype(float), best[y].astype(float), where="post", color="tab:red", linewidth=1)
    ax.scatter(best[x].astype(float), best[y].astype(float), color="tab:red", s=36, label="Pareto front")
    for (_, row), label in zip(best.iterrows(), [labels[i] for i in best.index]):
        ax.annotate(label, (float(row[x]), float(row[y])), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")


def pareto(search: pd.DataFrame, summary: pd.DataFrame, names: Mapping[str, str]) -> Figure | None:
    """F1 vs PSDS Pareto front: of the search trials (validation) and of the final configs (eval means)."""
    panels = []
    if {"val_macro_f1", "val_psds"} <= set(search) and np.isfinite(
        search[["val_macro_f1", "val_psds"]].astype(float)
    ).all(axis=1).any():
        labels = list(search["trial_id"].astype(str))
        panels.append((search.reset_index(drop=True), "val_macro_f1", "val_psds", "search trials (best epoch)", labels))
    if not summary.empty and {"eval_macro_f1_mean", "eval_psds_mean"} <= set(summary):
        frame = summary.reset_index(drop=True)
        labels = [names.get(str(c), str(c)) for c in frame["config_id"]]
        panels.append((frame, "eval_macro_f1_mean", "eval_psds_mean", "final configs (mean over seeds)", labels))
    panels = [p for p in panels if np.isfinite(p[0][[p[1], p[2]]].astype(float)).all(axis=1).any()]
    if not panels:
        return None
    fig = Figure(figsize=(5.5 * len(panels), 4.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (frame, x, y, title, labels) in zip(axes, panels):
        _front_panel(ax, frame, x, y, title, labels)
    return fig


def final_configs(
    summary: pd.DataFrame, names: Mapping[str, str], control: set[str], paper: Mapping[str, tuple[float, float]]
) -> Figure | None:
    """Mean and 95 % CI over seeds per final config (eval F1, eval PSDS), the control and Table 1 beside them."""
    if summary.empty or "eval_macro_f1_mean" not in summary:
        return None
    rows = summary.reset_index(drop=True)
    labels = [names.get(str(c), str(c)) for c in rows["config_id"]]
    y = np.arange(len(rows))[::-1]
    fig = Figure(figsize=(11, 0.5 * len(rows) + 1.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (metric, paper_index) in zip(axes, (("eval_macro_f1", 0), ("eval_psds", 1))):
        mean = rows.get(f"{metric}_mean", pd.Series(np.nan, index=rows.index)).astype(float).to_numpy()
        low = rows.get(f"{metric}_ci95_low", pd.Series(np.nan, index=rows.index)).astype(float).to_numpy()
        high = rows.get(f"{metric}_ci95_high", pd.Series(np.nan, index=rows.index)).astype(float).to_numpy()
        err = np.vstack([np.where(np.isfinite(low), mean - low, 0), np.where(np.isfinite(high), high - mean, 0)])
        is_control = np.array([str(c) in control for c in rows["config_id"]])
        for mask, colour, name in (
            (~is_control, "tab:blue", "this run: mean, 95 % CI"),
            (is_control, "tab:gray", "no-augmentation control"),
        ):
            if mask.any():
                ax.errorbar(mean[mask], y[mask], xerr=err[:, mask], fmt="o", color=colour, capsize=3, label=name)
        marks = [(y[i], paper[str(label)][paper_index]) for i, label in enumerate(rows["label"]) if str(label) in paper]
        if marks:
            ax.scatter(
                [m[1] for m in marks],
                [m[0] for m in marks],
                marker="D",
                color="tab:red",
                s=30,
                label="paper, Table 1",
                zorder=3,
            )
        ax.set_xlabel(f"{metric} (public evaluation)")
        ax.grid(alpha=0.3, axis="x")
        ax.legend(fontsize=8, loc="best")
    axes[0].set_yticks(y, labels)
    fig.suptitle("final stage per configuration")
    return fig


def per_class_table(final: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    """Mean per-class eval F1 over the COMPLETED seeds of each final config (rows: configs, columns: classes)."""
    if final.empty or "eval_per_class_f1" not in final:
        return pd.DataFrame()
    ok = final[final["status"] == "COMPLETED"] if "status" in final else final
    rows: dict[str, dict[str, list[float]]] = {}
    for cid, text in zip(ok["config_id"].astype(str), ok["eval_per_class_f1"]):
        if not isinstance(text, str) or not text:
            continue
        try:
            scores = json.loads(text)
        except ValueError:
            continue
        if not isinstance(scores, dict):
            continue
        target = rows.setdefault(names.get(cid, cid), {})
        for label, value in scores.items():
            target.setdefault(label, []).append(float(value) if value is not None else math.nan)
    table = pd.DataFrame(
        {
            name: {label: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for label, v in by_class.items()}
            for name, by_class in rows.items()
        }
    ).T
    return table


def per_class(table: pd.DataFrame) -> Figure | None:
    """Heatmap of `per_class_table` with each cell's value written in it."""
    if table.empty:
        return None
    values = table.to_numpy(dtype=float)
    fig = Figure(figsize=(1.0 * table.shape[1] + 3, 0.5 * table.shape[0] + 2.2), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(table.shape[1]), list(table.columns), rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(table.shape[0]), list(table.index), fontsize=8)
    for (i, j), value in np.ndenumerate(values):
        ax.text(
            j,
            i,
            "-" if not math.isfinite(value) else f"{value:.2f}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if (math.isfinite(value) and value < 0.6) else "black",
        )
    fig.colorbar(image, ax=ax, label="event F1 (public evaluation), mean over seeds")
    ax.set_title("per-class event F1 of the final configurations")
    return fig
