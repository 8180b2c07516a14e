"""Put the report together: the sections of `report.html`, in the order a researcher reads them.

1. the run: space, metric(s), status counts, where the rows come from, the Optuna study;
2. the search leaderboard (search.parquet, every row);
3. learning curves of every trial (per-epoch validation metric from each
   trial's progress.csv; ASHA stops marked at their rung);
4. parallel coordinates of the sampled parameters, coloured by each metric;
5. hyperparameter importance (fANOVA, `search.report.study`) per metric;
6. the final stage: per configuration mean and 95 % CI over seeds, the
   no-augmentation control (final.parquet's `control` column) and the paper's
   Table 1 beside them; validation vs public evaluation; per-class F1;
7. the F1 / PSDS Pareto front (search trials and final configurations);
8. the `command` that reproduces the best search trials and every final run.

`build_report(exp_dir)` writes `exp_dir/report.html` atomically (a
temporary file, then `os.replace`): a failed build keeps the previous page.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from sed.io import write_text
from sed.presets import PAPER_TABLE1

from ..masking import mask_url
from ..postprocess import COMPARED_METRICS, SUMMARY_METRICS, TUNED_NOTE
from ..study_storage import dashboard_command
from ..summary import control_comparison, early_epoch_notes, paired_comparison
from ..trial_compute import compute_line
from . import figures
from .cost import score_vs_cost
from .experiment import ExperimentFolder, load_experiment
from .page import Page
from .study import importances, leaderboard_study

REPORT_FILE = "report.html"


def _names(exp: ExperimentFolder) -> dict[str, str]:
    """config_id -> what the page calls it: its label (grid point, group, or the final stage's words for a
    sampled config), with '#rank' in front where two configs share one; else '#rank config_id'."""
    names: dict[str, str] = {}
    ranks: dict[str, int] = {}
    for frame in (exp.summary, exp.final):
        if frame.empty:
            continue
        for row in frame.to_dict("records"):
            cid = str(row["config_id"])
            label = row.get("label")
            rank = row.get("rank")
            if rank is not None and pd.notna(rank):
                ranks.setdefault(cid, int(rank))
            if isinstance(label, str) and label:
                names.setdefault(cid, label)
            elif rank is not None and pd.notna(rank):
                names.setdefault(cid, f"#{int(rank)} {cid[:8]}")
    uses = Counter(names.values())
    for cid, name in names.items():  # two top configs of one family: told apart by their rank
        if uses[name] > 1 and cid in ranks:
            names[cid] = f"#{ranks[cid]} {name}"
    for cid in exp.control_ids:
        name = names.get(cid, cid[:8])
        names[cid] = name if name.startswith("control") else f"control: {name}"
    return names


def _overview(page: Page, exp: ExperimentFolder) -> None:
    space = exp.space
    counts = exp.search["status"].value_counts().to_dict() if not exp.search.empty else {}
    page.heading("Run", "run")
    page.note(
        f"space {space.name} ({space.path}); selection metric(s): {', '.join(space.metrics)} ({space.mode}); "
        f"searcher {space.searcher.kind}; scheduler {space.scheduler.kind} over {space.scheduler.max_epochs} "
        f"epochs; {len(exp.search)} of {space.num_samples} search trials: "
        + (", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none yet")
    )
    if exp.live:
        page.note(
            "search.parquet is not written yet (the search stage is running or was killed): its rows are "
            "rebuilt from the trial folders; IN_PROGRESS = has not run every epoch (running, or stopped by ASHA)."
        )
    if exp.storage:
        page.note(
            (
                "Optuna studies "
                + ", ".join(repr(f"{exp.exp_dir.name}--{g.name}") for g in exp.space.groups if g.searched)
                if exp.space.groups
                else f"Optuna study {exp.exp_dir.name!r}"
            )
            + f" in {mask_url(exp.storage)} "
            f"(open it with: {dashboard_command(exp.storage)})"
        )
    if exp.metadata:
        page.note(
            f"git commit {exp.metadata.get('git_commit', '?')}; written {exp.metadata.get('created', '?')}; "
            f"data {exp.metadata.get('data', '?')}"
        )


def _leaderboard(page: Page, exp: ExperimentFolder) -> None:
    page.heading("Search leaderboard (search.parquet)", "leaderboard")
    columns = [
        "trial_id",
        "status",
        "label",
        *exp.space.params,
        "val_macro_f1",
        "val_psds",
        "val_psds1",
        "selection_value",
        "best_epoch",
        "epochs_run",
        "wall_seconds",
        "train_steps",
        "energy_kwh",
        "macs_per_10s",
        "train_gflop",
        "failures",
        "pareto",
        "error",
    ]
    page.table(exp.search, columns, scroll=True)
    if not exp.search.empty:
        page.note(compute_line("search", exp.search))
    if "pareto" in exp.search and exp.search["pareto"].any():
        page.note(
            "Pareto front over "
            + " / ".join(exp.space.metrics)
            + ": "
            + ", ".join(exp.search.loc[exp.search["pareto"].astype(bool), "trial_id"].astype(str))
        )


def _reproduce(page: Page, exp: ExperimentFolder) -> None:
    frames = [
        (exp.search.head(10), ["trial_id", "status", "selection_value", "command"]),
        (exp.final, ["config_id", "label", "seed", "eval_macro_f1", "command"]),
    ]
    frames = [(f, c) for f, c in frames if not f.empty and "command" in f]
    if not frames:
        return
    page.heading("Reproduce a row", "reproduce")
    page.note(
        "each command retrains that config with that seed on the same data (python -m sed.train; "
        "search.reproduce): the 10 best search trials, then every final run"
    )
    for frame, columns in frames:
        page.table(frame, columns, scroll=True)


def _search_figures(page: Page, exp: ExperimentFolder) -> None:
    page.heading("Learning curves", "curves")
    page.figure(
        figures.learning_curves(exp.search, exp.histories, exp.space),
        "learning curves",
        "no per-epoch records (progress.csv) found in the trial folders",
    )
    rungs = figures.asha_rungs(exp.space)
    if rungs:
        read = exp.space.scheduler.rung_metric
        compared = "" if read in (None, exp.space.metric) else f"; the rungs compared the trials on {read}"
        page.note(f"ASHA rungs at epochs {', '.join(map(str, rungs))}: a trial marked x was stopped there{compared}.")
    page.heading("Parallel coordinates", "parallel")
    tables = []
    studies = {m: leaderboard_study(exp.search, exp.space, m) for m in exp.space.metrics}
    for metric, study in studies.items():
        page.figure(
            figures.parallel_coordinates(study, metric),
            f"parallel coordinates, {metric}",
            f"{metric}: fewer than two search trials with sampled parameters (a grid space samples none)",
        )
        tables.extend(importances(study, metric))
    page.heading("Hyperparameter importance (fANOVA)", "importance")
    table = pd.DataFrame([vars(i) for i in tables], columns=["metric", "param", "importance", "n_trials"])
    page.note(
        "Optuna's FanovaImportanceEvaluator (seeded) on the leaderboard's best-epoch values; a conditional "
        "parameter is scored over the n_trials where its condition held (search.report.study)."
    )
    page.figure(
        figures.importance_bars(table),
        "importance",
        "no importance: too few finished trials with varying sampled parameters, or every trial scored the same",
    )
    page.table(table)


def _final(page: Page, exp: ExperimentFolder) -> None:
    page.heading("Final stage (final.parquet, public evaluation set)", "final")
    if exp.final.empty:
        page.note("no final-stage run has finished yet")
        return
    names = _names(exp)
    summary = exp.summary.copy()
    summary.insert(0, "config", [names.get(str(c), str(c)) for c in summary["config_id"]])
    if exp.control_ids:
        summary["control"] = [str(c) in exp.control_ids for c in summary["config_id"]]
    labels = summary.get("label", pd.Series(dtype=object))
    if any(str(label) in PAPER_TABLE1 for label in labels):
        summary["paper_eval_macro_f1"] = [PAPER_TABLE1.get(str(x), (None, None))[0] for x in labels]
        summary["paper_eval_psds"] = [PAPER_TABLE1.get(str(x), (None, None))[1] for x in labels]
        page.note(
            "paper_* columns: the paper's Table 1 (DESED 2020 public evaluation, 200 epochs); this run's "
            f"budget is {exp.space.final.epochs if exp.space.final else '?'} epochs per final run."
        )
    columns = ["config", "control", "n_seeds", "seeds"]
    for metric in (*SUMMARY_METRICS, "val_macro_f1"):
        columns += [f"{metric}_mean", f"{metric}_ci95_low", f"{metric}_ci95_high"]  # those it has
    columns += ["paper_eval_macro_f1", "paper_eval_psds", "train_steps_mean", "wall_seconds_mean", "train_gflop_mean"]
    page.note(
        "mean and Student-t 95 % CI over the COMPLETED seeds (final_summary.parquet's numbers), the interval "
        "clipped to [0, 1] where it reaches past the range the scores live in."
    )
    if "eval_macro_f1_tuned_mean" in summary:
        page.note(TUNED_NOTE.strip())
    page.table(summary, columns)
    for metric in COMPARED_METRICS:
        comparison = control_comparison(exp.summary, metric)
        if comparison is not None:
            page.note(comparison.sentence())
        paired = paired_comparison(exp.final, exp.summary, metric)
        if paired is not None:
            page.note(paired.sentence())
    for note in early_epoch_notes(exp.final, exp.space.metric):
        page.note(note)
    page.figure(
        figures.final_configs(exp.summary, names, exp.control_ids, PAPER_TABLE1),
        "final configurations",
        "no public-evaluation scores yet",
    )
    page.figure(figures.val_vs_eval(exp.final, names), "validation vs evaluation", "no scored final run yet")
    page.figure(
        score_vs_cost(exp.search, exp.summary, names), "score against training cost", "no training cost recorded"
    )
    per_class = figures.per_class_table(exp.final, names)
    page.heading("Per-class F1 of the final configurations", "per-class")
    page.figure(figures.per_class(per_class), "per-class F1", "no per-class F1 recorded")
    if not per_class.empty:
        page.table(per_class.reset_index(names="config"))
    page.heading("Final runs (one row per config and seed)", "final-runs")
    if not exp.final.empty:
        page.note(compute_line("final stage", exp.final))
        if not exp.search.empty:
            page.note(compute_line("experiment", exp.search, exp.final))
    page.table(
        exp.final,
        [
            "config_id",
            "label",
            "rank",
            "seed",
            "status",
            "control",
            "val_macro_f1",
            "val_psds",
            "eval_macro_f1",
            "eval_psds",
            "eval_psds_ct",
            "eval_psds_macro",
            "eval_psds1",
            "eval_psds2",
            "eval_macro_f1_tuned",
            "eval_psds1_tuned",
            "eval_psds2_tuned",
            "pp_windows_f1",
            "pp_thresholds_f1",
            "epochs_run",
            "train_steps",
            "energy_kwh",
            "macs_per_10s",
            "error",
        ],
        scroll=True,
    )


def _pareto(page: Page, exp: ExperimentFolder) -> None:
    page.heading("F1 / PSDS Pareto front", "pareto")
    page.figure(
        figures.pareto(exp.search, exp.summary, _names(exp)),
        "Pareto front",
        "no trial has both an F1 and a PSDS value (the search validates PSDS only with compute_val_psds=true; "
        "the final stage scores both)",
    )


def render(exp: ExperimentFolder) -> str:
    """The page's HTML for `exp`."""
    page = Page(f"sedtune report: {exp.exp_dir.name}")
    _overview(page, exp)
    _leaderboard(page, exp)
    _search_figures(page, exp)
    _final(page, exp)
    _pareto(page, exp)
    _reproduce(page, exp)
    return page.render()


def build_report(exp_dir: Path | str, out: Path | str | None = None) -> Path:
    """Write the report of `exp_dir` to `out` (default `exp_dir/report.html`), atomically; returns its path."""
    exp = load_experiment(exp_dir)
    path = Path(out) if out is not None else exp.exp_dir / REPORT_FILE
    text = render(exp)
    return write_text(path, text)
