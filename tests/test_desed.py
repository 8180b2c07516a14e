"""sed.data.desed: DESED 2020 metadata reading, checks, splits and label encoding."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sed.constants import DESED_CLASSES, FRAME_STEP_S, N_OUT_FRAMES
from sed.data import DatasetError, Event, encode_strong, encode_weak, load_desed
from sed.data.desed import LAYOUT, PUBLIC_META, is_validation_file

SYN = LAYOUT["synthetic"]
WEAK = LAYOUT["weak"]
UNL = LAYOUT["unlabeled"]
VAL = LAYOUT["validation"]
EVAL = LAYOUT["public_eval"]


# --------------------------------------------------------------------------- encoding


def test_encode_strong_floors_the_offset_as_the_reference_by_default():
    labels = ("Cat", "Dog")
    # step = 0.06375 s. Dog 1.0-2.0 s: floor(15.69) = 15 .. floor(31.37) = 31 excluded
    # -> frames 15..30 (16 frames; 'ceil' adds frame 31).
    # Cat 0.1275-0.255 s lies exactly on frame boundaries 2 and 4 -> frames 2, 3 either way.
    # Cat 9.9-10.0 s: floor(155.29) = 155 .. floor(156.86) = 156 excluded -> frame 155.
    # A 1 ms event inside frame 3 marks nothing (onset and offset floor to the same frame).
    events = [Event(1.0, 2.0, "Dog"), Event(0.1275, 0.255, "Cat"), Event(9.9, 10.0, "Cat"), Event(0.2, 0.201, "Cat")]
    targets = encode_strong(events, labels)
    assert np.flatnonzero(targets[:, 1]).tolist() == list(range(15, 31))
    assert np.flatnonzero(targets[:, 0]).tolist() == [2, 3, 155]
    assert targets.sum() == 16 + 3
    assert np.array_equal(targets, encode_strong(events, labels, offset_rounding="floor"))
    with pytest.raises(ValueError, match="offset_rounding"):
        encode_strong(events, labels, offset_rounding="round")


def test_encode_strong_marks_hand_computed_frames():
    labels = ("Cat", "Dog")
    # step = 0.06375 s. Dog 1.0-2.0 s: floor(1.0 / 0.06375) = floor(15.69) = 15,
    # ceil(2.0 / 0.06375) - 1 = ceil(31.37) - 1 = 31  -> frames 15..31 (17 frames).
    # Cat 0.1275-0.255 s lies exactly on frame boundaries 2 and 4 -> frames 2, 3.
    # Cat 9.9-10.0 s: floor(155.29) = 155, ceil(156.86) - 1 = 156 -> frames 155, 156.
    events = [Event(1.0, 2.0, "Dog"), Event(0.1275, 0.255, "Cat"), Event(9.9, 10.0, "Cat")]
    targets = encode_strong(events, labels, offset_rounding="ceil")
    assert targets.shape == (157, 2) and targets.dtype == np.float32
    assert np.flatnonzero(targets[:, 1]).tolist() == list(range(15, 32))
    assert np.flatnonzero(targets[:, 0]).tolist() == [2, 3, 155, 156]
    assert targets.sum() == 17 + 4


def test_encode_strong_clips_to_the_frame_range_and_keeps_tiny_events():
    # n_frames = 10: an event from 0.5 s (frame floor(7.84) = 7) to 5 s (past frame 9) -> frames 7, 8, 9.
    targets = encode_strong([Event(0.5, 5.0, "Dog")], ["Dog"], n_frames=10)
    assert np.flatnonzero(targets[:, 0]).tolist() == [7, 8, 9]
    # With 'ceil' a 1 ms event inside frame 3 (0.19125-0.255 s) still marks that one frame.
    targets = encode_strong([Event(0.2, 0.201, "Dog")], ["Dog"], offset_rounding="ceil")
    assert np.flatnonzero(targets[:, 0]).tolist() == [3]
    # Defaults are the baseline's output grid.
    assert N_OUT_FRAMES == 157 and math.isclose(FRAME_STEP_S, 0.06375)


def test_encode_strong_refuses_a_label_outside_the_set():
    with pytest.raises(DatasetError, match="'Unicorn'"):
        encode_strong([Event(0.0, 1.0, "Unicorn")], DESED_CLASSES)


def test_encode_weak():
    target = encode_weak(["Speech", "Dog", "Speech"], DESED_CLASSES)
    assert target.dtype == np.float32
    assert target.tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 1, 0]
    assert encode_weak([], DESED_CLASSES).sum() == 0
    with pytest.raises(DatasetError):
        encode_weak(["Unicorn"], DESED_CLASSES)


# --------------------------------------------------------------------------- a small hand-written dataset


def _names(side_val: bool, count: int, seed: int = 2020) -> list[str]:
    """Synthetic file names that the hash split puts on the wanted side."""
    names = [f"s{i}.wav" for i in range(1000) if is_validation_file(f"s{i}.wav", seed) == side_val]
    return names[:count]


TRAIN_NAMES = _names(False, 3)
VAL_NAMES = _names(True, 2)


def _write_audio(path: Path, seconds: float = 10.0) -> None:
    """A silent clip of `seconds` (at 1 kHz: the loader reads only its length, frames / rate)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(int(round(1000 * seconds)), dtype=np.int16), 1000, subtype="PCM_16")


