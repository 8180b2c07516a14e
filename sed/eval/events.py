"""Reference events and the metric libraries' noise, shared by `sed.eval.metrics` and `sed.eval.threshold_free`.

Below both: references are cleaned and same-class overlaps merged once (`merge_overlaps`,
the decision is written in `sed.eval.metrics`' docstring), and the libraries' known warnings
are filtered around their calls only (`quiet_metric_library`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from sed.errors import UserError
from sed.eval.postprocess import EVENT_COLUMNS, empty_events


class MetricsError(UserError):
    """Invalid metric input; the message names the table/file and the fix."""


@contextmanager
def quiet_metric_library() -> Iterator[None]:
    """Filter the metric libraries' known warnings, for the enclosed calls only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message="A similar operating point exists")
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        yield


# ----------------------------------------------------------------------------- references


def _has_label(labels: pd.Series) -> np.ndarray:
    text = labels.astype(object)
    return (text.notna() & (text.astype(str).str.strip() != "")).to_numpy()


def clean_events(events_df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Validate an event table; return its labelled rows with the standard columns."""
    if not isinstance(events_df, pd.DataFrame):
        raise MetricsError(
            f"{name} must be a pandas DataFrame with columns {list(EVENT_COLUMNS)}, "
            f"got {type(events_df).__name__}; build it with Split.events_frame() or decode_events()."
        )
    missing = [c for c in EVENT_COLUMNS if c not in events_df.columns]
    if missing:
        raise MetricsError(
            f"{name} lacks columns {missing}; it needs {list(EVENT_COLUMNS)} "
            "(the DESED strong TSV header filename, onset, offset, event_label)."
        )
    events = events_df.loc[_has_label(events_df["event_label"]), list(EVENT_COLUMNS)].copy()
    events["filename"] = events["filename"].astype(str)
    events["event_label"] = events["event_label"].astype(str)
    try:
        events["onset"] = events["onset"].astype(np.float64)
        events["offset"] = events["offset"].astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise MetricsError(
            f"{name} has non-numeric onset/offset values ({exc}); onsets and offsets are seconds."
        ) from exc
    onset, offset = events["onset"], events["offset"]
    bad = ~np.isfinite(onset) | ~np.isfinite(offset) | (onset < 0) | (onset > offset)
    if bad.any():
        row = events[bad].iloc[0]
        raise MetricsError(
            f"{name}: event {row['event_label']!r} of file {row['filename']!r} has onset "
            f"{row['onset']} and offset {row['offset']}; fix it so that 0 <= onset <= offset "
            f"({int(bad.sum())} such rows)."
        )
    return events.reset_index(drop=True)


def merge_overlaps(events_df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Merge same-class events of one file that overlap or touch.

    Rows with an empty or NaN label (clips without events) are not events and are
    left out of the result. Returns the merged events (sorted by filename, onset,
    label) and the number of events absorbed by merging
    (``n_input_events - n_output_events``; one merged pair counts 1).
    """
    events = clean_events(events_df, "events_df")
    if events.empty:
        return empty_events(), 0
    events = events.sort_values(["filename", "event_label", "onset", "offset"], kind="stable")
    events = events.reset_index(drop=True)
    group_keys = [events["filename"], events["event_label"]]
    # An event starts a new merged event unless it begins at or before the furthest
    # offset seen so far among earlier events of the same file and class.
    reach = events.groupby(group_keys, sort=False)["offset"].cummax()
    previous_reach = reach.groupby(group_keys, sort=False).shift(1)
    starts_new = previous_reach.isna() | (events["onset"] > previous_reach)
    merged_id = starts_new.cumsum()
    merged = events.groupby(merged_id, sort=False).agg(
        filename=("filename", "first"),
        onset=("onset", "min"),
        offset=("offset", "max"),
        event_label=("event_label", "first"),
    )
    merged = merged.sort_values(["filename", "onset", "event_label"], kind="stable").reset_index(drop=True)
    return merged[list(EVENT_COLUMNS)], int(len(events) - len(merged))
