"""A small DESED-format dataset mixed from REAL recordings shipped in Debian and PyPI packages.

    python benchmarks/real_recordings.py build --sources PKGS --out DIR [--seed 0]
        [--synthetic 60] [--weak 20] [--unlabeled 200] [--validation 50] [--public-eval 50]
    python benchmarks/real_recordings.py extract-rcc BUNDLE.rcc OUTDIR

What it builds. ``DIR`` in the DESED 2020 layout that ``sed.data.desed.load_desed``
reads (the layout the embedded generator writes, ``sed.data.layouts.LAYOUT``):
10 s, 16 kHz (``sed.constants.SAMPLE_RATE``), mono 16-bit WAV soundscapes in
``audio/train/synthetic20/soundscapes``, ``audio/train/weak``,
``audio/train/unlabel_in_domain``, ``audio/validation`` and ``audio/eval/public``,
with ``metadata/train/synthetic20/soundscapes.tsv``, ``metadata/validation/validation.tsv``
and ``metadata/eval/public.tsv`` (strong: ``filename onset offset event_label``),
``metadata/train/weak.tsv`` (``filename event_labels``, comma-separated),
``metadata/train/unlabel_in_domain.tsv`` (``filename``) and
``metadata/eval/public_meta.tsv`` (``filename duration``). Beside them:
``SOURCES.md`` (every recording used, its package, licence and credit) and
``counts.json`` (clips and events per class per part). Use it with
``--data DIR`` (``TrainConfig.data``).

How. Each recording of :data:`MANIFEST` is read with soundfile, mixed down to
mono, resampled to 16 kHz (``scipy.signal.resample_poly``), cut to its
segment when the manifest names one, and peak-normalised; event recordings
lose their leading and trailing digital silence (10 ms frames whose peak is
below -80 dB re the file peak) and are refused when more than 0.1 % of their
samples sit at full scale (clipping screen). A soundscape is a real
background recording (looped from a random point to fill 10 s, level
-50 to -35 dBFS RMS) plus 1-3 events (class drawn uniformly among the classes
the part's pool has, then a recording of that class; onset uniform over the
clip; a same-class overlap is redrawn up to 20 times). Each event's level sets
its event-to-background SNR (RMS over the event vs RMS of the background), drawn
uniformly from 6-30 dB as in DESED's synthetic soundscapes (``--snr-min``,
``--snr-max``); events longer than 8 s are cropped at random. The strong label
is the event's onset and offset in the clip: its non-silent extent. A mix
whose peak exceeds 0.99 is scaled down as a whole (the SNRs stay). Clip ``i``
of a part draws from ``SeedSequence(seed, spawn_key=(part, i))``: the output is
a function of the sources and the seed.

How the split avoids leakage. Every manifest entry has a pool: ``train`` (used
by the synthetic strong, weak and unlabeled parts), ``val`` (validation only),
``eval`` (public evaluation only) or ``heldout`` (validation and public
evaluation, never training: used where a class has too few recordings for
three pools). Pools hold different recordings, or disjoint time segments of
one recording: Speech trains on the ALSA voice, four Asterisk prompts and the
Tux Paint fr/ru/ca speakers; validation has the bg speaker, the CMU ARCTIC
sentence and pyannote's conversation 6.69-14.70 s; public eval the el/ro/da
speakers and pyannote 14.70-30 s. Dog: train two barks (L. Allorge's take 1,
GCompris' dog), validation Allorge's take 3, eval Tux Paint's dog. Alarm:
train the wesnoth bell and the freedesktop alarm clock 0-3.5 s, validation
that alarm clock 3.5 s-end, eval the GCompris ring. Running_water: train
minetest cuts 1-2, GCompris water, LinCity Water1-3; validation minetest cut
3 and Water4; eval minetest cut 4, GCompris water_fill and Water5 (the four
minetest cuts come from one freesound recording). Cat: train GCompris' cat,
validation and eval Tux Paint's blackcat (``heldout``). Backgrounds: train
birds1, birds2, campfire, night, harbour 1, train; validation birds3, ship;
eval morning, harbour 2, frogs in a storm.

From what. Package versions surveyed on Debian 12 (bookworm): alsa-utils
1.2.8-1, asterisk-core-sounds-en-wav 1.6.1-1, gcompris-qt-data 3.1-2,
lincity-ng-data 2.9~git20150314-5, minetest-data 5.6.1, sound-theme-freedesktop
0.8-2, tuxpaint-stamps-default 2022.06.04-1, wesnoth-1.16-data 1:1.16.9-1; PyPI
pysptk 1.0.1 (sdist) and pyannote.audio 4.0.7 (wheel). Fetch and extract them
(nothing is installed; about 350 MB, mostly tux paint's stamps)::

    PKGS=$PWD/realaudio-pkgs; mkdir -p $PKGS/debs $PKGS/x $PKGS/gcompris_rcc $PKGS/pip
    cd $PKGS/debs
    apt-get download sound-theme-freedesktop alsa-utils gcompris-qt-data \\
      tuxpaint-stamps-default minetest-data wesnoth-1.16-data lincity-ng-data \\
      asterisk-core-sounds-en-wav
    for d in *.deb; do n=${d%%_*}; mkdir -p ../x/$n; dpkg -x $d ../x/$n; done
    cd -   # back to the repository
    for b in explore_farm_animals memory-sound canal_lock core watercycle; do
      python benchmarks/real_recordings.py extract-rcc \\
        $PKGS/x/gcompris-qt-data/usr/share/gcompris-qt/rcc/$b.rcc $PKGS/gcompris_rcc/$b
    done
    cd $PKGS/pip
    pip download --no-deps pysptk==1.0.1 -d .
    tar xzf pysptk-1.0.1.tar.gz pysptk-1.0.1/pysptk/example_audio_data pysptk-1.0.1/LICENSE.md
    pip download --no-deps --only-binary=:all: pyannote.audio==4.0.7 -d .
    unzip -o -q pyannote_audio-4.0.7-py3-none-any.whl 'pyannote/audio/sample/*' \\
      'pyannote_audio-4.0.7.dist-info/*' -d pyannote

(GCompris keeps its sounds in Qt resource bundles; ``extract-rcc`` unpacks one.)

Licences. All free: GPL-2 (alsa-utils, Tux Paint stamps), GPL-2+ (Wesnoth,
LinCity-NG), GPL-3 (GCompris), CC0-1.0 (minetest water, freesound 197023),
CC-BY-3.0 (GCompris water_fill, freesound 34681), CC-BY-SA-3.0 (freedesktop
alarm clock, Asterisk prompts), Free Art License 1.3 (GCompris "LR..._LA"
field recordings by Lionel Allorge), MIT (pyannote.audio's sample), the CMU
ARCTIC licence (pysptk's sample). Not all of these are compatible with one
another for one redistributed work, so the repository holds only this script:
the audio is fetched by each user from the packages and the soundscapes are
mixed locally; ``SOURCES.md`` in the output keeps the credits. Do not publish
the built dataset without checking the licences of what it contains.

Limits. Only 5 of DESED's 10 classes (Speech, Running_water, Dog,
Alarm_bell_ringing, Cat); Blender, Dishes, Electric_shaver_toothbrush, Frying
and Vacuum_cleaner have no (or no usable) real recording, so their metric is
undefined here (sed_eval gives a class with no reference event F1 = NaN and
the macro F1 skips it). Few distinct recordings per class (Cat: 2, Dog: 4,
Alarm: 3 plus a split one), so clips repeat the same recordings many times;
the validation and public-eval events of Cat are the same recording. Mixtures,
not recordings of scenes: validation and evaluation have no domain gap beyond
their other recordings. Backgrounds are outdoor ambiences (no domestic room
tone); harbour and storm backgrounds may hold water-like sound. Files the
survey left unverified (supertux, the rain-in-garden clip, the crowd) are not used.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import struct
import sys
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sed.constants import CLIP_SECONDS, SAMPLE_RATE  # noqa: E402
from sed.data.desed import LAYOUT, PUBLIC_META, STRONG_COLUMNS, WEAK_COLUMNS  # noqa: E402

POOLS = ("train", "val", "eval", "heldout")
#: Which pools feed each part (``heldout`` recordings never reach a training part).
PART_POOLS: dict[str, tuple[str, ...]] = {
    "synthetic": ("train",),
    "weak": ("train",),
    "unlabeled": ("train",),
    "validation": ("val", "heldout"),
    "public_eval": ("eval", "heldout"),
}
PART_PREFIX = {"synthetic": "syn", "weak": "weak", "unlabeled": "unl", "validation": "val", "public_eval": "eval"}
MAX_EVENT_S = 8.0
SILENCE_DB = -80.0
CLIP_SHARE = 1e-3


@dataclass(frozen=True)
class Source:
    """One recording (or one segment of it) of the manifest."""

    label: str  # a DESED class, or "background"
    path: str  # relative to --sources
    package: str
    licence: str
    credit: str
    pool: str  # train | val | eval | heldout
    segment: tuple[float, float] | None = None  # seconds of the file used; None = all of it


_ALSA = "x/alsa-utils/usr/share/sounds/alsa/"
_AST = "x/asterisk-core-sounds-en-wav/usr/share/asterisk/sounds/en_US_f_Allison/"
_TUX = "x/tuxpaint-stamps-default/usr/share/tuxpaint/stamps/"
_MEM = "gcompris_rcc/memory-sound/gcompris/src/activities/memory-sound/resource/"
_FARM = "gcompris_rcc/explore_farm_animals/gcompris/src/activities/explore_farm_animals/resource/animals/"
_WATER = "x/minetest-data/usr/share/games/minetest/games/minetest_game/mods/env_sounds/sounds/env_sounds_water."
_LINC = "x/lincity-ng-data/usr/share/games/lincity-ng/sounds/"
_WES = "x/wesnoth-1.16-data/usr/share/games/wesnoth/1.16/"
_HARBOR = "gcompris_rcc/watercycle/gcompris/src/activities/watercycle/resource/"
_PYANNOTE = "pip/pyannote/pyannote/audio/sample/sample.wav"

_TUX_SPEECH = {
    "train": [
        "household/recyclingbox_desc_fr.ogg",
        "military/vehicles/ww2_german_gun_desc_fr.ogg",
        "space/planets/2_venus_desc_fr.ogg",
        "town/roadsigns/give_way_sign_desc_fr.ogg",
        "animals/fish/dolphinfish_desc_ru.ogg",
        "animals/mammals/camel/dromedary_desc_ru.ogg",
        "clothes/hats/greenhat_desc_ru.ogg",
        "household/dishes/utensils/nutcracker_desc_ru.ogg",
        "animals/insects/hoverfly_desc_ca.ogg",
        "clothes/clothespin_old_desc_ca.ogg",
        "space/voyager2_desc_ca.ogg",
        "symbols/money/canadian/coins/010dime_desc_ca.ogg",
    ],
    "val": [
        "household/dishes/cartoon/pasta_pot_desc_bg.ogg",
        "space/planets/3_earth_desc_bg.ogg",
        "symbols/alphabets/asl/asl_o_desc_bg.ogg",
        "symbols/money/euro/coins/001_desc_bg.ogg",
    ],
    "eval": [
        "animals/amphibians/frog_desc_el.ogg",
        "food/fruit/cartoon/apple_core_desc_el.ogg",
        "household/dishes/pitcher_small_desc_el.ogg",
        "animals/mammals/dogs/dingo_desc_ro.ogg",
        "clothes/bluejeans1_desc_ro.ogg",
        "food/vegetables/pumpkin_small_desc_ro.ogg",
        "town/roadsigns/blankroadsign_desc_da.ogg",
        "town/roadsigns/stoplight_01_red_desc_da.ogg",
        "vehicles/7spoke256_desc_da.ogg",
    ],
}
_ASTERISK = ["vm-isonphone", "all-circuits-busy-now", "sorry-youre-having-problems", "pls-hold-while-try"]
#: pyannote's sample.rttm speaker turns, merged into contiguous speech stretches.
_PYANNOTE_SEGMENTS = {
    "val": [(6.69, 10.02), (10.57, 14.70)],
    "eval": [(14.70, 17.92), (18.05, 21.49), (21.78, 27.85), (27.85, 30.0)],
}

_GPL3_GC = "GCompris contributors (Bruno Coudoin and others)"
_FAL = ("Free Art License 1.3", "Lionel Allorge / Yves Combe (GCompris)")

MANIFEST: list[Source] = [
    *[
        Source("Speech", f"{_ALSA}{n}.wav", "alsa-utils", "GPL-2", "ALSA project (channel-test voice)", "train")
        for n in ("Front_Center", "Front_Left", "Front_Right", "Rear_Center")
        + ("Rear_Left", "Rear_Right", "Side_Left", "Side_Right")
    ],
    *[
        Source("Speech", f"{_AST}{n}.wav", "asterisk-core-sounds-en-wav", "CC-BY-SA-3.0", "(c) Allison Smith", "train")
        for n in _ASTERISK
    ],
    *[
        Source("Speech", _TUX + p, "tuxpaint-stamps-default", "GPL-2", "Tux Paint stamp-description volunteers", pool)
        for pool, paths in _TUX_SPEECH.items()
        for p in paths
    ],
    Source(
        "Speech",
        "pip/pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav",
        "pysptk 1.0.1 (PyPI)",
        "CMU ARCTIC licence (use with attribution)",
        "CMU ARCTIC database, Language Technologies Institute, Carnegie Mellon University",
        "val",
    ),
    *[
        Source("Speech", _PYANNOTE, "pyannote.audio 4.0.7 (PyPI)", "MIT", "pyannote.audio sample", pool, seg)
        for pool, segments in _PYANNOTE_SEGMENTS.items()
        for seg in segments
    ],
    Source("Dog", _MEM + "LRBark_1_LA_cut.ogg", "gcompris-qt-data", *_FAL, "train"),
    Source("Dog", _FARM + "dog.ogg", "gcompris-qt-data", "GPL-3", _GPL3_GC + ", Franck Doucet", "train"),
    Source("Dog", _MEM + "LRBark_3_LA_cut.ogg", "gcompris-qt-data", *_FAL, "val"),
    Source("Dog", _TUX + "animals/mammals/dogs/dog.ogg", "tuxpaint-stamps-default", "GPL-2", "Tux Paint", "eval"),
    Source("Cat", _FARM + "cat.ogg", "gcompris-qt-data", "GPL-3", _GPL3_GC + ", Franck Doucet", "train"),
    Source("Cat", _TUX + "seasonal/halloween/blackcat.ogg", "tuxpaint-stamps-default", "GPL-2", "Tux Paint", "heldout"),
    *[
        Source(
            "Alarm_bell_ringing",
            "x/sound-theme-freedesktop/usr/share/sounds/freedesktop/stereo/alarm-clock-elapsed.oga",
            "sound-theme-freedesktop",
            "CC-BY-SA-3.0",
            "Tim (freesound user corsica_s)",
            pool,
            seg,
        )
        for pool, seg in (("train", (0.0, 3.5)), ("val", (3.5, 6.13)))
    ],
    Source("Alarm_bell_ringing", _WES + "sounds/bell.wav", "wesnoth-1.16-data", "GPL-2+", "Wesnoth authors", "train"),
    Source("Alarm_bell_ringing", _MEM + "LRRing_01_LA.ogg", "gcompris-qt-data", *_FAL, "eval"),
    *[
        Source("Running_water", f"{_WATER}{i}.ogg", "minetest-data", "CC0-1.0", "freesound user Yuval (197023)", pool)
        for i, pool in ((1, "train"), (2, "train"), (3, "val"), (4, "eval"))
    ],
    Source(
        "Running_water",
        "gcompris_rcc/core/gcompris/src/core/resource/sounds/water.wav",
        "gcompris-qt-data",
        "GPL-3",
        _GPL3_GC,
        "train",
    ),
    Source(
        "Running_water",
        "gcompris_rcc/canal_lock/gcompris/src/activities/canal_lock/resource/water_fill.wav",
        "gcompris-qt-data",
        "CC-BY-3.0",
        "freesound user inchadney (34681)",
        "eval",
    ),
    *[
        Source("Running_water", f"{_LINC}Water{i}.wav", "lincity-ng-data", "GPL-2+", "LinCity-NG authors", pool)
        for i, pool in ((1, "train"), (2, "train"), (3, "train"), (4, "val"), (5, "eval"))
    ],
    *[
        Source("background", f"{_WES}data/core/sounds/ambient/{n}.ogg", "wesnoth-1.16-data", "GPL-2+", "Wesnoth", pool)
        for n, pool in (("birds1", "train"), ("birds2", "train"), ("campfire", "train"), ("night", "train"))
        + (("birds3", "val"), ("ship", "val"), ("morning", "eval"))
    ],
    Source("background", _HARBOR + "harbor1.wav", "gcompris-qt-data", "GPL-3", _GPL3_GC, "train"),
    Source("background", _HARBOR + "harbor2.wav", "gcompris-qt-data", "GPL-3", _GPL3_GC, "eval"),
    Source("background", _MEM + "LRTrain_slowing_down_01_LA_cut.ogg", "gcompris-qt-data", *_FAL, "train"),
    Source("background", _MEM + "LRFrogsInPondDuringStormLACut.ogg", "gcompris-qt-data", *_FAL, "eval"),
]

_DEB_FETCH = "mkdir -p SOURCES/debs SOURCES/x && cd SOURCES/debs && apt-get download {p} && dpkg -x {p}_*.deb ../x/{p}"
_FETCH = {
    "gcompris_rcc": _DEB_FETCH.format(p="gcompris-qt-data") + " && python benchmarks/real_recordings.py extract-rcc "
    "SOURCES/x/gcompris-qt-data/usr/share/gcompris-qt/rcc/{bundle}.rcc SOURCES/gcompris_rcc/{bundle}",
    "pip/pysptk": "mkdir -p SOURCES/pip && cd SOURCES/pip && pip download --no-deps pysptk==1.0.1 -d . && tar xzf pysptk-1.0.1.tar.gz "
    "pysptk-1.0.1/pysptk/example_audio_data pysptk-1.0.1/LICENSE.md",
    "pip/pyannote": "mkdir -p SOURCES/pip && cd SOURCES/pip && pip download --no-deps --only-binary=:all: pyannote.audio==4.0.7 -d . && "
    "unzip -o -q pyannote_audio-4.0.7-py3-none-any.whl 'pyannote/audio/sample/*' "
    "'pyannote_audio-4.0.7.dist-info/*' -d pyannote",
}


class SourceError(RuntimeError):
    """A manifest file is missing, unreadable or unusable."""


def fetch_command(rel: str, sources: Path) -> str:
    """The command that fetches the package holding ``rel`` (paths as in the module docstring)."""
    parts = rel.split("/")
    if parts[0] == "x":
        command = _DEB_FETCH.format(p=parts[1])
    elif parts[0] == "gcompris_rcc":
        command = _FETCH["gcompris_rcc"].replace("{bundle}", parts[1])
    else:
        command = _FETCH["pip/" + parts[1].split("-")[0]]
    return command.replace("SOURCES", str(sources))


# --------------------------------------------------------------------------- audio


def load_source(source: Source, sources: Path) -> np.ndarray:
    """Mono float64 at SAMPLE_RATE, segment cut, peak 1; events trimmed of digital silence and screened."""
    path = sources / source.path
    try:
        samples, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise SourceError(f"{path}: unreadable ({error}). Refetch it: {fetch_command(source.path, sources)}") from error
    mono = samples.mean(axis=1)
    if source.segment is not None:
        start, stop = (int(round(t * rate)) for t in source.segment)
        mono = mono[start:stop]
    if source.label != "background":
        full_scale = np.abs(samples).max(axis=1) >= 0.99
        if full_scale.mean() > CLIP_SHARE:
            raise SourceError(f"{path}: {full_scale.mean():.2%} of its samples are clipped; drop it from MANIFEST.")
    g = gcd(SAMPLE_RATE, rate)
    mono = resample_poly(mono, SAMPLE_RATE // g, rate // g) if rate != SAMPLE_RATE else mono
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    if peak <= 0.0:
        raise SourceError(f"{path}: silent (segment {source.segment}); fix its MANIFEST entry.")
    mono = mono / peak
    if source.label != "background":
        mono = trim_silence(mono)
    return mono


def trim_silence(samples: np.ndarray, frame: int = SAMPLE_RATE // 100) -> np.ndarray:
    """Drop leading and trailing 10 ms frames whose peak is below SILENCE_DB re the peak (1)."""
    n = len(samples) // frame
    if n == 0:
        return samples
    peaks = np.abs(samples[: n * frame]).reshape(n, frame).max(axis=1)
    loud = np.flatnonzero(peaks >= 10.0 ** (SILENCE_DB / 20.0))
    first, last = int(loud[0]), int(loud[-1])
    stop = len(samples) if last == n - 1 else (last + 1) * frame
    return samples[first * frame : stop]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + 1e-20))


def _background(rng: np.random.Generator, recording: np.ndarray, length: int) -> np.ndarray:
    """``length`` samples of the recording, looped from a random start."""
    start = int(rng.integers(len(recording)))
    reps = int(np.ceil((start + length) / len(recording)))
    return np.tile(recording, reps)[start : start + length].copy()


def render_clip(
    rng: np.random.Generator,
    events: dict[str, list[np.ndarray]],
    backgrounds: list[np.ndarray],
    snr_range: tuple[float, float],
) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """One 10 s soundscape and its (onset, offset, label) events, sorted by onset."""
    length = int(round(CLIP_SECONDS * SAMPLE_RATE))
    mix = _background(rng, backgrounds[int(rng.integers(len(backgrounds)))], length)
    mix *= 10.0 ** (rng.uniform(-50.0, -35.0) / 20.0) / _rms(mix)
    bg_rms = _rms(mix)
    classes = sorted(events)
    labels: list[tuple[float, float, str]] = []
    for _ in range(int(rng.integers(1, 4))):
        label = classes[int(rng.integers(len(classes)))]
        pool = events[label]
        event = pool[int(rng.integers(len(pool)))]
        max_len = int(MAX_EVENT_S * SAMPLE_RATE)
        if len(event) > max_len:
            start = int(rng.integers(len(event) - max_len + 1))
            event = event[start : start + max_len]
        for _attempt in range(20):
            onset = int(rng.integers(length - len(event) + 1))
            span = (onset / SAMPLE_RATE, (onset + len(event)) / SAMPLE_RATE)
            if not any(lab == label and span[0] < off and on < span[1] for on, off, lab in labels):
                break
        snr = rng.uniform(*snr_range)
        mix[onset : onset + len(event)] += event * (bg_rms * 10.0 ** (snr / 20.0) / _rms(event))
        labels.append((span[0], span[1], label))
    peak = float(np.abs(mix).max())
    if peak > 0.99:
        mix *= 0.99 / peak
    return mix, sorted(labels)


# --------------------------------------------------------------------------- build


def _write_tsv(path: Path, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["\t".join(header)] + ["\t".join(r) for r in rows]) + "\n", encoding="utf-8")


def _write_wav(path: Path, samples: np.ndarray) -> None:
    buffer = io.BytesIO()
    sf.write(buffer, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    path.write_bytes(buffer.getvalue())


def load_manifest(sources: Path) -> dict[Source, np.ndarray]:
    """Every manifest recording, loaded; refuses with every missing file and its fetch command."""
    missing = sorted({s.path for s in MANIFEST if not (sources / s.path).is_file()})
    if missing:
        files = [f"  {sources / rel}" for rel in missing[:10]]
        if len(missing) > 10:
            files.append(f"  ... and {len(missing) - 10} more")
        commands = sorted({fetch_command(rel, sources) for rel in missing})
        raise SourceError(
            f"{len(missing)} source recordings are missing under {sources}:\n"
            + "\n".join(files)
            + "\nFetch them (the packages' commands; all of them are in this script's docstring):\n"
            + "\n".join(f"  {c}" for c in commands)
        )
    return {source: load_source(source, sources) for source in MANIFEST}


def build(
    sources: Path, out: Path, seed: int, sizes: dict[str, int], snr_range: tuple[float, float], force: bool
) -> dict:
    """Write the dataset into ``out``; returns the counts written to counts.json."""
    if out.exists() and any(out.iterdir()):
        if not force:
            raise SourceError(f"{out} is not empty. Fix: choose a new folder or pass --force (it is replaced).")
        shutil.rmtree(out)
    loaded = load_manifest(sources)
    counts: dict = {"seed": seed, "sample_rate": SAMPLE_RATE, "snr_db": list(snr_range), "parts": {}, "sources": {}}
    for key, (part, layout) in enumerate(LAYOUT.items()):
        pools = PART_POOLS[part]
        chosen = [s for s in MANIFEST if s.pool in pools]
        events: dict[str, list[np.ndarray]] = {}
        for s in chosen:
            if s.label != "background":
                events.setdefault(s.label, []).append(loaded[s])
        backgrounds = [loaded[s] for s in chosen if s.label == "background"]
        audio_dir = out / layout.audio_dir
        audio_dir.mkdir(parents=True, exist_ok=True)
        names: list[str] = []
        clip_events: list[list[tuple[float, float, str]]] = []
        for index in range(sizes[part]):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key, index)))
            samples, labels = render_clip(rng, events, backgrounds, snr_range)
            name = f"{PART_PREFIX[part]}_{index:05d}.wav"
            _write_wav(audio_dir / name, samples)
            names.append(name)
            clip_events.append(labels)
        assert layout.metadata is not None
        rows: list[tuple[str, ...]]
        if layout.kind == "strong":
            rows = [(n, f"{on:.3f}", f"{off:.3f}", lab) for n, evs in zip(names, clip_events) for on, off, lab in evs]
            _write_tsv(out / layout.metadata, STRONG_COLUMNS, rows)
        elif layout.kind == "weak":
            rows = [(n, ",".join(sorted({lab for *_, lab in evs}))) for n, evs in zip(names, clip_events)]
            _write_tsv(out / layout.metadata, WEAK_COLUMNS, rows)
        else:
            _write_tsv(out / layout.metadata, ("filename",), [(n,) for n in names])
        if part == "public_eval":
            _write_tsv(out / PUBLIC_META, ("filename", "duration"), [(n, f"{CLIP_SECONDS:.3f}") for n in names])
        per_class = Counter(lab for evs in clip_events for *_, lab in evs)
        counts["parts"][part] = {"clips": len(names), "events": dict(sorted(per_class.items()))}
        counts["sources"][part] = dict(sorted(Counter(s.label for s in chosen).items()))
    (out / "counts.json").write_text(json.dumps(counts, indent=2) + "\n", encoding="utf-8")
    _write_sources_md(out / "SOURCES.md", loaded, seed)
    return counts


def _write_sources_md(path: Path, loaded: dict[Source, np.ndarray], seed: int) -> None:
    lines = [
        "# Recordings mixed into this dataset",
        "",
        f"Built by `benchmarks/real_recordings.py build --seed {seed}` of the sedtune repository from recordings",
        "shipped in Debian 12 and PyPI packages (fetch commands: the script's docstring). The soundscapes are",
        "derived works of the recordings below; keep these credits with them and check the licences before",
        "redistributing anything (GPL-2-only, GPL-3 and CC-BY-SA material are not all compatible).",
        "",
        "Pools: train = synthetic, weak and unlabeled parts; val = validation; eval = public evaluation;",
        "heldout = validation and public evaluation. Used = seconds after resampling and trimming.",
        "",
        "| class | pool | file (under the sources folder) | segment (s) | used (s) | package | licence | credit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in MANIFEST:
        segment = "all" if s.segment is None else f"{s.segment[0]:.2f}-{s.segment[1]:.2f}"
        used = len(loaded[s]) / SAMPLE_RATE
        lines.append(
            f"| {s.label} | {s.pool} | `{s.path}` | {segment} | {used:.2f} | {s.package} | {s.licence} | {s.credit} |"
        )
    lines += [
        "",
        "Licence texts: `x/<package>/usr/share/doc/<package>/copyright` (Debian packages; GCompris' per-file",
        "credits are in gcompris-qt-data's), the minetest env_sounds mod's README.txt,",
        "`pip/pysptk-1.0.1/pysptk/example_audio_data/COPYING`, `pip/pyannote/pyannote_audio-4.0.7.dist-info/`.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


# --------------------------------------------------------------------------- Qt resource bundles


def extract_rcc(bundle: Path, out: Path) -> int:
    """Write every file of a Qt binary resource bundle (.rcc, format 1-3) under ``out``; returns the count.

    Header: ``qres``, then big-endian u32 version, tree, data and names offsets
    (+ u32 flags from version 3). Tree nodes (14 bytes, 22 from version 2): u32
    name offset, u16 flags (1 zlib, 2 directory, 4 zstd), then for a directory
    u32 child count and u32 first child index, else u16 territory, u16
    language, u32 data offset. A name is u16 length, u32 hash, UTF-16BE text; a
    data entry is u32 size and the bytes (zlib ones start with a u32 length).
    """
    blob = bundle.read_bytes()
    if blob[:4] != b"qres":
        raise SourceError(f"{bundle}: not a Qt resource bundle (no 'qres' header).")
    version, tree, data, names = struct.unpack_from(">IIII", blob, 4)
    node_size = 14 if version < 2 else 22

    def name_of(offset: int) -> str:
        (length,) = struct.unpack_from(">H", blob, names + offset)
        return blob[names + offset + 6 : names + offset + 6 + 2 * length].decode("utf-16-be")

    written = 0
    stack: list[tuple[int, Path]] = [(0, out)]
    while stack:
        index, folder = stack.pop()
        at = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", blob, at)
        target = folder if index == 0 else folder / name_of(name_offset)
        if flags & 2:
            count, first = struct.unpack_from(">II", blob, at + 6)
            stack.extend((first + i, target) for i in range(count))
            continue
        (offset,) = struct.unpack_from(">I", blob, at + 10)
        (size,) = struct.unpack_from(">I", blob, data + offset)
        payload = blob[data + offset + 4 : data + offset + 4 + size]
        if flags & 4:
            raise SourceError(f"{bundle}: {target.name} is zstd-compressed, which this reader does not handle.")
        if flags & 1:
            payload = zlib.decompress(payload[4:])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
        written += 1
    return written


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="mix the DESED-format dataset")
    b.add_argument("--sources", type=Path, required=True, help="the extracted packages (see the docstring)")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--seed", type=int, default=0)
    for part, default in (("synthetic", 60), ("weak", 20), ("unlabeled", 200), ("validation", 50)):
        b.add_argument(f"--{part}", type=int, default=default, help=f"clips (default {default})")
    b.add_argument("--public-eval", type=int, default=50, help="clips (default 50)")
    b.add_argument("--snr-min", type=float, default=6.0)
    b.add_argument("--snr-max", type=float, default=30.0)
    b.add_argument("--force", action="store_true", help="replace a non-empty --out")
    x = commands.add_parser("extract-rcc", help="unpack a Qt .rcc resource bundle (GCompris' sounds)")
    x.add_argument("bundle", type=Path)
    x.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "extract-rcc":
            print(f"{extract_rcc(args.bundle, args.out)} files -> {args.out}")
            return 0
        sizes = {part: getattr(args, part) for part in LAYOUT}
        if min(sizes.values()) < 1 or not args.snr_min <= args.snr_max:
            parser.error("every part needs >= 1 clip and --snr-min <= --snr-max")
        counts = build(args.sources, args.out, args.seed, sizes, (args.snr_min, args.snr_max), args.force)
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for part, info in counts["parts"].items():
        print(f"{part:12s} {info['clips']:4d} clips  events {info['events']}")
    print(f"-> {args.out} (SOURCES.md, counts.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
