"""The `gap` embedded regime: old sizes unchanged, DESED-like part counts, a measurable domain gap."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from sed.config import EMBEDDED_SIZES
from sed.data import synth
from sed.data.desed import load_desed
from sed.data.domains import CLEAN, FAR_DOMAINS, GAP_DOMAINS, RECORDED, RECORDED_FAR, Domain
from sed.data.sounds import SR, render_clip

#: Per clip (seeds 0 and 3, every part, clips 0 and 7): the events, and the sum and the sum of
#: absolute values of the int16 samples in each of 100 blocks of 0.1 s, rendered with the generator
#: as committed before domains existed (728cc53; the samples' sha256 was eed6975d...f671df04b).
ORIGINAL_CLIPS = Path(__file__).parent / "data" / "original_clips.json"
#: How far a block's sums may move. scipy's FFT differs in the last bit between releases (1.17 vs
#: 1.18: up to 301 of 160000 samples one int16 step apart, block sums at most 6 apart), so the
#: bytes are not portable; a change to the generator moves block sums by thousands.
BLOCK_TOLERANCE = 16  # 1 % of a block's 1600 samples


def test_the_original_sizes_render_the_same_clips_as_before_domains():
    reference = json.loads(ORIGINAL_CLIPS.read_text())
    for seed in (0, 3):
        for part in ("synthetic", "weak", "unlabeled", "validation", "public_eval"):
            for index in (0, 7):
                samples, events = render_clip(synth._clip_rng(seed, part, index))
                expected = reference[f"{seed}_{part}_{index}"]
                assert repr(events) == expected["events"], (seed, part, index)
                blocks = samples.astype(np.int64).reshape(100, -1)
                sums = np.abs(blocks.sum(axis=1) - np.array(expected["block_sum"]))
                magnitudes = np.abs(np.abs(blocks).sum(axis=1) - np.array(expected["block_abs"]))
                assert sums.max() <= BLOCK_TOLERANCE, (seed, part, index, int(sums.max()))
                assert magnitudes.max() <= BLOCK_TOLERANCE, (seed, part, index, int(magnitudes.max()))
    assert synth.SIZES["default"] == synth.PartSizes(400, 200, 400, 100, 100)
    assert synth.SIZES["small"] == synth.PartSizes(160, 80, 160, 40, 40)
    assert synth.SIZES["tiny"] == synth.PartSizes(20, 8, 16, 8, 8)
    assert not any(size in synth.DOMAINS for size in ("tiny", "small", "default"))


def test_gap_is_semi_supervised_with_a_clean_strong_part_and_recorded_rest():
    assert "gap" in EMBEDDED_SIZES
    sizes = synth.SIZES["gap"]
    labelled = sizes.synthetic + sizes.weak
    assert sizes.unlabeled >= 3 * labelled  # DESED 2020: 14412 vs 2584 + 1578 (3.5x)
    assert sizes.unlabeled >= 10 * sizes.weak  # DESED: 9.1x
    assert synth.DOMAINS["gap"] is GAP_DOMAINS
    assert GAP_DOMAINS["synthetic"] is CLEAN
    assert all(GAP_DOMAINS[p] is RECORDED for p in ("weak", "unlabeled", "validation", "public_eval"))


def _ebr_db(samples: np.ndarray, events) -> float:
    """dB RMS inside the labelled regions minus dB RMS outside them."""
    x = samples.astype(np.float64)
    inside = np.zeros(len(x), dtype=bool)
    for event in events:
        inside[int(event.onset * SR) : int(event.offset * SR)] = True
    if inside.all() or not inside.any():
        return float("nan")
    return float(10 * np.log10(np.mean(x[inside] ** 2) / np.mean(x[~inside] ** 2)))


def _clips(domain: Domain, n: int = 8):
    return [render_clip(synth._clip_rng(0, "public_eval", i), domain) for i in range(n)]


def _spectrum_db(samples: np.ndarray) -> np.ndarray:
    """Power in dB of 16 equal bands from 100 Hz to 8 kHz."""
    power = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    bands = np.array_split(power[len(power) // 80 :], 16)
    return 10 * np.log10(np.array([b.mean() for b in bands]) + 1e-9)


def test_the_domain_gap_is_measurable_in_the_audio():
    clean, recorded = _clips(CLEAN), _clips(RECORDED)  # same streams: the same events
    ebr_clean = np.nanmedian([_ebr_db(s, e) for s, e in clean])
    ebr_recorded = np.nanmedian([_ebr_db(s, e) for s, e in recorded])
    assert ebr_clean - ebr_recorded > 4.0, (ebr_clean, ebr_recorded)

    # the recording chain colours the spectrum: the same clip (same stream) with and without it
    flat = Domain(ebr_db=RECORDED.ebr_db, background_dbfs=RECORDED.background_dbfs)

    colour = []
    for index in range(4):
        coloured, _ = render_clip(synth._clip_rng(0, "public_eval", index), RECORDED)
        plain, _ = render_clip(synth._clip_rng(0, "public_eval", index), flat)
        colour.append(float(np.std(_spectrum_db(coloured) - _spectrum_db(plain))))
    assert np.median(colour) > 2.0, colour


def test_the_recording_chain_draws_after_the_clip_so_events_do_not_move():
    flat = Domain(ebr_db=RECORDED.ebr_db, background_dbfs=RECORDED.background_dbfs)
    for index in range(3):
        _, events_flat = render_clip(synth._clip_rng(1, "weak", index), flat)
        _, events_recorded = render_clip(synth._clip_rng(1, "weak", index), RECORDED)
        assert events_flat == events_recorded


def test_a_gap_dataset_loads_with_its_parts(tmp_path, monkeypatch):
    monkeypatch.setitem(synth.SIZES, "gap", synth.PartSizes(6, 3, 9, 3, 3))
    root = synth.generate_dataset(tmp_path / "gap", "gap", seed=0)
    dataset = load_desed(root)
    counts = {name: len(split.filenames) for name, split in dataset.splits.items()}
    assert counts["weak"] == 3 and counts["unlabeled"] == 9
    assert counts["synthetic_train"] + counts["synthetic_val"] == 6
    with pytest.raises(Exception, match="unknown embedded dataset size"):
        synth.generate_dataset(tmp_path / "other", "huge", seed=0)


def test_scarce_is_gap_with_60_of_its_200_labelled_clips(tmp_path, monkeypatch):
    gap, scarce = synth.SIZES["gap"], synth.SIZES["scarce"]
    assert "scarce" in EMBEDDED_SIZES and synth.DOMAINS["scarce"] is GAP_DOMAINS
    assert (scarce.synthetic, scarce.weak) == (40, 20) and (gap.synthetic, gap.weak) == (150, 50)
    assert (scarce.unlabeled, scarce.validation, scarce.public_eval) == (gap.unlabeled, 100, 100)
    # a clip is the same in both sizes: scarce's labelled parts are the first clips of gap's
    monkeypatch.setitem(synth.SIZES, "gap", synth.PartSizes(4, 2, 2, 1, 1))
    monkeypatch.setitem(synth.SIZES, "scarce", synth.PartSizes(2, 1, 2, 1, 1))
    roots = {size: synth.generate_dataset(tmp_path / size, size, seed=0) for size in ("gap", "scarce")}
    wavs = {size: sorted(p.relative_to(root) for p in root.rglob("*.wav")) for size, root in roots.items()}
    assert set(wavs["scarce"]) < set(wavs["gap"])
    for name in wavs["scarce"]:
        assert (roots["scarce"] / name).read_bytes() == (roots["gap"] / name).read_bytes(), name


def test_scarce_eval400_is_scarce_with_more_evaluation_clips(tmp_path, monkeypatch):
    scarce, wide = synth.SIZES["scarce"], synth.SIZES["scarce-eval400"]
    assert "scarce-eval400" in EMBEDDED_SIZES and synth.DOMAINS["scarce-eval400"] is GAP_DOMAINS
    assert wide == synth.PartSizes(scarce.synthetic, scarce.weak, scarce.unlabeled, scarce.validation, 400)
    # every clip of scarce is in it, byte for byte; it only adds evaluation clips
    monkeypatch.setitem(synth.SIZES, "scarce", synth.PartSizes(2, 1, 2, 1, 1))
    monkeypatch.setitem(synth.SIZES, "scarce-eval400", synth.PartSizes(2, 1, 2, 1, 3))
    roots = {size: synth.generate_dataset(tmp_path / size, size, seed=0) for size in ("scarce", "scarce-eval400")}
    wavs = {size: sorted(p.relative_to(root) for p in root.rglob("*.wav")) for size, root in roots.items()}
    added = set(wavs["scarce-eval400"]) - set(wavs["scarce"])
    assert set(wavs["scarce"]) < set(wavs["scarce-eval400"]) and len(added) == 2
    assert all("eval" in str(name) for name in added)
    for name in wavs["scarce"]:
        assert (roots["scarce"] / name).read_bytes() == (roots["scarce-eval400"] / name).read_bytes(), name


def test_scarce_far_is_scarce_eval400_through_a_stronger_recording_chain(tmp_path, monkeypatch):
    assert "scarce-far" in EMBEDDED_SIZES and synth.DOMAINS["scarce-far"] is FAR_DOMAINS
    assert synth.SIZES["scarce-far"] == synth.SIZES["scarce-eval400"]
    assert FAR_DOMAINS["synthetic"] is CLEAN
    assert all(FAR_DOMAINS[p] is RECORDED_FAR for p in ("weak", "unlabeled", "validation", "public_eval"))
    assert dataclasses.replace(RECORDED_FAR, eq_db=RECORDED.eq_db) == RECORDED  # only the chain is stronger
    assert RECORDED_FAR.eq_db == 16.0

    # the same stream through both chains: the response in dB is 16/10 times as large (gains and tilt
    # are uniform draws scaled by eq_db), the events and the level change are the same
    flat = Domain(ebr_db=RECORDED.ebr_db, background_dbfs=RECORDED.background_dbfs, level_db=RECORDED.level_db)

    for index in range(3):
        plain, events = render_clip(synth._clip_rng(0, "validation", index), flat)
        near, events_near = render_clip(synth._clip_rng(0, "validation", index), RECORDED)
        far, events_far = render_clip(synth._clip_rng(0, "validation", index), RECORDED_FAR)
        assert events == events_near == events_far
        colour_near = _spectrum_db(near) - _spectrum_db(plain)
        colour_far = _spectrum_db(far) - _spectrum_db(plain)
        assert np.std(colour_far) == pytest.approx(1.6 * np.std(colour_near), rel=0.15), index

    # on disk: the clean synthetic clips and every label file are scarce-eval400's, byte for byte;
    # the recorded clips differ
    monkeypatch.setitem(synth.SIZES, "scarce-eval400", synth.PartSizes(2, 1, 2, 1, 2))
    monkeypatch.setitem(synth.SIZES, "scarce-far", synth.PartSizes(2, 1, 2, 1, 2))
    roots = {size: synth.generate_dataset(tmp_path / size, size, seed=0) for size in ("scarce-eval400", "scarce-far")}
    files = {
        size: sorted(p.relative_to(root) for p in root.rglob("*") if p.suffix in (".wav", ".tsv"))
        for size, root in roots.items()
    }
    assert files["scarce-eval400"] == files["scarce-far"] and files["scarce-far"]
    for name in files["scarce-far"]:
        same = (roots["scarce-eval400"] / name).read_bytes() == (roots["scarce-far"] / name).read_bytes()
        assert same == (name.suffix == ".tsv" or "syn" in name.name), name
