"""Post-processing: threshold + median filter, frames -> events (hand-computed cases)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sed.constants import FRAME_STEP_S
from sed.eval.postprocess import EVENT_COLUMNS, PostprocessError, binarize, decode_events

STEP = 0.06375


def _probs(*columns: list[float]) -> np.ndarray:
    """One file, one column of probabilities per class -> [1, T, C]."""
    return np.asarray(columns, dtype=np.float32).T[None]


def test_frame_step_constant_is_baseline_value() -> None:
    assert FRAME_STEP_S == pytest.approx(4 * 255 / 16000) == pytest.approx(STEP)


def test_binarize_threshold_then_median_filter_by_hand() -> None:
    p = [0.9, 0.2, 0.8, 0.1, 0.1, 0.7, 0.9, 0.6, 0.2, 0.9]
    thresholded = [1, 0, 1, 0, 0, 1, 1, 1, 0, 1]
    # Window 3, scipy 'reflect' border (x1 x0 | x0 x1 ... x9 | x9 x8):
    # frame 0: median(1, 1, 0) = 1; 1: (1, 0, 1) = 1; 2: (0, 1, 0) = 0; 3: (1, 0, 0) = 0;
    # 4: (0, 0, 1) = 0; 5: (0, 1, 1) = 1; 6: 1; 7: (1, 1, 0) = 1; 8: (1, 0, 1) = 1; 9: (0, 1, 1) = 1
    filtered = [1, 1, 0, 0, 0, 1, 1, 1, 1, 1]
    out1 = binarize(_probs(p), threshold=0.5, median_window=1)
    out3 = binarize(_probs(p), threshold=0.5, median_window=3)
    assert out1.dtype == np.bool_ and out1.shape == (1, 10, 1)
    assert out1[0, :, 0].astype(int).tolist() == thresholded
    assert out3[0, :, 0].astype(int).tolist() == filtered


def test_binarize_threshold_is_inclusive() -> None:
    out = binarize(_probs([0.5, 0.4999, 0.7]), threshold=0.5, median_window=1)
    assert out[0, :, 0].tolist() == [True, False, True]
    out = binarize(_probs([0.5, 0.4999, 0.7]), threshold=0.7, median_window=1)
    assert out[0, :, 0].tolist() == [False, False, True]


def test_binarize_window_7_removes_short_blips_fills_short_gaps_per_class() -> None:
    n = 30
    blip3 = np.zeros(n)
    blip3[10:13] = 1  # 3 active frames < 4 = majority of 7 -> removed
    blip4 = np.zeros(n)
    blip4[10:14] = 1  # 4 active frames -> kept, unchanged
    gap3 = np.ones(n)
    gap3[10:13] = 0  # 3-frame gap in activity -> filled
    out = binarize(_probs(blip3, blip4, gap3), threshold=0.5, median_window=7)[0]
    assert not out[:, 0].any()
    assert out[:, 1].astype(int).tolist() == blip4.astype(int).tolist()
    assert out[:, 2].all()


def test_binarize_even_window_reaches_back_and_takes_the_upper_median() -> None:
    # Window 2 (scipy, origin 0): frame i sees frames i-1 and i, and the median of two is the larger
    # (sorted index 2 // 2 = 1), so a frame is active when it or the frame before it is; frame 0 sees
    # itself twice ('reflect' border).
    p = [0.0, 0.9, 0.0, 0.0, 0.9, 0.0]
    out = binarize(_probs(p), threshold=0.5, median_window=2)
    assert out[0, :, 0].astype(int).tolist() == [0, 1, 1, 0, 1, 1]
    # Window 4: frames i-2 .. i+1, active when at least 2 of the 4 are.
    p = [0.9, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.9, 0.9]
    out = binarize(_probs(p), threshold=0.5, median_window=4)
    # active, padded ('reflect'): 0 1 | 1 0 0 1 0 0 0 1 1 | 1 -> active frames in each 4-frame window:
    # 2 2 2 1 1 1 1 2 3
    assert out[0, :, 0].astype(int).tolist() == [1, 1, 1, 0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize("n_frames", [1, 2, 3, 5, 8, 13, 31, 156, 157])
def test_binarize_median_filter_equals_scipys(n_frames: int) -> None:
    """The counting filter gives scipy.ndimage.median_filter's values: odd and even windows, every border,
    clips shorter than the window (those go to scipy itself), sparse and dense activity."""
    from scipy.ndimage import median_filter

    rng = np.random.default_rng(n_frames)
    for window in range(1, 32):
        for density in (0.1, 0.5, 0.9):
            probs = (rng.random((3, n_frames, 4)) < density).astype(np.float32)
            expected = median_filter(probs >= 0.5, size=(1, window, 1)) if window > 1 else probs >= 0.5
            got = binarize(probs, threshold=0.5, median_window=window)
            assert got.dtype == np.bool_ and got.shape == probs.shape
            assert np.array_equal(got, expected), (n_frames, window, density)


def test_binarize_does_not_mix_files_or_classes() -> None:
    probs = np.zeros((2, 20, 2), dtype=np.float32)
    probs[0, :, 0] = 1.0  # file 0, class 0 fully active; its neighbours are silent
    out = binarize(probs, median_window=7)
    assert out[0, :, 0].all()
    assert not out[0, :, 1].any() and not out[1].any()


def test_decode_events_frames_to_seconds() -> None:
    col = np.zeros(157)
    col[3:6] = 1.0  # frames 3..5
    events = decode_events(_probs(col), ["a.wav"], ["Dog"], median_window=1)
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert len(events) == 1
    row = events.iloc[0]
    assert row.filename == "a.wav" and row.event_label == "Dog"
    assert row.onset == pytest.approx(0.19125)
    assert row.offset == pytest.approx(0.3825)


def test_decode_events_multiple_events_per_class_and_classes() -> None:
    dog = np.zeros(157)
    dog[0:2] = 1.0  # frames 0..1 -> 0.0 .. 0.1275
    dog[10:13] = 1.0  # frames 10..12 -> 0.6375 .. 0.8287
    cat = np.zeros(157)
    cat[11:12] = 1.0  # frame 11 -> 0.70125 .. 0.765
    events = decode_events(_probs(dog, cat), ["a.wav"], ["Dog", "Cat"], median_window=1)
    assert events.event_label.tolist() == ["Dog", "Dog", "Cat"]  # sorted by onset
    assert events.onset.to_numpy() == pytest.approx([0.0, 0.6375, 0.70125])
    assert events.offset.to_numpy() == pytest.approx([0.1275, 0.82875, 0.765])


def test_decode_events_clips_to_duration_and_drops_late_events() -> None:
    col = np.zeros(157)
    col[150:] = 1.0  # frames 150..156 -> 9.5625 .. 10.00875
    events = decode_events(_probs(col), ["a.wav"], ["Dog"], median_window=1)
    assert events.onset.tolist() == pytest.approx([9.5625])
    assert events.offset.tolist() == pytest.approx([10.0])  # default duration 10 s

    late = np.zeros(157)
    late[100:110] = 1.0  # 6.375 .. 7.0125
    late[120:130] = 1.0  # 7.65 .. 8.2875 -> starts after the 6.5 s clip ends: dropped
    events = decode_events(_probs(late), ["short.wav"], ["Dog"], median_window=1, durations=[6.5])
    assert events.onset.tolist() == pytest.approx([6.375])
    assert events.offset.tolist() == pytest.approx([6.5])


def test_decode_events_keeps_file_order_and_uses_median_filter() -> None:
    probs = np.zeros((3, 157, 1), dtype=np.float32)
    probs[0, 50:53, 0] = 0.9  # 3-frame blip: removed by window 7
    probs[1, 20:40, 0] = 0.9
    probs[2, 5:15, 0] = 0.9
    events = decode_events(probs, ["z.wav", "b.wav", "m.wav"], ["Speech"])  # window 7 default
    assert events.filename.tolist() == ["b.wav", "m.wav"]
    assert events.onset.to_numpy() == pytest.approx([20 * STEP, 5 * STEP])
    assert events.offset.to_numpy() == pytest.approx([40 * STEP, 15 * STEP])


def test_decode_events_empty_has_columns() -> None:
    events = decode_events(np.zeros((2, 157, 3)), ["a", "b"], ["x", "y", "z"])
    assert events.empty and list(events.columns) == list(EVENT_COLUMNS)


def _decode_loop(active: np.ndarray, names: list[str], labels: list[str], step: float) -> pd.DataFrame:
    rows = []
    for n in range(active.shape[0]):
        for c in range(active.shape[2]):
            t = 0
            while t < active.shape[1]:
                if active[n, t, c]:
                    start = t
                    while t < active.shape[1] and active[n, t, c]:
                        t += 1
                    rows.append((names[n], start * step, min(t * step, 10.0), labels[c]))
                else:
                    t += 1
    return pd.DataFrame(rows, columns=list(EVENT_COLUMNS))


def test_decode_events_matches_a_plain_loop_on_random_data() -> None:
    rng = np.random.default_rng(1)
    probs = rng.random((20, 157, 4))
    names = [f"f{i}.wav" for i in range(20)]
    labels = ["a", "b", "c", "d"]
    fast = decode_events(probs, names, labels, threshold=0.6, median_window=5)
    slow = _decode_loop(binarize(probs, 0.6, 5), names, labels, STEP)
    key = ["filename", "event_label", "onset"]
    fast = fast.sort_values(key).reset_index(drop=True)
    slow = slow.sort_values(key).reset_index(drop=True)
    assert len(fast) == len(slow) > 100
    pd.testing.assert_frame_equal(fast, slow)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"median_window": 0}, "median_window"),
        ({"median_window": 2.5}, "median_window"),
        ({"threshold": 1.5}, "threshold"),
        ({"durations": [10.0, 10.0]}, "durations"),
        ({"durations": [0.0]}, "durations"),
    ],
)
def test_decode_events_rejects_bad_parameters(kwargs: dict, fragment: str) -> None:
    with pytest.raises(PostprocessError, match=fragment):
        decode_events(np.zeros((1, 157, 1)), ["a.wav"], ["Dog"], **kwargs)


def test_decode_events_rejects_mismatched_names_and_shapes() -> None:
    with pytest.raises(PostprocessError, match="filenames"):
        decode_events(np.zeros((2, 157, 1)), ["a.wav"], ["Dog"])
    with pytest.raises(PostprocessError, match="labels"):
        decode_events(np.zeros((1, 157, 2)), ["a.wav"], ["Dog"])
    with pytest.raises(PostprocessError, match="shape"):
        decode_events(np.zeros((157, 2)), ["a.wav"], ["Dog", "Cat"])
