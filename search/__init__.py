"""Ray Tune + Optuna search over the consistency augmentations of `sed` (DESIGN.md, "search").

- `search.space`       YAML search spaces, validated before Ray starts (`load_space`).
- `search.trainable`   the Tune function trainable around `sed.trainer.Trainer`.
- `search.ray_glue`    searchers (Optuna TPE / fixed lists), ASHA, resources, result rows.
- `search.final`       the final stage: top-k configs x seeds, scored on the public eval set.
- `search.leaderboard` Parquet leaderboards (atomic, with metadata) and seed statistics.
- `search.run`         the CLI: `python -m search.run --space spaces/demo.yaml`.

`sed` never imports this package.
"""
