"""Procedural sounds of the embedded dataset: ten DESED-like classes over backgrounds.

One job: synthesise audio. `render_clip(rng)` makes one 10 s, 16 kHz
soundscape (int16 samples) and its events; `sed.data.synth` writes clips
into the DESED layout, caches and serves them.

Each of the ten DESED classes is a distinct procedural sound (not a tone):

======================== =====================================================
Alarm_bell_ringing       inharmonic bell partials (1, 2.76, 5.40, 8.93 x f0
                         650-1400 Hz) re-struck 9-18 times a second, decaying
Blender                  motor hum (harmonic stack, f0 90-180 Hz, wandering)
                         plus broadband noise, amplitude-modulated at 3-7 Hz
Cat                      1-2 meows: harmonic glide 450 -> 900 -> 400 Hz with
                         a moving formant
Dishes                   sparse metallic clinks: 2-7 kHz inharmonic partials
                         decaying in 10-50 ms, each with a click
Dog                      1-4 short harmonic barks (f0 300-600 Hz falling)
                         opening with a noise burst
Electric_shaver_toothbr. buzzing sawtooth (90-260 Hz) through a narrow band
                         at 1.8-4.5 kHz
Frying                   crackle (random sparse impulses) on high-band hiss
Running_water            mid-band noise under fast log-normal random
                         modulation, plus bubble chirps
Speech                   voiced syllables: glottal pulse train with a pitch
                         contour (95-230 Hz) through vowel formants, with some
                         fricative onsets
Vacuum_cleaner           loud steady broadband noise plus a 1.2-3.5 kHz whine
======================== =====================================================

Each clip has 1-4 events with class-typical durations (:data:`CLASS_DURATIONS`),
uniform random onsets (overlaps between classes allowed, same-class events
kept apart by 0.25 s), event-to-background ratios uniform in 6-24 dB (level
of the event = RMS of its louder half of 32 ms frames), over a background of
pink, brown and "room" noise plus mains hum at random mixes and levels (-48
to -30 dBFS). Times are whole milliseconds, so the TSVs are exact.

Every function takes its randomness from the `numpy.random.Generator` it is
given, so a clip is a function of that generator's seed only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import numpy as np
import scipy.fft

from sed.constants import CLIP_SECONDS, DESED_CLASSES, SAMPLE_RATE
from sed.data.desed import Event
from sed.data.domains import Domain, record
from sed.data.errors import DatasetError
from sed.data.signal_blocks import (  # the sounds' private toolkit
    F32,
    _band,
    _fade,
    _filter,
    _highpass,
    _lowpass,
    _phase,
    _place_units,
    _rms,
    _seconds,
    _shaped_noise,
    _sine,
    _smooth_random,
    _unit,
    _unit_phase,
    _wavetable,
)

__all__ = ["CLASS_DURATIONS", "render_event", "render_background", "render_clip"]

SR = SAMPLE_RATE
CLIP_SAMPLES = int(round(CLIP_SECONDS * SR))
_MS = SR // 1000  # samples per millisecond (event times are whole ms)

#: Class-typical event durations in seconds (min, max): short speech, dog, dishes; long appliances.
CLASS_DURATIONS: dict[str, tuple[float, float]] = {
    "Alarm_bell_ringing": (1.0, 5.0),
    "Blender": (2.5, 8.0),
    "Cat": (0.5, 2.5),
    "Dishes": (0.2, 1.5),
    "Dog": (0.3, 1.8),
    "Electric_shaver_toothbrush": (2.0, 7.0),
    "Frying": (3.0, 10.0),
    "Running_water": (2.0, 8.0),
    "Speech": (0.6, 3.0),
    "Vacuum_cleaner": (3.0, 10.0),
}

_EBR_DB = (6.0, 24.0)
_BACKGROUND_DBFS = (-48.0, -30.0)
_SAME_CLASS_GAP_S = 0.25
_MAX_EVENTS = 4


# --------------------------------------------------------------------------- the ten classes


def _alarm_bell(n: int, rng: np.random.Generator) -> np.ndarray:
    f0 = rng.uniform(650, 1400)
    ratios = np.array([1.0, 2.76, 5.40, 8.93])
    amplitudes = np.array([1.0, 0.6, 0.35, 0.2]) * rng.uniform(0.7, 1.3, 4)
    rate = rng.uniform(9, 18)  # strikes per second
    tau = rng.uniform(0.03, 0.07)
    since_strike = _unit_phase(_phase(rate, n)) / F32(rate)
    envelope = F32(0.25) + F32(0.75) * np.exp(-since_strike / F32(tau))
    x = np.zeros(n, dtype=F32)
    for ratio, amplitude in zip(ratios, amplitudes):
        if ratio * f0 < 7600:
            x += F32(amplitude) * _sine(_phase(ratio * f0, n), rng.uniform(0, 2 * np.pi))
    return x * envelope


def _blender(n: int, rng: np.random.Generator) -> np.ndarray:
    f0 = rng.uniform(90, 180) * (1.0 + 0.04 * _smooth_random(n, rng, 1.5).astype(np.float64))
    harmonics = int(min(30, 4000 // f0.max()))
    hum = _unit(_wavetable(_phase(f0, n), np.arange(1, harmonics + 1) ** -0.7, rng))
    corner = rng.uniform(3000, 6000)
    noise = _shaped_noise(n, rng, lambda f: _highpass(f, 250) * _lowpass(f, corner, 1))
    depth, rate, phase = rng.uniform(0.4, 0.8), rng.uniform(3, 7), rng.uniform(0, 2 * np.pi)
    chop = F32(1.0) + F32(depth) * _sine(_phase(rate, n), phase)
    return (hum + F32(rng.uniform(0.5, 1.0)) * noise) * chop


def _cat(n: int, rng: np.random.Generator) -> np.ndarray:
    units, end = _place_units(n, rng, (0.45, 1.1), (0.15, 0.4))
    x = np.zeros(end, dtype=F32)
    harmonics = 9
    k = np.arange(1, harmonics + 1, dtype=F32)[:, None]
    for start, length in units:
        u = np.linspace(0.0, 1.0, length, dtype=F32)
        f_start, f_peak, f_end = rng.uniform(450, 600), rng.uniform(700, 950), rng.uniform(380, 520)
        peak = rng.uniform(0.25, 0.45)
        rise = 0.5 - 0.5 * np.cos(np.pi * np.clip(u / peak, 0, 1))
        fall = 0.5 - 0.5 * np.cos(np.pi * np.clip((u - peak) / (1 - peak), 0, 1))
        f0 = (f_start + (f_peak - f_start) * rise - (f_peak - f_end) * fall).astype(F32)
        phase = F32(2 * np.pi) * _unit_phase(_phase(f0, length))
        formant = F32(2200) - F32(1300) * u  # "ee-ow": the resonance slides down
        weights = (F32(0.3) + np.exp(F32(-0.5) * ((k * f0[None, :] - formant[None, :]) / F32(500)) ** 2)) / k
        weights[(k[:, 0] * f_peak) > 7500] = 0.0
        offsets = rng.uniform(0, 2 * np.pi, (harmonics, 1)).astype(F32)
        tone = (weights * np.sin(k * phase[None, :] + offsets)).sum(axis=0)
        x[start : start + length] += _fade(tone * np.sqrt(np.maximum(np.sin(F32(np.pi) * u), F32(0.0))), 0.02)
    return x


def _dishes(n: int, rng: np.random.Generator) -> np.ndarray:
    hits, end = _place_units(n, rng, (0.04, 0.2), (0.02, 0.3))
    x = np.zeros(end, dtype=F32)
    for start, length in hits:
        t = _seconds(length)
        tone = np.zeros(length, dtype=F32)
        for _ in range(int(rng.integers(3, 6))):
            tau = rng.uniform(0.01, 0.05)
            partial = _sine(_phase(rng.uniform(2000, 7000), length), rng.uniform(0, 2 * np.pi))
            tone += F32(rng.uniform(0.3, 1.0)) * np.exp(-t / F32(tau)) * partial
        click = min(length, int(0.002 * SR))
        tone[:click] += F32(rng.uniform(0.5, 1.5)) * rng.standard_normal(click, dtype=F32)
        x[start : start + length] += F32(rng.uniform(0.4, 1.0)) * _fade(tone, 0.001)
    return x


def _dog(n: int, rng: np.random.Generator) -> np.ndarray:
    barks, end = _place_units(n, rng, (0.12, 0.28), (0.12, 0.35))
    x = np.zeros(end, dtype=F32)
    burst_noise = _shaped_noise(end, rng, lambda f: _band(f, 1500, 1.0))
    for start, length in barks:
        u = np.linspace(0.0, 1.0, length)
        f0 = rng.uniform(300, 600) * (1.0 - 0.3 * u)
        harmonics = int(min(14, 6000 // f0.max()))
        k = np.arange(1, harmonics + 1)
        weights = k**-0.7 * (0.4 + np.exp(-0.5 * ((k * f0[0] - 1000) / 600.0) ** 2))
        tone = _unit(_wavetable(_phase(f0, length), weights, rng))
        t = _seconds(length)
        burst = burst_noise[start : start + length] * np.exp(-t / F32(0.03))
        decay = F32(rng.uniform(0.08, 0.16))
        envelope = np.minimum(F32(1.0), t / F32(0.008)) * np.exp(-t / decay)
        x[start : start + length] += _fade((tone + F32(0.8) * burst) * envelope, 0.003)
    return x


def _shaver(n: int, rng: np.random.Generator) -> np.ndarray:
    f0 = rng.uniform(90, 260) * (1.0 + 0.01 * _sine(_phase(rng.uniform(0.5, 2), n)))
    saw = F32(2.0) * _unit_phase(_phase(f0, n)) - F32(1.0)
    centre, width = rng.uniform(1800, 4500), rng.uniform(0.12, 0.25)
    buzz = _filter(saw, lambda f: _band(f, centre, width))
    return buzz * (F32(1.0) + F32(0.15) * _smooth_random(n, rng, 3.0))


def _frying(n: int, rng: np.random.Generator) -> np.ndarray:
    corner = rng.uniform(2500, 4000)
    hiss = _shaped_noise(n, rng, lambda f: _highpass(f, corner, 3))
    rate = rng.uniform(40, 150)  # crackles per second
    count = int(rng.poisson(rate * n / SR))
    impulses = np.zeros(n, dtype=F32)
    positions = rng.integers(0, n, count)
    np.add.at(impulses, positions, ((rng.pareto(2.5, count) + 1.0) * rng.choice([-1.0, 1.0], count)).astype(F32))
    kernel_length = int(0.003 * SR)
    kernel = rng.standard_normal(kernel_length) * np.exp(-np.arange(kernel_length) / (0.0008 * SR))
    kernel -= np.convolve(kernel, np.ones(5) / 5, mode="same")  # high-pass the crackle
    size = scipy.fft.next_fast_len(n + kernel_length - 1, real=True)
    spectrum = scipy.fft.rfft(impulses, size) * scipy.fft.rfft(kernel.astype(F32), size)
    crackle = _unit(scipy.fft.irfft(spectrum, size)[:n])  # each impulse rings with the kernel
    swell = F32(1.0) + F32(0.3) * _smooth_random(n, rng, 0.5)
    return (F32(rng.uniform(0.25, 0.5)) * hiss + crackle) * swell


def _running_water(n: int, rng: np.random.Generator) -> np.ndarray:
    centre = rng.uniform(600, 1600)
    flow = _shaped_noise(n, rng, lambda f: _band(f, centre, 0.9))
    depth, speed = rng.uniform(0.6, 1.0), rng.uniform(15, 40)
    x = flow * np.exp(F32(depth) * _smooth_random(n, rng, speed))
    count = int(rng.poisson(rng.uniform(10, 40) * n / SR))
    if count:  # bubbles: short rising chirps, synthesised together, then added in place
        longest = int(0.025 * SR)
        t = (np.arange(longest) / SR)[None, :]
        lengths = (rng.uniform(0.01, 0.025, count) * SR).astype(int)
        chirp = rng.uniform(400, 1200, (count, 1)) * (t + rng.uniform(30, 80, (count, 1)) * t**2)
        bubbles = (rng.uniform(1.0, 3.0, (count, 1)) * np.sin(2 * np.pi * chirp) * np.exp(-t / 0.008)).astype(F32)
        bubbles[np.arange(longest)[None, :] >= lengths[:, None]] = 0.0
        for start, bubble in zip(rng.integers(0, n, count), bubbles):
            stop = min(n, int(start) + longest)
            x[start:stop] += bubble[: stop - start]
    return x


# Vowel formants F1, F2, F3 (Hz), typical adult values.
_VOWELS = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410], [660, 1720, 2410]],
    dtype=np.float64,
)


def _resonance(f: np.ndarray, centre: float, bandwidth: float) -> np.ndarray:
    """Magnitude response of a two-pole resonator at ``centre`` Hz (-3 dB ``bandwidth``), 1 at the centre."""
    r = math.exp(-math.pi * bandwidth / SR)
    theta = 2 * math.pi * centre / SR

    def magnitude(w: np.ndarray) -> np.ndarray:
        return np.abs(1.0 - 2.0 * r * math.cos(theta) * np.exp(-1j * w) + r * r * np.exp(-2j * w))

    return (magnitude(np.array([theta])) / magnitude(2 * np.pi * f.astype(np.float64) / SR)).astype(F32)


def _speech(n: int, rng: np.random.Generator) -> np.ndarray:
    syllables, end = _place_units(n, rng, (0.12, 0.28), (0.04, 0.18))
    base = rng.uniform(95, 230)
    declination = 1.0 - 0.12 * np.arange(end) / max(end - 1, 1)
    f0 = base * declination * (1.0 + 0.06 * _smooth_random(end, rng, 4.0).astype(np.float64))
    saw = F32(2.0) * _unit_phase(_phase(f0, end)) - F32(1.0)  # glottal source, -6 dB/octave
    source = saw.copy()
    source[1:] -= F32(0.9) * saw[:-1]  # lip radiation, +6 dB/octave
    x = np.zeros(end, dtype=F32)
    for start, length in syllables:
        vowel = _VOWELS[rng.integers(len(_VOWELS))] * rng.uniform(0.9, 1.15)

        def formants(f: np.ndarray, vowel: np.ndarray = vowel) -> np.ndarray:
            total = sum(
                F32(gain) * _resonance(f, centre, bandwidth)
                for centre, bandwidth, gain in zip(vowel, (80.0, 110.0, 160.0), (1.0, 0.7, 0.4))
            )
            return cast(np.ndarray, total)  # three terms: never the empty sum's 0

        out = _filter(source[start : start + length], formants)
        out *= np.maximum(np.sin(np.pi * np.linspace(0.0, 1.0, length, dtype=F32)), F32(0.0)) ** F32(0.7)
        out = _unit(out)
        if rng.random() < 0.5:  # a fricative consonant at the syllable onset
            fricative = min(length, int(rng.uniform(0.03, 0.06) * SR))
            centre = rng.uniform(3500, 6000)
            hiss = _shaped_noise(fricative, rng, lambda f: _band(f, centre, 0.4))
            out[:fricative] += F32(0.5) * hiss * np.hanning(fricative).astype(F32)
        x[start : start + length] += _fade(out, 0.005)
    return x


def _vacuum(n: int, rng: np.random.Generator) -> np.ndarray:
    corner = rng.uniform(5000, 7000)
    noise = _shaped_noise(n, rng, lambda f: _highpass(f, 150) * _lowpass(f, corner, 2))
    vibrato = 1.0 + 0.004 * _sine(_phase(rng.uniform(3, 6), n))
    phase = _phase(rng.uniform(1200, 3500) * vibrato, n)
    whine = _sine(phase) + F32(0.3) * _sine(phase * np.uint32(2), rng.uniform(0, 2 * np.pi))
    t = _seconds(n)
    ramp = np.clip(np.minimum(t, t[-1] - t) / F32(0.3), 0.05, 1.0)
    return (noise + F32(rng.uniform(0.3, 0.6)) * whine) * ramp


_RENDERERS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "Alarm_bell_ringing": _alarm_bell,
    "Blender": _blender,
    "Cat": _cat,
    "Dishes": _dishes,
    "Dog": _dog,
    "Electric_shaver_toothbrush": _shaver,
    "Frying": _frying,
    "Running_water": _running_water,
    "Speech": _speech,
    "Vacuum_cleaner": _vacuum,
}
assert tuple(_RENDERERS) == DESED_CLASSES


def render_event(label: str, duration: float, rng: np.random.Generator) -> np.ndarray:
    """One isolated event of class ``label``, float32, at most ``duration`` seconds, unit active level.

    The length is a whole number of milliseconds (so labels are exact) and can
    be shorter than asked for classes made of units (barks, syllables, meows,
    clinks): the event ends where its last unit ends.
    """
    if label not in _RENDERERS:
        raise DatasetError(f"no synthesiser for class {label!r}. Fix: use one of {DESED_CLASSES}.")
    n = max(_MS, int(duration * 1000) * _MS)
    x = np.asarray(_RENDERERS[label](n, rng), dtype=F32)
    x = np.array(x[: len(x) - len(x) % _MS])
    _fade(x, 0.01)
    return x / F32(_active_level(x) + 1e-12)


def _active_level(x: np.ndarray, frame: int = 512) -> float:
    """RMS over the louder half of 32 ms frames: the level of an event while it sounds."""
    frames = len(x) // frame
    if frames < 2:
        return _rms(x)
    power = np.mean(np.square(x[: frames * frame].reshape(frames, frame), dtype=np.float64), axis=1)
    loud = np.sort(power)[frames // 2 :]
    return float(np.sqrt(loud.mean()))


def render_background(n: int, rng: np.random.Generator) -> np.ndarray:
    """A background of ``n`` samples: pink, brown and room noise + mains hum at random mixes; unit RMS, float32."""
    w_pink, w_brown, w_room = rng.uniform(0.0, 1.0, 3)
    w_pink += 0.2
    room_peaks = rng.uniform(80, 400, 2)
    room_widths = rng.uniform(0.3, 0.8, 2)

    def gain(f: np.ndarray) -> np.ndarray:
        ratio = np.maximum(f, F32(20.0)) / F32(100.0)
        room = _band(f, room_peaks[0], room_widths[0]) + _band(f, room_peaks[1], room_widths[1])
        shape = F32(w_pink) / np.sqrt(ratio) + F32(w_brown) / ratio + F32(3.0 * w_room) * room
        return _highpass(f, 20.0, 2) * shape

    x = _shaped_noise(n, rng, gain)
    if rng.random() < 0.5:
        mains = rng.choice([50.0, 60.0])
        hum = _unit(_wavetable(_phase(mains, n), rng.uniform(0.0, 1.0, 5) / np.arange(1, 6), rng))
        x += F32(10 ** (rng.uniform(-20, -6) / 20)) * hum
    drift = F32(1.0) + F32(0.15) * _sine(_phase(rng.uniform(0.05, 0.3), n), rng.uniform(0, 2 * np.pi))
    return _unit(x * drift)


def render_clip(rng: np.random.Generator, domain: Domain | None = None) -> tuple[np.ndarray, list[Event]]:
    """One 10 s soundscape as int16 samples and its events (sorted by onset).

    ``domain`` (sed.data.domains) sets the level ranges and the recording chain;
    None is the original generator (the same draws and bytes as before domains existed).
    """
    ebr_range = _EBR_DB if domain is None else domain.ebr_db
    background_rms = 10 ** (rng.uniform(*(_BACKGROUND_DBFS if domain is None else domain.background_dbfs)) / 20)
    mix = F32(background_rms) * render_background(CLIP_SAMPLES, rng)
    events: list[Event] = []
    placed: list[tuple[str, int, int]] = []  # label, start, stop (samples)
    gap = int(_SAME_CLASS_GAP_S * SR)
    for _ in range(int(rng.integers(1, _MAX_EVENTS + 1))):
        label = DESED_CLASSES[int(rng.integers(len(DESED_CLASSES)))]
        low, high = CLASS_DURATIONS[label]
        audio = render_event(label, rng.uniform(low, min(high, CLIP_SECONDS)), rng)
        length_ms = len(audio) // _MS
        for _attempt in range(10):
            start = int(rng.integers(0, int(CLIP_SECONDS * 1000) - length_ms + 1)) * _MS
            stop = start + len(audio)
            if all(other != label or stop + gap <= s or e + gap <= start for other, s, e in placed):
                break
        else:
            continue  # no room for another event of this class
        ebr_db = rng.uniform(*ebr_range)
        mix[start:stop] += F32(background_rms * 10 ** (ebr_db / 20)) * audio
        placed.append((label, start, stop))
        events.append(Event(round(start / SR, 3), round(stop / SR, 3), label))
    if domain is not None:
        mix = record(mix, domain, rng)
    if not np.isfinite(mix).all():  # a synthesis bug, never the user's input
        raise RuntimeError("the embedded-data generator produced a non-finite sample")
    peak = float(np.max(np.abs(mix)))
    if peak > 0.95:
        mix *= F32(0.95 / peak)
    samples = np.clip(np.round(mix * F32(32767.0)), -32768, 32767).astype(np.int16)
    events.sort(key=lambda e: (e.onset, e.offset, e.label))
    return samples, events