def _default_files() -> dict[str, str]:
    syn = ["filename\tonset\toffset\tevent_label"]
    for i, name in enumerate(TRAIN_NAMES + VAL_NAMES):
        syn.append(f"{name}\t{0.5 + i}\t{2.0 + i}\tDog")
    syn.append(f"{TRAIN_NAMES[0]}\t3.0\t9.5\tSpeech")
    return {
        SYN.metadata: "\n".join(syn) + "\n",
        WEAK.metadata: "filename\tevent_labels\nw1.wav\tDog,Speech\nw2.wav\tCat\n",
        UNL.metadata: "filename\nu1.wav\nu2.wav\nu3.wav\n",
        # v2 has no events: empty onset, offset and label as in the shipped validation.tsv.
        VAL.metadata: "filename\tonset\toffset\tevent_label\nv1.wav\t0.000\t1.500\tCat\nv2.wav\t\t\t\n",
        EVAL.metadata: "filename\tonset\toffset\tevent_label\ne1.wav\t1.0\t4.5\tBlender\n",
        # e2 has a duration but no event: kept as a clip without events.
        PUBLIC_META: "filename\tduration\ne1.wav\t5.0\ne2.wav\t10.0\n",
    }


def _audio_files() -> list[str]:
    return (
        [f"{SYN.audio_dir}/{n}" for n in TRAIN_NAMES + VAL_NAMES]
        + [f"{WEAK.audio_dir}/{n}" for n in ("w1.wav", "w2.wav")]
        + [f"{UNL.audio_dir}/{n}" for n in ("u1.wav", "u2.wav", "u3.wav")]
        + [f"{VAL.audio_dir}/{n}" for n in ("v1.wav", "v2.wav")]
        + [f"{EVAL.audio_dir}/{n}" for n in ("e1.wav", "e2.wav")]
    )


def make_dataset(root: Path, files: dict[str, str | None] | None = None, skip_audio: tuple[str, ...] = ()) -> Path:
    contents = _default_files()
    contents.update(files or {})
    for relative, text in contents.items():
        if text is None:
            continue
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    for relative in _audio_files():
        if relative not in skip_audio:
            _write_audio(root / relative)
    return root


