"""Score DCASE-format files: `python -m sed.score --ground-truth GT.tsv --durations DUR.tsv ...`.

One job: read detections and/or a score folder (the files sed.eval.outputs writes,
or any system's in the same formats), the ground truth and the durations, and
compute the numbers the DCASE task 4 leaderboards use, with the same
libraries and settings as sed.eval.metrics and sed.eval.threshold_free:

* from ``--detections`` (``filename onset offset event_label``): event-based
  F1 (sed_eval, 2020 settings: collar 200 ms, 20 % of the length), macro,
  micro and per class;
* from ``--scores`` (a folder of ``<clip>.tsv`` tables ``onset offset
  <class...>``, sed_scores_eval's layout; give the *filtered* scores to
  reproduce sedtune's numbers): PSDS1, PSDS2 and intersection F1 at
  ``--threshold`` (sed_scores_eval, threshold-free) and the 2020 PSDS
  variants ``psds``, ``psds_ct``, ``psds_macro`` of psds_eval at 50
  thresholds of those scores (no further median filter: ``--median-window 1``
  by default).

With one median window per class (``--median-window '{"Dog": 9, ...}'``, JSON)
and/or one threshold per class (``--class-thresholds '{"Dog": 0.42, ...}'``),
the raw scores of ``--scores`` are filtered class by class and the event F1
is scored on the detections decoded at those thresholds, with PSDS1, PSDS2
and intersection F1 on the same filtered scores (sed.eval.classwise: what
``python -m sed.tune_postprocess`` tuned; the values stored in final.parquet's
``pp_*`` columns); the psds_eval variants are not computed in that mode.

Every clip of the durations file is evaluated (a clip without events or
detections counts); the ground truth's clips without events may be written
with empty onset/offset/label or left out. Prints the numbers and, with
``--out``, writes them as strict JSON (sed.io.write_json).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sed.errors import UserError

__all__ = ["read_durations", "read_events", "read_score_folder", "score_files", "main"]


class ScoreInputError(UserError):
    """An input file of sed.score is missing or malformed; the message names it and the fix."""


def _read_tsv(path: Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ScoreInputError(f"{path}: {what} file not found. Fix: give the path of a tab-separated file.")
    frame = pd.read_csv(path, sep="\t", dtype={"filename": str, "event_label": str})
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ScoreInputError(
            f"{path} line 1: header {list(frame.columns)} lacks {missing}. "
            f"Fix: make line 1 the tab-separated header '{chr(9).join(columns)}'."
        )
    return frame


def read_events(path: Path | str, what: str = "events") -> pd.DataFrame:
    """A ``filename onset offset event_label`` TSV (rows without a label are clips without events)."""
    frame = _read_tsv(Path(path), ("filename", "onset", "offset", "event_label"), what)
    return frame[["filename", "onset", "offset", "event_label"]]


def read_durations(path: Path | str) -> tuple[list[str], list[float]]:
    """(file names, durations in seconds) of a ``filename duration`` TSV, in file order."""
    frame = _read_tsv(Path(path), ("filename", "duration"), "durations")
    names = [str(n) for n in frame["filename"]]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ScoreInputError(f"{path}: {duplicates[0]!r} is listed more than once. Fix: one row per clip.")
    durations = pd.to_numeric(frame["duration"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(durations) | (durations <= 0))
    if bad.size:
        raise ScoreInputError(
            f"{path} line {int(bad[0]) + 2}: duration {frame['duration'].iloc[bad[0]]!r} is not a positive "
            "number of seconds. Fix: write the clip length in seconds."
        )
    return names, [float(d) for d in durations]


def read_score_folder(
    folder: Path | str, filenames: list[str]
) -> tuple[np.ndarray, list[str], float, dict[str, pd.DataFrame]]:
    """(probabilities [N, T, C] zero-padded, labels, frame step, the tables) of a score folder."""
    from sed_scores_eval.base_modules.io import read_sed_scores

    from sed.eval.threshold_free import audio_id

    folder = Path(folder)
    if not folder.is_dir():
        raise ScoreInputError(f"{folder}: score folder not found. Fix: give the folder of <clip>.tsv score files.")
    tables = read_sed_scores(folder)
    ids = [audio_id(n) for n in filenames]
    missing = [i for i in ids if i not in tables]
    if missing:
        raise ScoreInputError(
            f"{folder}: no score file {missing[0]}.tsv ({len(missing)} clips of the durations file have none). "
            "Fix: score every clip, or list only the scored clips in the durations file."
        )
    first = tables[ids[0]]
    labels = [str(c) for c in first.columns[2:]]
    step = float(first["offset"].iloc[0] - first["onset"].iloc[0])
    n_frames = max(len(tables[i]) for i in ids)
    probs = np.zeros((len(ids), n_frames, len(labels)), dtype=np.float64)
    for row, key in enumerate(ids):
        table = tables[key]
        if [str(c) for c in table.columns[2:]] != labels:
            raise ScoreInputError(
                f"{folder / (key + '.tsv')}: classes {list(table.columns[2:])} differ from {labels} of "
                f"{ids[0]}.tsv. Fix: write the same class columns in every score file."
            )
        probs[row, : len(table)] = table[labels].to_numpy(dtype=np.float64)
    return probs, labels, step, {key: tables[key] for key in ids}


def score_files(
    ground_truth: Path | str,
    durations: Path | str,
    detections: Path | str | None = None,
    scores: Path | str | None = None,
    threshold: float = 0.5,
    median_window: int | Mapping[str, int] = 1,
    n_thresholds: int = 50,
    class_thresholds: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The leaderboard metrics of detections and/or a score folder (module docstring)."""
    from sed.eval.metrics import event_f1, metric_versions, psds_scores
    from sed.eval.threshold_free import audio_id, metrics_from_tables

    if detections is None and scores is None:
        raise ScoreInputError("nothing to score. Fix: give --detections and/or --scores.")
    names, seconds = read_durations(durations)
    reference = read_events(ground_truth, "ground truth")
    if isinstance(median_window, Mapping) or class_thresholds is not None:
        return _score_per_class(
            reference, names, seconds, scores, detections, median_window, threshold, class_thresholds
        )
    known = set(names)
    labelled = reference[reference["event_label"].notna()]
    unknown = sorted(set(labelled["filename"]) - known)
    if unknown:
        raise ScoreInputError(
            f"{ground_truth}: clip {unknown[0]!r} has events but no duration in {durations}. "
            "Fix: add it to the durations file."
        )
    result: dict[str, Any] = {"n_clips": len(names)}
    labels: list[str] | None = None
    if scores is not None:
        probs, labels, step, tables = read_score_folder(scores, names)
        result.update(
            psds_scores(probs, names, labels, reference, seconds, median_window, n_thresholds, frame_step=step)
        )
        by_id = {audio_id(n): d for n, d in zip(names, seconds)}
        if median_window > 1:
            from sed.eval.threshold_free import score_tables

            tables = score_tables(probs, names, labels, seconds, median_window, step)
        result.update(metrics_from_tables(tables, reference, by_id, threshold))
        result["n_thresholds"] = n_thresholds
    if detections is not None:
        estimated = read_events(detections, "detections")
        if labels is None:
            found = pd.concat([labelled["event_label"], estimated["event_label"].dropna()])
            labels = sorted({str(x) for x in found})
        result.update(event_f1(reference, estimated, names, labels))
    result["metric_versions"] = metric_versions()
    return result


