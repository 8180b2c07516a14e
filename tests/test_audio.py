"""sed.data.audio.read_audio: decoding, mixdown, resampling, pad/cut, and every refusal."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sed.data.audio import clip_samples, read_audio
from sed.data.errors import DatasetError

SR = 16000


def _tone(sr: int, seconds: float, freq: float = 1000.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_clip_samples_default_is_ten_seconds_at_16k() -> None:
    assert clip_samples() == 160000
    assert clip_samples(44100, 1.5) == 66150


def test_pcm16_mono_16k_is_read_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ints = rng.integers(-20000, 20000, size=160000, dtype=np.int16)
    path = tmp_path / "clip.wav"
    sf.write(path, ints, SR, subtype="PCM_16")
    wave = read_audio(path)
    assert wave.dtype == np.float32 and wave.shape == (160000,)
    np.testing.assert_array_equal(wave, ints.astype(np.float32) / 32768.0)


def test_short_clip_is_zero_padded_and_long_clip_is_cut(tmp_path: Path) -> None:
    short = _tone(SR, 3.0)
    sf.write(tmp_path / "short.wav", short, SR, subtype="FLOAT")
    wave = read_audio(tmp_path / "short.wav")
    assert wave.shape == (160000,)
    np.testing.assert_array_equal(wave[:48000], short)
    assert not wave[48000:].any()

    long = _tone(SR, 12.0, freq=440.0)
    sf.write(tmp_path / "long.wav", long, SR, subtype="FLOAT")
    wave = read_audio(tmp_path / "long.wav")
    np.testing.assert_array_equal(wave, long[:160000])

    kept = read_audio(tmp_path / "long.wav", clip_seconds=None)
    assert kept.shape == (192000,)
    shorter = read_audio(tmp_path / "long.wav", clip_seconds=1.0)
    assert shorter.shape == (16000,)


def test_stereo_is_mixed_down_by_mean(tmp_path: Path) -> None:
    left, right = _tone(SR, 10.0, 300.0, 0.4), _tone(SR, 10.0, 2000.0, 0.2)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), SR, subtype="FLOAT")
    wave = read_audio(tmp_path / "stereo.wav")
    np.testing.assert_allclose(wave, (left + right) / 2, atol=1e-7)


def test_other_rate_is_resampled_to_16k(tmp_path: Path) -> None:
    # A 1 kHz tone at 44.1 kHz must become the same tone sampled at 16 kHz.
    sf.write(tmp_path / "tone44.wav", _tone(44100, 10.0), 44100, subtype="FLOAT")
    wave = read_audio(tmp_path / "tone44.wav")
    expected = _tone(SR, 10.0)
    assert wave.shape == (160000,)
    interior = slice(200, -200)  # the sinc resampler sees zeros beyond the clip's ends
    assert np.abs(wave[interior] - expected[interior]).max() < 2e-3  # < -48 dB of the 0.5 amplitude
    # And to any other requested rate.
    wave8 = read_audio(tmp_path / "tone44.wav", sample_rate=8000)
    assert wave8.shape == (80000,)
    np.testing.assert_allclose(wave8[200:-200], _tone(8000, 10.0)[200:-200], atol=2e-3)


def test_invalid_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        read_audio(tmp_path / "x.wav", sample_rate=0)
    with pytest.raises(ValueError, match="clip_seconds"):
        read_audio(tmp_path / "x.wav", clip_seconds=-1.0)


# --------------------------------------------------------------------- refusals


def _assert_refused(path: Path, *words: str) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        read_audio(path)
    message = str(info.value)
    assert str(path) in message, message
    assert "Fix" in message, message
    for word in words:
        assert word in message, message
    return info.value


def test_dataset_error_is_a_value_error() -> None:
    assert issubclass(DatasetError, ValueError)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    _assert_refused(tmp_path / "nowhere.wav", "not found")


def test_text_file_named_wav_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fake.wav"
    path.write_text("this is not audio, just a text file with a .wav name\n")
    _assert_refused(path, "cannot be decoded")


def test_zero_byte_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    _assert_refused(path, "empty")


def test_wav_without_samples_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "noframes.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    _assert_refused(path, "no samples")


def test_truncated_wav_is_refused(tmp_path: Path) -> None:
    # libsndfile would silently return the frames that are there; the header check must refuse.
    full = tmp_path / "full.wav"
    sf.write(full, _tone(SR, 2.0), SR, subtype="PCM_16")
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    assert sf.info(str(cut)).frames < 32000  # soundfile itself does not complain
    error = _assert_refused(cut, "truncated")
    assert "64000 bytes" in str(error)  # 2 s of 16-bit mono declared


def test_wav_with_header_only_is_refused_as_truncated(tmp_path: Path) -> None:
    full = tmp_path / "full.wav"
    sf.write(full, _tone(SR, 1.0), SR, subtype="PCM_16")
    data = full.read_bytes()
    data_chunk = data.index(b"data")
    header_only = tmp_path / "header_only.wav"
    header_only.write_bytes(data[: data_chunk + 8])
    assert struct.unpack("<I", data[data_chunk + 4 : data_chunk + 8])[0] == 32000
    _assert_refused(header_only, "truncated")


def test_truncated_flac_is_refused(tmp_path: Path) -> None:
    full = tmp_path / "full.flac"
    rng = np.random.default_rng(1)
    sf.write(full, (0.3 * rng.standard_normal(SR * 2)).astype(np.float32), SR)
    data = full.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    _assert_refused(cut)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(tmp_path: Path, bad: float) -> None:
    wave = _tone(SR, 1.0)
    wave[8000] = bad
    path = tmp_path / "nonfinite.wav"
    sf.write(path, wave, SR, subtype="FLOAT")
    error = _assert_refused(path, "NaN or infinite")
    assert "0.500 s" in str(error)


def test_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    _assert_refused(folder, "not a regular file")


def test_desed_reexports_the_same_error_class() -> None:
    desed = pytest.importorskip("sed.data.desed")
    assert desed.DatasetError is DatasetError