def test_load_reads_every_part(tmp_path):
    data = load_desed(make_dataset(tmp_path))
    assert data.labels == DESED_CLASSES  # every label is a DESED class -> the ten, in order
    assert list(data.splits) == ["synthetic_train", "synthetic_val", "weak", "unlabeled", "validation", "public_eval"]
    assert data.splits["synthetic_train"].filenames == TRAIN_NAMES
    assert data.splits["synthetic_val"].filenames == VAL_NAMES
    assert data.missing_audio == dict.fromkeys(data.splits, 0)

    train = data.splits["synthetic_train"]
    assert train.events[0] == [Event(0.5, 2.0, "Dog"), Event(3.0, 9.5, "Speech")]
    assert train.weak_labels[0] == ["Dog", "Speech"]
    assert train.audio_paths[0] == tmp_path.resolve() / SYN.audio_dir / TRAIN_NAMES[0]
    assert train.durations == [10.0] * 3

    weak = data.splits["weak"]
    assert weak.events is None and weak.weak_labels == [["Dog", "Speech"], ["Cat"]]
    assert weak.weak_targets(data.labels)[0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 1, 0]
    unlabeled = data.splits["unlabeled"]
    assert unlabeled.filenames == ["u1.wav", "u2.wav", "u3.wav"]
    assert unlabeled.events is None and unlabeled.weak_labels is None
    with pytest.raises(DatasetError):
        unlabeled.weak_targets(data.labels)
    with pytest.raises(DatasetError):
        weak.strong_targets(data.labels)

    validation = data.splits["validation"]
    assert validation.events == [[Event(0.0, 1.5, "Cat")], []]
    strong = validation.strong_targets(data.labels)
    assert strong.shape == (2, 157, 10)
    # Cat 0-1.5 s: frames 0 .. floor(23.53) = 23 excluded (the reference), 'ceil' keeps 23.
    assert np.flatnonzero(strong[0, :, 2]).tolist() == list(range(23)) and strong[1].sum() == 0
    ceil = validation.strong_targets(data.labels, offset_rounding="ceil")
    assert np.flatnonzero(ceil[0, :, 2]).tolist() == list(range(24))
    assert validation.weak_targets(data.labels).tolist()[1] == [0.0] * 10

    public = data.splits["public_eval"]
    assert public.filenames == ["e1.wav", "e2.wav"]
    assert public.durations == [5.0, 10.0]
    assert public.events == [[Event(1.0, 4.5, "Blender")], []]
    frame = public.events_frame()
    assert list(frame.columns) == ["filename", "onset", "offset", "event_label"]
    assert frame.values.tolist() == [["e1.wav", 1.0, 4.5, "Blender"]]


def test_labels_outside_desed_give_the_sorted_union(tmp_path):
    files = {WEAK.metadata: "filename\tevent_labels\nw1.wav\tzebra,Dog\nw2.wav\tCat\n"}
    data = load_desed(make_dataset(tmp_path, files))
    assert data.labels == ("Blender", "Cat", "Dog", "Speech", "zebra")
    assert data.splits["weak"].weak_targets(data.labels).tolist() == [[0, 0, 1, 0, 1], [0, 1, 0, 0, 0]]


def test_a_fixed_label_set_is_kept(tmp_path):
    labels = ("Speech", "Dog", "Cat", "Blender")
    data = load_desed(make_dataset(tmp_path), labels=labels)
    assert data.labels == labels
    assert data.splits["synthetic_train"].strong_targets(labels).shape == (3, 157, 4)


def test_blank_lines_do_not_shift_line_numbers(tmp_path):
    files = {WEAK.metadata: "filename\tevent_labels\n\nw1.wav\tDog\n\nw2.wav\tCat\tExtra\n"}
    with pytest.raises(DatasetError, match=r"weak\.tsv line 5"):
        load_desed(make_dataset(tmp_path, files))


# --------------------------------------------------------------------------- refusals

STRONG_HEADER = "filename\tonset\toffset\tevent_label\n"


def _syn(*rows: str) -> str:
    return STRONG_HEADER + "".join(r + "\n" for r in rows)


T0, T1, V0 = TRAIN_NAMES[0], TRAIN_NAMES[1], VAL_NAMES[0]

