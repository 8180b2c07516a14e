"""Log-mel features of the DCASE 2020 task 4 baseline, their on-disk cache and the per-band scaler.

Recipe (docs/reference.md, Features): 16 kHz mono, STFT with a 2048-sample
*symmetric* Hamming window (``periodic=False``), hop 255, centred with reflect
padding; **amplitude** (power 1) mel spectrogram with 128 Slaney-scale bands
over 0-8000 Hz and unnormalised triangular filters; amplitude-to-dB with
ref 1.0, amin 1e-5 and top_db 80 relative to *each clip's own* maximum;
padded / truncated to 628 frames (ceil(10 s * 16000 / 255)). The values match
``librosa.amplitude_to_db(librosa.feature.melspectrogram(...))`` of the same
recipe (checked in tests/test_features.py).

torchaudio's ``AmplitudeToDB`` is *not* used: for a 3-D input [B, mel, time]
it takes the top_db reference maximum over the whole batch (it reshapes to
[-1, C, F, T] and treats B as channels), which would make one clip's floor
depend on the other clips in its batch. :class:`LogMel` takes the maximum per
clip explicitly.

The cache of these features is :mod:`sed.features.store` (``FeatureStore``),
the per-band normalisation :mod:`sed.features.scaler` (``Scaler``, ``fit_scaler``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchaudio.transforms import MelSpectrogram

from sed.constants import CLIP_SECONDS, HOP, N_FFT, N_FRAMES, N_MELS, SAMPLE_RATE

__all__ = ["AMIN", "FEATURE_CODE_VERSION", "FeatureConfig", "LogMel"]

#: Floor of the mel amplitude before the log (docs/reference.md: amin 1e-5), i.e. -100 dB.
AMIN: float = 1e-5
#: Reference amplitude of the dB conversion (docs/reference.md: ref 1.0, so dB = 20 log10(max(amin, S))).
REF: float = 1.0

#: Part of every cache key. Bump it whenever read_audio or LogMel would produce different
#: numbers for the same FeatureConfig and audio, so that old caches stop matching.
#: It also stands for the fixed parts of the recipe that are not FeatureConfig fields:
#: symmetric Hamming window, power 1, Slaney scale, no filter norm, ref 1, amin 1e-5,
#: centred reflect-padded STFT, soundfile decoding + mean downmix + torchaudio resampling,
#: zero-padding of the waveform to clip_seconds.
FEATURE_CODE_VERSION: str = "logmel-v1"


# ----------------------------------------------------------------------------- configuration


_INT_FIELDS = ("sample_rate", "n_fft", "hop_length", "n_mels", "n_frames")
_FLOAT_FIELDS = ("f_min", "f_max", "top_db", "clip_seconds")


@dataclass(frozen=True)
class FeatureConfig:
    """Settings of the log-mel features; the defaults are the 2020 baseline's (docs/reference.md).

    ``top_db=None`` disables the per-clip floor. Values are normalised to
    int / float on construction, so ``FeatureConfig(f_max=8000)`` equals
    (and has the same :meth:`key` as) ``FeatureConfig()``.
    """

    sample_rate: int = SAMPLE_RATE
    n_fft: int = N_FFT
    hop_length: int = HOP
    n_mels: int = N_MELS
    f_min: float = 0.0
    f_max: float = 8000.0
    top_db: float | None = 80.0
    n_frames: int = N_FRAMES
    clip_seconds: float = CLIP_SECONDS

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"FeatureConfig.{name} must be a positive integer, got {value!r}.")
            object.__setattr__(self, name, int(value))
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if name == "top_db" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
                raise ValueError(f"FeatureConfig.{name} must be a finite number, got {value!r}.")
            object.__setattr__(self, name, float(value))
        nyquist = self.sample_rate / 2
        if not 0.0 <= self.f_min < self.f_max <= nyquist:
            raise ValueError(
                f"FeatureConfig.f_min/f_max must satisfy 0 <= f_min < f_max <= sample_rate/2 = {nyquist:g} Hz, "
                f"got f_min={self.f_min:g}, f_max={self.f_max:g}. Fix: lower f_max or raise sample_rate."
            )
        if self.top_db is not None and self.top_db <= 0:
            raise ValueError(f"FeatureConfig.top_db must be positive (or None for no floor), got {self.top_db}.")
        if self.clip_seconds <= 0:
            raise ValueError(f"FeatureConfig.clip_seconds must be positive, got {self.clip_seconds}.")
        if self.hop_length > self.n_fft:
            raise ValueError(
                f"FeatureConfig.hop_length ({self.hop_length}) must not exceed n_fft ({self.n_fft}); "
                "frames would skip samples."
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeatureConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused with their name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"FeatureConfig: unknown key(s) {unknown}; known keys are {sorted(known)}.")
        return cls(**values)

    def key(self) -> str:
        """Stable 16-hex-digit hash of the fields (independent of Python's hash seed)."""
        text = json.dumps({"FeatureConfig": self.to_dict()}, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    @property
    def clip_samples(self) -> int:
        """Samples per clip after padding/cutting: round(sample_rate * clip_seconds)."""
        return int(round(self.sample_rate * self.clip_seconds))


# ----------------------------------------------------------------------------- log-mel module


class LogMel(torch.nn.Module):
    """Waveforms [B, T] (or [T]) -> log-mel [B, n_frames, n_mels] in dB (time first, mel last).

    torchaudio ``MelSpectrogram`` with the baseline's settings, then
    ``20 log10(max(S, 1e-5))`` (ref 1.0), then ``max(dB, max_clip(dB) - top_db)``
    per clip, then pad/truncate the time axis to ``n_frames``. Frames added
    by padding take the value silence would have had (``max(-100 dB,
    clip max - top_db)``). Runs on whatever device the module and input are on.
    """

    def __init__(self, config: FeatureConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else FeatureConfig()
        cfg = self.config
        self.mel = MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            win_length=cfg.n_fft,
            hop_length=cfg.hop_length,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            window_fn=torch.hamming_window,
            wkwargs={"periodic": False},
            power=1.0,
            mel_scale="slaney",
            norm=None,
            center=True,
            pad_mode="reflect",
        )
        self.silence_db = 20.0 * math.log10(AMIN) - 20.0 * math.log10(max(AMIN, REF))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        if wave.dim() != 2:
            raise ValueError(f"LogMel expects waveforms [batch, samples] or [samples], got shape {tuple(wave.shape)}.")
        amplitude = self.mel(wave.float())  # [B, n_mels, T]
        decibels = 20.0 * torch.log10(torch.clamp(amplitude, min=AMIN)) - 20.0 * math.log10(max(AMIN, REF))
        floor = torch.full((decibels.shape[0], 1, 1), self.silence_db, dtype=decibels.dtype, device=decibels.device)
        if self.config.top_db is not None:
            clip_max = decibels.amax(dim=(1, 2), keepdim=True)
            floor = torch.maximum(floor, clip_max - self.config.top_db)
            decibels = torch.maximum(decibels, floor)
        frames = decibels.transpose(1, 2)  # [B, T, n_mels]
        n_frames = self.config.n_frames
        if frames.shape[1] > n_frames:
            frames = frames[:, :n_frames]
        elif frames.shape[1] < n_frames:
            pad = floor.expand(frames.shape[0], n_frames - frames.shape[1], frames.shape[2])
            frames = torch.cat([frames, pad], dim=1)
        return frames.contiguous()
