"""The files a run leaves for the DCASE tools: detections, score folders, durations.

One job: write a model's frame probabilities on a set of clips in the formats
the DCASE task 4 tools read.
Layout of one set's folder (``write_set_outputs``; README "Outputs")::

    detections.tsv      filename onset offset event_label   events at the reported
                                                            threshold, after the median filter
                                                            (sed_eval, psds_eval, the DCASE
                                                            leaderboards' detection format)
    scores/raw/<clip>.tsv       onset offset <class...>     the frame probabilities
    scores/filtered/<clip>.tsv  onset offset <class...>     median-filtered (what the
                                                            threshold-free metrics score)
    durations.tsv       filename duration                   each clip's length in seconds
    ground_truth.tsv    filename onset offset event_label   the reference as scored (clipped
                                                            to the clip ends), sets with labels only

``<clip>`` is the file name without its extension (sed_scores_eval's key);
score folders are written by ``sed_scores_eval.io.write_sed_scores`` and read
back by ``sed_scores_eval.io.read_sed_scores``. Numbers are written at full
precision (pandas writes the shortest text that reads back as the same float), so reading the files back gives the same metrics.

JSON files are strict (NaN written as null): `sed.io.write_json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sed.constants import FRAME_STEP_S
from sed.eval.postprocess import EVENT_COLUMNS, decode_events
from sed.eval.threshold_free import audio_id, score_tables

__all__ = [
    "DETECTIONS_FILE",
    "DURATIONS_FILE",
    "GROUND_TRUTH_FILE",
    "RAW_SCORES",
    "FILTERED_SCORES",
    "write_events",
    "write_durations",
    "write_set_outputs",
]

DETECTIONS_FILE = "detections.tsv"
DURATIONS_FILE = "durations.tsv"
GROUND_TRUTH_FILE = "ground_truth.tsv"
RAW_SCORES = "scores/raw"
FILTERED_SCORES = "scores/filtered"


def write_events(path: Path | str, events: pd.DataFrame) -> Path:
    """An event table as ``filename onset offset event_label`` TSV (header line, full precision)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    events[list(EVENT_COLUMNS)].to_csv(path, sep="\t", index=False)
    return path


def write_durations(path: Path | str, filenames: Sequence[str], durations: Sequence[float]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"filename": list(filenames), "duration": [float(d) for d in durations]})
    frame.to_csv(path, sep="\t", index=False)
    return path


def _write_scores(folder: Path, tables: dict[str, pd.DataFrame]) -> None:
    from sed_scores_eval.base_modules.io import write_sed_scores

    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.tsv"):
        stale.unlink()
    write_sed_scores(tables, folder)


def write_set_outputs(
    folder: Path | str,
    strong_probs: np.ndarray,
    filenames: Sequence[str],
    labels: Sequence[str],
    durations: Sequence[float],
    threshold: float,
    median_window: int,
    reference: pd.DataFrame | None = None,
    frame_step: float = FRAME_STEP_S,
) -> Path:
    """Write one set's detections, raw and filtered score folders, durations (and reference)."""
    folder = Path(folder)
    bad = [name for name in filenames if "/" in audio_id(name) or "\\" in audio_id(name)]
    if bad:
        raise ValueError(
            f"file name {bad[0]!r} has a folder part; score files are one <clip>.tsv per clip in a flat "
            "folder (sed_scores_eval's layout). Fix: list the clips with plain file names."
        )
    folder.mkdir(parents=True, exist_ok=True)
    detections = decode_events(
        strong_probs,
        filenames,
        labels,
        threshold=threshold,
        median_window=median_window,
        frame_step=frame_step,
        durations=durations,
    )
    write_events(folder / DETECTIONS_FILE, detections)
    _write_scores(folder / RAW_SCORES, score_tables(strong_probs, filenames, labels, durations, 1, frame_step))
    _write_scores(
        folder / FILTERED_SCORES,
        score_tables(strong_probs, filenames, labels, durations, median_window, frame_step),
    )
    write_durations(folder / DURATIONS_FILE, filenames, durations)
    if reference is not None:
        write_events(folder / GROUND_TRUTH_FILE, reference)
    return folder