# id: (files to replace (None = delete), audio files not written, load_desed kwargs, expected message parts)
REFUSALS = {
    "missing metadata file": ({WEAK.metadata: None}, (), {}, ["weak.tsv", "not found", "Fix"]),
    "missing column": (
        {WEAK.metadata: "filename\tlabels\nw1.wav\tDog\nw2.wav\tCat\n"},
        (),
        {},
        ["weak.tsv line 1", "event_labels"],
    ),
    "no header line": (
        {UNL.metadata: "u1.wav\nu2.wav\nu3.wav\n"},
        (),
        {},
        ["unlabel_in_domain.tsv line 1", "header"],
    ),
    "not tab separated": (
        {SYN.metadata: "filename,onset,offset,event_label\n"},
        (),
        {},
        ["soundscapes.tsv line 1", "tab"],
    ),
    "non-numeric onset": (
        {SYN.metadata: _syn(f"{T0}\t0.5\t2\tDog", f"{T1}\tabc\t2\tDog", f"{V0}\t1\t2\tDog")},
        (),
        {},
        ["soundscapes.tsv line 3", "'abc'", "not a number"],
    ),
    "negative time": (
        {SYN.metadata: _syn(f"{T0}\t-0.5\t2\tDog", f"{T1}\t0\t2\tDog", f"{V0}\t1\t2\tDog")},
        (),
        {},
        ["soundscapes.tsv line 2", "negative"],
    ),
    "onset not before offset": (
        {VAL.metadata: STRONG_HEADER + "v1.wav\t0.0\t1.5\tCat\nv2.wav\t3.0\t3.0\tDog\n"},
        (),
        {},
        ["validation.tsv line 3", "onset 3.0 >= offset 3.0"],
    ),
    "event past the 10 s clip end": (
        {VAL.metadata: STRONG_HEADER + "v1.wav\t9.0\t10.501\tCat\nv2.wav\t\t\t\n"},
        (),
        {},
        ["validation.tsv line 2", "after the clip end", "10.0 s", "v1.wav", "0.5 s"],
    ),
    "event past the public_meta duration": (
        {EVAL.metadata: STRONG_HEADER + "e1.wav\t1.0\t5.6\tBlender\n"},
        (),
        {},
        ["public.tsv line 2", "5.0 s", "public_meta.tsv"],
    ),
    "eval clip without duration": (
        {EVAL.metadata: STRONG_HEADER + "e1.wav\t1.0\t4.5\tBlender\ne9.wav\t1\t2\tDog\n"},
        (),
        {},
        ["public.tsv line 3", "no duration", "public_meta.tsv"],
    ),
    "bad duration": (
        {PUBLIC_META: "filename\tduration\ne1.wav\t5.0\ne2.wav\t0\n"},
        (),
        {},
        ["public_meta.tsv line 3", "not positive"],
    ),
    "unknown label for a fixed set": (
        {WEAK.metadata: "filename\tevent_labels\nw1.wav\tDog,Unicorn\nw2.wav\tCat\n"},
        (),
        {"labels": DESED_CLASSES},
        ["weak.tsv line 2", "'Unicorn'", "Alarm_bell_ringing"],
    ),
    "unknown strong label for a fixed set": (
        {},
        (),
        {"labels": ("Dog", "Cat", "Blender")},
        ["soundscapes.tsv line 7", "'Speech'"],
    ),
    "partly empty event": (
        {VAL.metadata: STRONG_HEADER + "v1.wav\t0.0\t\tCat\nv2.wav\t\t\t\n"},
        (),
        {},
        ["validation.tsv line 2", "offset"],
    ),
    "too many fields": (
        {UNL.metadata: "filename\nu1.wav\nu2.wav\tx\nu3.wav\n"},
        (),
        {},
        ["unlabel_in_domain.tsv line 3", "fields"],
    ),
    "duplicate weak clip": (
        {WEAK.metadata: "filename\tevent_labels\nw1.wav\tDog\nw2.wav\tCat\nw1.wav\tCat\n"},
        (),
        {},
        ["weak.tsv line 4", "line 2", "twice"],
    ),
    "missing audio": ({}, (f"{WEAK.audio_dir}/w2.wav",), {}, ["w2.wav", "weak.tsv", "line 3", "missing"]),
    "empty split": ({UNL.metadata: "filename\n"}, (), {}, ["unlabel_in_domain.tsv", "no clips"]),
    "empty selection split": (
        {SYN.metadata: _syn(f"{T0}\t0.5\t2\tDog", f"{T1}\t1\t2\tDog")},
        (),
        {},
        ["soundscapes.tsv", "synthetic_val", "split_seed"],
    ),
    "filename escaping the root": (
        {UNL.metadata: "filename\nu1.wav\n../../../x.wav\nu3.wav\n"},
        (),
        {},
        ["unlabel_in_domain.tsv line 3", "'../../../x.wav'", "outside"],
    ),
    "absolute filename": (
        {UNL.metadata: "filename\nu1.wav\n/etc/passwd\n"},
        (),
        {},
        ["unlabel_in_domain.tsv line 3", "outside"],
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
def test_bad_data_is_refused_with_file_line_and_fix(tmp_path, case):
    files, skipped, kwargs, expected = REFUSALS[case]
    root = make_dataset(tmp_path, files, skip_audio=skipped)  # a None content is not written
    with pytest.raises(DatasetError) as caught:
        load_desed(root, **kwargs)
    message = str(caught.value)
    for part in expected:
        assert part in message, f"{part!r} not in: {message}"
    assert "Fix" in message
    assert isinstance(caught.value, ValueError)


def test_unreadable_audio_is_refused(tmp_path):
    root = make_dataset(tmp_path)
    (root / VAL.audio_dir / "v2.wav").write_bytes(b"RIFF....not really a wave file")
    with pytest.raises(DatasetError, match=r"v2\.wav \(listed on line 3\): unreadable") as caught:
        load_desed(root)
    assert "validation.tsv" in str(caught.value)


def test_a_root_that_is_not_a_folder_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        load_desed(tmp_path / "nowhere")


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1])
def test_val_fraction_outside_0_1_is_refused(tmp_path, bad):
    with pytest.raises(DatasetError, match="val_fraction"):
        load_desed(make_dataset(tmp_path), val_fraction=bad)


