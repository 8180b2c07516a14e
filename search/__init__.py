"""Ray Tune + Optuna search over the consistency augmentations of `sed`.

How the parts fit: docs/design.md, "search: the pieces".

- `search.space`       YAML search spaces, validated before Ray starts (`load_space`); a package:
                       model, parse, params, grid, groups (a search per group), checks.
- `search.trainable`   the Tune function trainable around `sed.training.trainer.Trainer`.
- `search.resources`   per-trial CPU/GPU and concurrency from the space and the cluster.
- `search.searchers`   Optuna TPE / random, the fixed list of a grid or the final stage, ASHA.
- `search.tuner`       start Ray; build (`new_tuner`) or restore a stage's Tuner; fit; its trials.
- `search.stages`      the search stage (one search, or one per group), then the final stage.
- `search.final`       the final stage's plan: top-k configs x seeds, resumable, one row per trial.
- `search.rows`        leaderboard rows and what each column holds.
- `search.leaderboard` the Parquet files: atomic, with the run's metadata.
- `search.failures`    a failed trial's reason, `Type: message`.
- `search.console`     live progress lines and the summary tables (`search.table1`: each group's
                       best as the paper's Table 1).
- `search.report`      `python -m search.report OUT/NAME`: the self-contained report.html of an experiment.
- `search.study_storage` where the Optuna study lives (a journal file in OUT/NAME, or a shared URL).
- `search.reproduce`   the `command` column: the sed.train line that retrains a leaderboard row.
- `search.run`         the CLI: `python -m search.run --space spaces/demo.yaml`.

`sed` never imports this package.
"""