def _score_per_class(
    reference: pd.DataFrame,
    names: list[str],
    seconds: list[float],
    scores: Path | str | None,
    detections: Path | str | None,
    median_window: int | Mapping[str, int],
    threshold: float,
    class_thresholds: Mapping[str, float] | None,
) -> dict[str, Any]:
    """Per-class windows / thresholds applied to raw scores (module docstring)."""
    from sed.eval.classwise import ScoreSet, event_f1_of_tables, per_class, psds_of, scored_tables
    from sed.eval.metrics import metric_versions
    from sed.eval.threshold_free import metrics_from_tables

    if scores is None or detections is not None:
        raise ScoreInputError(
            "per-class windows or thresholds apply to raw scores. Fix: give --scores (the scores/raw folder) "
            "and no --detections."
        )
    _, _, _, tables = read_score_folder(scores, names)
    score_set = ScoreSet(tables, names, seconds, reference)
    windows = per_class(median_window, score_set.labels, "--median-window")
    result: dict[str, Any] = {"n_clips": len(names)}
    result["psds1"], _ = psds_of(score_set, windows, "psds1")
    result["psds2"], _ = psds_of(score_set, windows, "psds2")
    filtered = scored_tables(score_set, windows)
    result["intersection_f1"] = (
        metrics_from_tables(filtered, score_set.reference, score_set.by_id, threshold, ("intersection_f1",))[
            "intersection_f1"
        ]
        if filtered is not None
        else float("nan")
    )
    thresholds = per_class(
        class_thresholds if class_thresholds is not None else threshold, score_set.labels, "--class-thresholds"
    )
    result.update(event_f1_of_tables(score_set, windows, thresholds))
    result["median_windows"] = windows
    result["class_thresholds"] = thresholds
    result["metric_versions"] = metric_versions()
    return result


def _json_or_int(text: str) -> int | dict[str, int]:
    text = text.strip()
    if text.startswith("{"):
        try:
            return dict(json.loads(text))
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"not a JSON object: {error}") from None
    return int(text)


def _json_object(text: str) -> dict[str, float]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a JSON object: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('expected a JSON object {"class": threshold, ...}')
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sed.score",
        description="Score detections and/or score folders with the DCASE task 4 metrics.",
    )
    parser.add_argument("--ground-truth", type=Path, required=True, help="filename onset offset event_label TSV")
    parser.add_argument("--durations", type=Path, required=True, help="filename duration TSV (every clip scored)")
    parser.add_argument("--detections", type=Path, default=None, help="detections TSV (event F1)")
    parser.add_argument(
        "--scores",
        type=Path,
        default=None,
        help="folder of <clip>.tsv score tables (PSDS1, PSDS2, intersection F1, 2020 PSDS)",
    )
    parser.add_argument("--threshold", type=float, default=0.5, help="decision threshold of the intersection F1")
    parser.add_argument(
        "--median-window",
        type=_json_or_int,
        default=1,
        help="median filter (frames) applied to the scores first (1: none, for filtered scores); "
        'or one per class as JSON {"Dog": 9, ...} (raw scores)',
    )
    parser.add_argument(
        "--class-thresholds",
        type=_json_object,
        default=None,
        help='one decision threshold per class as JSON {"Dog": 0.42, ...}: the event F1 of the detections '
        "decoded from the (raw) scores at these thresholds",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the metrics as JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sed.io import write_json

    try:
        result = score_files(
            args.ground_truth,
            args.durations,
            args.detections,
            args.scores,
            args.threshold,
            args.median_window,
            class_thresholds=args.class_thresholds,
        )
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for key, value in result.items():
        if isinstance(value, float):
            print(f"{key:16s} {value:.4f}")
        elif key == "per_class_f1":
            for label, f1 in value.items():
                print(f"  f1 {label:24s} {f1:.4f}")
    if args.out is not None:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