def test_skip_missing_audio_drops_and_counts_per_split(tmp_path, caplog):
    skipped = (f"{SYN.audio_dir}/{TRAIN_NAMES[1]}", f"{WEAK.audio_dir}/w1.wav", f"{UNL.audio_dir}/u3.wav")
    root = make_dataset(tmp_path, skip_audio=skipped)
    (root / VAL.audio_dir / "v1.wav").write_bytes(b"garbage")  # unreadable counts too
    with caplog.at_level(logging.WARNING, logger="sed.data.desed"):
        data = load_desed(root, skip_missing_audio=True)
    assert data.missing_audio == {
        "synthetic_train": 1,
        "synthetic_val": 0,
        "weak": 1,
        "unlabeled": 1,
        "validation": 1,
        "public_eval": 0,
    }
    assert data.splits["synthetic_train"].filenames == [TRAIN_NAMES[0], TRAIN_NAMES[2]]
    assert len(data.splits["synthetic_train"].events) == 2 == len(data.splits["synthetic_train"].audio_paths)
    assert data.splits["weak"].filenames == ["w2.wav"] and data.splits["weak"].weak_labels == [["Cat"]]
    assert data.splits["validation"].filenames == ["v2.wav"] and data.splits["validation"].events == [[]]
    assert "skipped 4 missing or unreadable audio files" in caplog.text


def test_skip_missing_audio_still_refuses_a_split_left_empty(tmp_path):
    root = make_dataset(tmp_path, skip_audio=(f"{EVAL.audio_dir}/e1.wav", f"{EVAL.audio_dir}/e2.wav"))
    with pytest.raises(DatasetError, match=r"public\.tsv.*all 2 audio files"):
        load_desed(root, skip_missing_audio=True)


# --------------------------------------------------------------------------- the 80/20 split


