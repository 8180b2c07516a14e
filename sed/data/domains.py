"""Acoustic domains of the embedded data: how clean or "recorded" a part's clips sound.

One job: describe a domain (:class:`Domain`) and apply its recording chain to
a finished mix (:func:`record`). The ``tiny``, ``small`` and ``default`` sizes
use no domain (their clips are exactly those of the original generator); the
``gap`` size (:data:`GAP_DOMAINS`) reproduces DESED's gap between synthetic
soundscapes, which carry the strong labels, and the real recordings of the
weak, unlabeled, validation and evaluation sets (docs/reference.md):

=================== ================== ==================================
knob                clean (synthetic)  recorded (weak, unlabeled, val, eval)
=================== ================== ==================================
event-to-background 12 to 24 dB        6 to 21 dB
background level    -48 to -36 dBFS    -45 to -30 dBFS
microphone / room   flat               3 random peaking bands of
response                               +-``eq_db`` = 10 dB (0.3-1 octave)
                                       and a tilt of +-5 dB over 10 octaves
level               as mixed           -12 to 0 dB
=================== ================== ==================================

``scarce-far`` (:data:`FAR_DOMAINS`) moves the recordings farther from the
synthetic clips: peaking bands of +-16 dB and a tilt of +-8 dB (``eq_db`` =
16), everything else as above. Measured (benchmarks/README.md, "A farther
recorded domain"; 64 mel bands, seeds 1-5): against ``scarce-eval400`` the
no-augmentation control loses 0.049 public-eval F1 (0.226 -> 0.177) and
FilterAugment's worst case (``filter_adversarial``) 0.034 (0.266 -> 0.232),
so the augmentation that bridges the recording chain wins beyond seed noise.

A domain's draws come after every draw of the clip itself, so the events and
their times do not depend on the chain, only on (size, seed, part, index).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sed.data.signal_blocks import F32, _band, _filter

__all__ = ["Domain", "CLEAN", "RECORDED", "RECORDED_FAR", "GAP_DOMAINS", "FAR_DOMAINS", "record"]


@dataclass(frozen=True)
class Domain:
    """A part's acoustic domain: level ranges of the mix and its recording chain."""

    #: event-to-background ratio range in dB (the original generator: 6 to 24)
    ebr_db: tuple[float, float]
    #: background RMS range in dBFS (the original generator: -48 to -30)
    background_dbfs: tuple[float, float]
    #: largest |gain| in dB of each of the 3 random peaking bands (0: a flat response, no tilt)
    eq_db: float = 0.0
    #: overall level change range in dB (applied before the 16-bit conversion)
    level_db: tuple[float, float] = (0.0, 0.0)

    @property
    def records(self) -> bool:
        """Whether :func:`record` changes a mix (and draws from the clip's stream)."""
        return self.eq_db > 0.0 or self.level_db != (0.0, 0.0)


#: The synthetic soundscapes' domain: clean, loud events over quiet backgrounds.
CLEAN = Domain(ebr_db=(12.0, 24.0), background_dbfs=(-48.0, -36.0))
#: The recordings' domain: quieter events over louder backgrounds through a coloured chain.
RECORDED = Domain(ebr_db=(6.0, 21.0), background_dbfs=(-45.0, -30.0), eq_db=10.0, level_db=(-12.0, 0.0))

#: The ``gap`` size: synthetic (strong labels) clean, every other part recorded, as in DESED.
GAP_DOMAINS: dict[str, Domain] = {
    "synthetic": CLEAN,
    "weak": RECORDED,
    "unlabeled": RECORDED,
    "validation": RECORDED,
    "public_eval": RECORDED,
}

#: Recordings through a stronger chain: +-16 dB peaking bands and a +-8 dB tilt (``scarce-far``).
RECORDED_FAR = replace(RECORDED, eq_db=16.0)
#: The ``scarce-far`` size: the synthetic part clean, every other part through :data:`RECORDED_FAR`.
FAR_DOMAINS: dict[str, Domain] = {part: (CLEAN if part == "synthetic" else RECORDED_FAR) for part in GAP_DOMAINS}


def record(mix: np.ndarray, domain: Domain, rng: np.random.Generator) -> np.ndarray:
    """``mix`` (float32) through the domain's microphone/room response and level change."""
    if not domain.records:
        return mix
    if domain.eq_db > 0.0:
        centres = np.exp(rng.uniform(np.log(150.0), np.log(6000.0), 3))
        widths = rng.uniform(0.3, 1.0, 3)
        gains_db = rng.uniform(-domain.eq_db, domain.eq_db, 3)
        tilt_db = rng.uniform(-0.5, 0.5) * domain.eq_db  # dB over the 10 octaves 8 Hz - 8 kHz

        def response(f: np.ndarray) -> np.ndarray:
            octave = np.log2(np.maximum(f, F32(8.0)) / F32(8.0)) / F32(10.0) - F32(0.5)
            total_db = F32(tilt_db) * octave
            for centre, width, gain in zip(centres, widths, gains_db):
                total_db = total_db + F32(gain) * _band(f, float(centre), float(width))
            return np.power(F32(10.0), total_db / F32(20.0))

        mix = _filter(mix, response).astype(F32)
    level = rng.uniform(*domain.level_db)
    return mix * F32(10 ** (level / 20))
