"""Fixed facts of the DCASE 2020 task 4 baseline (see docs/reference.md).

These are the reference recipe's numbers; everything configurable lives in
dataclass configs, these are the defaults those configs start from.
"""

from __future__ import annotations

SAMPLE_RATE: int = 16000
CLIP_SECONDS: float = 10.0
N_FFT: int = 2048
HOP: int = 255
N_MELS: int = 128
#: ceil(10 s * 16000 / 255) input frames of the log-mel (docs/reference.md, Features).
N_FRAMES: int = 628
#: The CRNN pools time by 2 x 2 = 4 (docs/reference.md, CRNN).
POOL_TIME: int = 4
#: 628 // 4 output frames.
N_OUT_FRAMES: int = 157
#: Seconds per output frame: 4 * 255 / 16000 = 63.75 ms (docs/reference.md, Post-processing).
FRAME_STEP_S: float = POOL_TIME * HOP / SAMPLE_RATE

#: The ten DESED classes (docs/reference.md, DESED metadata), alphabetical as in the reference.
DESED_CLASSES: tuple[str, ...] = (
    "Alarm_bell_ringing",
    "Blender",
    "Cat",
    "Dishes",
    "Dog",
    "Electric_shaver_toothbrush",
    "Frying",
    "Running_water",
    "Speech",
    "Vacuum_cleaner",
)