def test_split_is_80_20_and_depends_on_name_and_seed_only():
    names = [f"clip_{i}.wav" for i in range(5000)]
    sides = np.array([is_validation_file(n) for n in names])
    assert abs(sides.mean() - 0.2) < 0.02  # binomial sd 0.0057
    # Same answer whatever the order or the other files (it is a function of one name).
    assert [is_validation_file(n) for n in reversed(names[:100])] == list(sides[:100][::-1])
    other = np.array([is_validation_file(n, split_seed=7) for n in names])
    assert abs(other.mean() - 0.2) < 0.02 and (other != sides).mean() > 0.2
    assert abs(np.mean([is_validation_file(n, val_fraction=0.5) for n in names]) - 0.5) < 0.03


def test_split_is_stable_when_rows_are_reordered_or_removed(tmp_path):
    names = [f"x{i}.wav" for i in range(40)]
    rows = [f"{n}\t1.0\t2.0\tDog" for n in names]

    def sides(root: Path, kept: list[str]) -> dict[str, str]:
        make_dataset(root, {SYN.metadata: _syn(*kept)})
        for n in names:
            _write_audio(root / SYN.audio_dir / n)
        data = load_desed(root)
        return {n: side for side in ("synthetic_train", "synthetic_val") for n in data.splits[side].filenames}

    full = sides(tmp_path / "a", rows)
    assert 0 < sum(v == "synthetic_val" for v in full.values()) < 40
    shuffled = sides(tmp_path / "b", rows[::-1])
    subset = sides(tmp_path / "c", rows[5:30])
    assert shuffled == full
    assert subset == {n: full[n] for n in names[5:30]}


# --------------------------------------------------------------------------- the published DESED 2020 metadata
# Rows shaped like the published files: validation.tsv has four events ending 3-115 ms
# after their 10 s clip (e.g. line 804, 'Dog' ending at 10.115 s); public_meta.tsv has an
# 11 s clip; the weak set has clips shorter than 10 s.

REAL_VAL = (
    STRONG_HEADER
    + "Y00pbt6aJV8Y_350.000_360.000.wav\t0.000\t1.500\tCat\n"
    + "Y00pbt6aJV8Y_350.000_360.000.wav\t8.235\t10.115\tDog\n"
    + "Y0V2mThoD3MI_30.000_40.000.wav\t5.000\t10.003\tSpeech\n"
    + "Y0V2mThoD3MI_30.000_40.000.wav\t10.050\t10.300\tDishes\n"
)
REAL_EVAL = STRONG_HEADER + "YdA0U1bv6sv4_250.000_261.000.wav\t9.500\t10.900\tBlender\ne1.wav\t1.0\t4.5\tBlender\n"
REAL_META = "filename\tduration\nYdA0U1bv6sv4_250.000_261.000.wav\t11.0\ne1.wav\t5.0\n"
REAL_VAL_NAMES = ("Y00pbt6aJV8Y_350.000_360.000.wav", "Y0V2mThoD3MI_30.000_40.000.wav")


def _real_shaped(root: Path, **files: str) -> Path:
    make_dataset(root, {VAL.metadata: REAL_VAL, EVAL.metadata: REAL_EVAL, PUBLIC_META: REAL_META, **files})
    for name in REAL_VAL_NAMES:
        _write_audio(root / VAL.audio_dir / name)
    _write_audio(root / EVAL.audio_dir / "YdA0U1bv6sv4_250.000_261.000.wav", 11.0)
    return root


