"""Signal building blocks of the embedded-data sounds (sed.data.sounds).

One job: small numpy DSP pieces -- wrapping-phase oscillators, wavetables,
FFT-domain filters and shaped noise, smooth random envelopes, unit placement
-- on float32 signals at 16 kHz. The names keep their leading underscore:
they are the private toolkit of sed.data.sounds, not an API.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.fft

from sed.constants import SAMPLE_RATE

SR = SAMPLE_RATE
_MS = SR // 1000  # samples per millisecond

# --------------------------------------------------------------------------- building blocks
# Signals are float32 (fast FFTs and transcendental functions); tone phases are wrapping
# uint32 accumulators (_phase), so long tones keep their pitch exactly and cost O(n).

F32 = np.float32


def _seconds(n: int) -> np.ndarray:
    """Time of each sample (float32), for envelopes."""
    return np.arange(n, dtype=F32) / F32(SR)


_TURN = 2.0**32  # one cycle of a uint32 phase accumulator


def _phase(frequency: np.ndarray | float, n: int) -> np.ndarray:
    """Phase of a tone with (possibly time-varying) frequency in Hz, as a wrapping uint32 accumulator.

    One cycle is 2**32 steps, so the phase stays exact however long the tone
    (integer arithmetic wraps), and harmonics are ``k * phase`` (also wrapping).
    """
    if np.ndim(frequency) == 0:
        step = np.uint32(int(round(float(frequency) / SR * _TURN)) % (1 << 32))
        return np.arange(n, dtype=np.uint32) * step
    steps = np.round(np.asarray(frequency, dtype=np.float64) * (_TURN / SR)).astype(np.int64) & 0xFFFFFFFF
    return np.cumsum(steps.astype(np.uint32), dtype=np.uint32)


def _unit_phase(phase: np.ndarray) -> np.ndarray:
    """The phase as a fraction of a cycle in [0, 1), float32."""
    return phase.astype(F32) * F32(1.0 / _TURN)


def _sine(phase: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """sin(2 pi phase / 2**32 + offset) in float32."""
    x = phase.astype(F32)
    x *= F32(2 * np.pi / _TURN)
    if offset:
        x += F32(offset)
    return np.sin(x, out=x)


def _wavetable(phase: np.ndarray, amplitudes: np.ndarray, rng: np.random.Generator, bits: int = 12) -> np.ndarray:
    """sum_k a_k sin(k * phase + phi_k), k = 1..K, by lookup in a one-period table (O(n))."""
    grid = np.arange(1 << bits) / (1 << bits)
    k = np.arange(1, len(amplitudes) + 1)[:, None]
    offsets = rng.uniform(0, 2 * np.pi, (len(amplitudes), 1))
    table = (amplitudes[:, None] * np.sin(2 * np.pi * k * grid[None, :] + offsets)).sum(axis=0).astype(F32)
    return table[phase >> np.uint32(32 - bits)]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / F32(_rms(x) + 1e-12)


def _fade(x: np.ndarray, seconds: float = 0.01) -> np.ndarray:
    """Raised-cosine fade in and out (in place), so events start and stop without clicks."""
    k = min(int(seconds * SR), len(x) // 2)
    if k > 0:
        ramp = (0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)).astype(x.dtype)
        x[:k] *= ramp
        x[len(x) - k :] *= ramp[::-1]
    return x


def _frequencies(size: int) -> np.ndarray:
    return np.fft.rfftfreq(size, 1.0 / SR).astype(F32)


def _filter(x: np.ndarray, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``x`` filtered in the frequency domain by the zero-phase magnitude ``gain(frequencies_hz)``."""
    n = len(x)
    size = scipy.fft.next_fast_len(n, real=True)
    spectrum = scipy.fft.rfft(x.astype(F32, copy=False), size)
    spectrum *= gain(_frequencies(size)).astype(F32, copy=False)
    return scipy.fft.irfft(spectrum, size)[:n]


def _shaped_noise(n: int, rng: np.random.Generator, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """White noise filtered by ``gain(frequencies_hz)``; unit RMS, float32.

    The white noise is uniform (cheaper than Gaussian); after filtering it is
    Gaussian for every practical purpose (central limit theorem).
    """
    white = rng.random(n, dtype=F32) - F32(0.5)
    return _unit(_filter(white, gain))


def _band(f: np.ndarray, centre: float, octaves: float) -> np.ndarray:
    """Gaussian band on a log-frequency axis (centre Hz, standard deviation in octaves)."""
    return np.exp(F32(-0.5) * (np.log2(np.maximum(f, F32(1.0)) / F32(centre)) / F32(octaves)) ** 2)


def _highpass(f: np.ndarray, corner: float, order: int = 2) -> np.ndarray:
    return F32(1.0) / np.sqrt(F32(1.0) + (F32(corner) / np.maximum(f, F32(1.0))) ** (2 * order))


def _lowpass(f: np.ndarray, corner: float, order: int = 2) -> np.ndarray:
    return F32(1.0) / np.sqrt(F32(1.0) + (f / F32(corner)) ** (2 * order))


def _smooth_random(n: int, rng: np.random.Generator, cutoff_hz: float) -> np.ndarray:
    """A zero-mean, unit-variance random signal band-limited to about ``cutoff_hz`` (float32)."""
    step = 32
    coarse = max(8, n // step + 2)
    spectrum = scipy.fft.rfft(rng.standard_normal(coarse))
    spectrum *= np.exp(-0.5 * (np.fft.rfftfreq(coarse, step / SR) / cutoff_hz) ** 2)
    values = scipy.fft.irfft(spectrum, coarse)
    values = (values - values.mean()) / (values.std() + 1e-12)
    return np.interp(np.arange(n, dtype=F32) / F32(step), np.arange(coarse, dtype=F32), values.astype(F32))


def _place_units(
    n: int, rng: np.random.Generator, length_s: tuple[float, float], gap_s: tuple[float, float]
) -> tuple[list[tuple[int, int]], int]:
    """Back-to-back units (barks, syllables, meows, clinks) from 0 on: [(start, length)], used length.

    The first unit always fits (it is shortened to ``n`` if needed); the event
    ends where its last unit ends, so its label has no silent tail.
    """
    units: list[tuple[int, int]] = []
    position = 0
    while True:
        length = int(rng.uniform(*length_s) * SR)
        if not units:
            length = min(length, n)
        elif position + length > n:
            break
        units.append((position, length))
        position += length + int(rng.uniform(*gap_s) * SR)
        if position >= n:
            break
    end = units[-1][0] + units[-1][1]
    return units, end
