"""Signal surgery on single clips: trim silence, even out levels, cut long clips at pauses.

Recorded clips come with their own lead-in silence, gain and length. Trimming keeps joined
utterances from being half silence (which would make mixtures trivially separable in time);
a common active level keeps joined clips of one speaker from jumping in loudness; cutting at
the quietest point of a window splits long lines between words rather than inside them.
Everything here is float64 numpy on mono signals at the corpus rate.
"""

from __future__ import annotations

import numpy as np

FRAME_S = 0.020
HOP_S = 0.010
# Frames this far below the clip's loudest frame count as silence. 30 dB rather than librosa's
# 40: KDE recordings carry hiss at -35 to -40 dB that would otherwise pass for speech.
TOP_DB = 30.0
# Noisy recordings (klettres hu: hiss at -25 dB) need the threshold this far above the noise
# floor (the 10th percentile frame), but never closer than CEILING_DB to the peak, so that the
# weak onsets of clean speech survive.
FLOOR_MARGIN_DB = 6.0
CEILING_DB = 15.0
# Consecutive active frames (40 ms) that make speech rather than a click.
MIN_RUN = 3
# Speech kept on each side of the first and last active frame, so onsets are not clipped.
MARGIN_S = 0.05
# Below this frame RMS a whole clip is digital silence, whatever its relative level.
SILENCE_RMS = 1e-4
# Active RMS every clip is scaled to before joining (the utterance is peak-normalised later).
TARGET_RMS = 0.05


def frame_rms(samples: np.ndarray, rate: int) -> np.ndarray:
    """RMS of 20 ms frames every 10 ms; frame i starts at sample i * hop.

    Computed from a cumulative sum: one pass, whatever the frame length (44.1 kHz clips too).
    """
    frame, hop = int(FRAME_S * rate), int(HOP_S * rate)
    if len(samples) < frame:
        return np.sqrt(np.mean(samples**2, keepdims=True)) if len(samples) else np.zeros(0)
    energy = np.concatenate([[0.0], np.cumsum(samples**2)])
    starts = np.arange(0, len(samples) - frame + 1, hop)
    return np.sqrt(np.maximum(energy[starts + frame] - energy[starts], 0.0) / frame)


def _active(rms: np.ndarray) -> np.ndarray:
    """Frames above the speech threshold (see TOP_DB, FLOOR_MARGIN_DB, CEILING_DB)."""
    if rms.size == 0 or rms.max() < SILENCE_RMS:
        return np.zeros(rms.shape, dtype=bool)
    peak_db = 20 * np.log10(rms.max())
    floor_db = 20 * np.log10(max(float(np.percentile(rms, 10)), 1e-12))
    threshold_db = min(max(peak_db - TOP_DB, floor_db + FLOOR_MARGIN_DB), peak_db - CEILING_DB)
    return rms >= 10 ** (threshold_db / 20)


def _speech_bounds(active: np.ndarray) -> tuple[int, int] | None:
    """First and last frame of the runs of at least MIN_RUN active frames (of any active frame
    when there is no such run); None when nothing is active."""
    if len(active) >= MIN_RUN:
        runs = np.flatnonzero(np.convolve(active.astype(int), np.ones(MIN_RUN, dtype=int), mode="valid") == MIN_RUN)
        if runs.size:
            return int(runs[0]), int(runs[-1]) + MIN_RUN - 1
    frames = np.flatnonzero(active)
    return (int(frames[0]), int(frames[-1])) if frames.size else None


def trim_silence(samples: np.ndarray, rate: int) -> np.ndarray:
    """Cut leading and trailing silence, keeping a 50 ms margin; all-silent clips become empty.

    Speech starts and ends where MIN_RUN consecutive frames are active, so that an isolated
    click in a recording's lead-in does not count as its start.
    """
    bounds = _speech_bounds(_active(frame_rms(samples, rate)))
    if bounds is None:
        return samples[:0]
    hop, frame, margin = int(HOP_S * rate), int(FRAME_S * rate), int(MARGIN_S * rate)
    start = max(0, bounds[0] * hop - margin)
    stop = min(len(samples), bounds[1] * hop + frame + margin)
    return samples[start:stop]


def normalise_level(samples: np.ndarray, rate: int) -> np.ndarray:
    """Scale so that the RMS of the active frames is TARGET_RMS."""
    rms = frame_rms(samples, rate)
    active = _active(rms)
    if not active.any():
        return samples
    level = float(np.sqrt(np.mean(rms[active] ** 2)))
    return samples * (TARGET_RMS / level)


def split_at_pauses(samples: np.ndarray, rate: int, min_s: float, max_s: float) -> list[np.ndarray]:
    """Cut a clip longer than `max_s` into pieces of at most `max_s`, each cut at the quietest
    frame of its window. Pieces are at least `min_s` long where the length allows; a shorter
    tail is returned too, for the joiner to combine with the next clip.
    """
    hop, frame = int(HOP_S * rate), int(FRAME_S * rate)
    lo, hi = int(min_s * rate), int(max_s * rate)
    pieces = []
    rest = samples
    while len(rest) > hi:
        # Prefer a cut that leaves a remainder of at least min_s; else any cut in [min_s, max_s].
        upper = min(hi, len(rest) - lo) if len(rest) - lo >= lo else hi
        rms = frame_rms(rest[: upper + frame], rate)
        first, last = lo // hop, max(lo // hop, (upper - frame) // hop)
        best = first + int(np.argmin(rms[first: last + 1]))
        cut = min(best * hop + frame // 2, hi)
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    return pieces