def test_events_a_little_past_the_clip_end_are_clipped_and_counted(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="sed.data.desed"):
        data = load_desed(_real_shaped(tmp_path))
    validation = data.splits["validation"]
    assert validation.filenames == list(REAL_VAL_NAMES)
    assert validation.durations == [10.0, 10.0]  # the audio files' own length
    # 10.115 -> 10.0 and 10.003 -> 10.0 clipped; Dishes 10.05-10.3 starts after the end: dropped.
    assert validation.events == [
        [Event(0.0, 1.5, "Cat"), Event(8.235, 10.0, "Dog")],
        [Event(5.0, 10.0, "Speech")],
    ]
    assert validation.weak_labels == [["Cat", "Dog"], ["Speech"]]  # no Dishes left
    assert data.clipped_events["validation"] == 3
    assert sum(data.clipped_events.values()) == 3
    assert "clipped 3 events" in caplog.text and "validation: 3" in caplog.text
    # Frame targets end at the clip end: Dog 8.235-10.0 s -> frames floor(129.2) = 129 .. 156.
    strong = validation.strong_targets(data.labels)
    assert np.flatnonzero(strong[0, :, data.labels.index("Dog")]).tolist() == list(range(129, 156))
    # The 11 s public-eval clip keeps its duration from public_meta.tsv and its event to 10.9 s.
    public = data.splits["public_eval"]
    assert public.durations == [11.0, 5.0]
    assert public.events[0] == [Event(9.5, 10.9, "Blender")]
    assert data.clipped_events["public_eval"] == 0


def test_durations_come_from_a_durations_file_else_the_audio(tmp_path):
    root = _real_shaped(tmp_path)
    _write_audio(root / WEAK.audio_dir / "w2.wav", 7.25)  # a weak clip shorter than 10 s
    (root / "metadata/validation/validation_durations.tsv").write_text(
        f"filename\tduration\n{REAL_VAL_NAMES[0]}\t9.9\n{REAL_VAL_NAMES[1]}\t10.2\n"
    )
    data = load_desed(root)
    assert data.splits["weak"].durations == [10.0, 7.25]
    validation = data.splits["validation"]
    assert validation.durations == [9.9, 10.2]  # the durations file wins over the audio length
    # Against 9.9 s the Dog event (to 10.115) is clipped to 9.9; against 10.2 s Speech (10.003)
    # is not, while Dishes 10.05-10.3 is clipped to 10.2.
    assert validation.events == [
        [Event(0.0, 1.5, "Cat"), Event(8.235, 9.9, "Dog")],
        [Event(5.0, 10.003, "Speech"), Event(10.05, 10.2, "Dishes")],
    ]
    assert data.clipped_events["validation"] == 2


def test_a_durations_file_must_list_every_clip_and_far_offsets_are_refused(tmp_path):
    root = _real_shaped(tmp_path)
    (root / "metadata/validation/validation_durations.tsv").write_text(f"filename\tduration\n{REAL_VAL_NAMES[0]}\t10\n")
    with pytest.raises(
        DatasetError, match=r"validation\.tsv line 4: 'Y0V2mThoD3MI.*no duration in .*validation_durations\.tsv"
    ):
        load_desed(root)
    root = _real_shaped(
        tmp_path / "far",
        **{VAL.metadata: STRONG_HEADER + f"{REAL_VAL_NAMES[0]}\t9.0\t10.6\tDog\n" + f"{REAL_VAL_NAMES[1]}\t\t\t\n"},
    )
    with pytest.raises(DatasetError, match=r"line 2: event 'Dog'.*ends at 10\.6 s.*the length of .*Y00pbt6aJV8Y"):
        load_desed(root)


# --------------------------------------------------------------------------- layouts

from sed.data.desed import LAYOUT_2021  # noqa: E402


def _make_2021(root: Path, with_public: bool = True) -> Path:
    """The DESED_task (2021+) layout: *_16k folders, synthetic21 train/validation, no unlabeled TSV."""
    files = {
        LAYOUT_2021["synthetic"].metadata: STRONG_HEADER + "t1.wav\t0.5\t2.0\tDog\nt2.wav\t1.0\t3.0\tCat\n",
        LAYOUT_2021["synthetic_val"].metadata: STRONG_HEADER + "sv1.wav\t2.0\t4.0\tSpeech\n",
        "metadata/validation/synthetic21_validation/durations.tsv": "filename\tduration\nsv1.wav\t9.5\n",
        LAYOUT_2021["weak"].metadata: "filename\tevent_labels\nw1.wav\tDog\n",
        LAYOUT_2021["validation"].metadata: STRONG_HEADER + "v1.wav\t0.0\t10.1\tCat\n",
        "metadata/validation/validation_durations.tsv": "filename\tduration\nv1.wav\t10.0\n",
    }
    if with_public:
        files[LAYOUT_2021["public_eval"].metadata] = STRONG_HEADER + "e1.wav\t1.0\t2.0\tDog\n"
        files["metadata/eval/public_durations.tsv"] = "filename\tduration\ne1.wav\t10.0\n"
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    audio = {
        "synthetic": ["t1.wav", "t2.wav"],
        "synthetic_val": ["sv1.wav"],
        "weak": ["w1.wav"],
        "unlabeled": ["u1.wav", "u2.flac"],
        "validation": ["v1.wav"],
    }
    if with_public:
        audio["public_eval"] = ["e1.wav"]
    for part, names in audio.items():
        for name in names:
            _write_audio(root / LAYOUT_2021[part].audio_dir / name)
    return root


def test_the_2021_layout_is_detected_and_its_synthetic_validation_selects(tmp_path):
    data = load_desed(_make_2021(tmp_path))
    assert data.layout == "desed2021"
    # The whole synthetic21_train set trains; synthetic21_validation is the selection split.
    assert data.splits["synthetic_train"].filenames == ["t1.wav", "t2.wav"]
    assert data.splits["synthetic_val"].filenames == ["sv1.wav"]
    assert data.splits["synthetic_val"].durations == [9.5]  # its own durations.tsv
    assert data.splits["synthetic_val"].audio_paths[0].parent.name == "soundscapes_16k"
    # No unlabel_in_domain.tsv: the unlabeled set is every audio file of its folder.
    assert data.splits["unlabeled"].filenames == ["u1.wav", "u2.flac"]
    assert data.splits["validation"].events == [[Event(0.0, 10.0, "Cat")]] and data.clipped_events["validation"] == 1
    assert data.splits["public_eval"].audio_paths[0].parent.name == "public_16k"


def test_a_layout_file_maps_a_public_eval_set_in_its_own_root(tmp_path):
    root = _make_2021(tmp_path / "desed", with_public=False)
    with pytest.raises(DatasetError, match=r"public\.tsv.*not found.*layout file"):
        load_desed(root)
    public = tmp_path / "public_eval_root"
    (public / "metadata").mkdir(parents=True)
    (public / "metadata" / "public.tsv").write_text(STRONG_HEADER + "e1.wav\t1.0\t2.0\tDog\ne2.wav\t\t\t\n")
    (public / "metadata" / "public_durations.tsv").write_text("filename\tduration\ne1.wav\t10.0\ne2.wav\t11.0\n")
    _write_audio(public / "audio" / "e1.wav")
    _write_audio(public / "audio" / "e2.wav", 11.0)
    layout = tmp_path / "layout.yaml"
    layout.write_text(
        "base: desed2021\n"
        f"public_eval:\n  metadata: {public / 'metadata/public.tsv'}\n  audio: {public / 'audio'}\n"
        f"  durations: {public / 'metadata/public_durations.tsv'}\n"
    )
    data = load_desed(root, layout=str(layout))
    assert data.layout == str(layout)
    assert data.splits["public_eval"].filenames == ["e1.wav", "e2.wav"]
    assert data.splits["public_eval"].durations == [10.0, 11.0]
    assert data.splits["synthetic_val"].filenames == ["sv1.wav"]  # the rest from the base layout
    layout.write_text("base: desed2021\npublic_evaluation: {audio: x}\n")
    with pytest.raises(DatasetError, match=r"layout\.yaml: unknown part 'public_evaluation'"):
        load_desed(root, layout=str(layout))


def test_no_known_layout_says_what_was_looked_for_where(tmp_path):
    (tmp_path / "metadata").mkdir()
    with pytest.raises(DatasetError) as caught:
        load_desed(tmp_path)
    message = str(caught.value)
    for part in (
        "no DESED layout found",
        "desed2021: metadata/train/synthetic21_train/soundscapes.tsv",
        "desed2020: metadata/train/synthetic20/soundscapes.tsv",
        "--set layout=FILE",
    ):
        assert part in message
