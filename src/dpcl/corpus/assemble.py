"""Turn one speaker's clips into utterances of `min_s`..`max_s` seconds.

Sources disagree wildly in clip length: a klettres letter lasts half a second, a Fish
Fillets line up to twenty, a LibriSpeech utterance fifteen. WSJ0-2mix-style mixing wants
utterances of a few seconds, so every source goes through the same path: clean each clip
(trim, level, cut at pauses), then join consecutive pieces with short pauses until a
length target drawn uniformly in [min_s, max_s] is reached. The drawn target spreads the
lengths as natural read speech does, instead of piling every utterance up at `max_s`.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from dpcl.audio import resample
from dpcl.corpus.clips import normalise_level, split_at_pauses, trim_silence

PAUSE_S = (0.1, 0.3)


def clean_pieces(clips: Iterable[tuple[np.ndarray, int]], rate: int, min_s: float, max_s: float,
                 skipped: dict[str, int]) -> Iterator[np.ndarray]:
    """Trim, resample, level and cut each clip; count what was dropped in `skipped`.

    Clips recorded below `rate` are dropped rather than upsampled: an empty upper band is a
    give-away cue for the separator. Trimming comes before resampling because the polyphase
    filter is the costly step and KDE clips are mostly silence.
    """
    for samples, rate_in in clips:
        if rate_in < rate:
            skipped["below_rate"] = skipped.get("below_rate", 0) + 1
            continue
        clip = trim_silence(samples, rate_in)
        if len(clip) == 0:
            skipped["silent"] = skipped.get("silent", 0) + 1
            continue
        clip = resample(clip, rate_in, rate)
        for piece in split_at_pauses(normalise_level(clip, rate), rate, min_s, max_s):
            piece = trim_silence(piece, rate)  # a cut lands in a pause: drop its silent edges
            if len(piece):
                yield piece


def join_pieces(pieces: Iterable[np.ndarray], rate: int, min_s: float, max_s: float,
                rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Join consecutive pieces (each at most `max_s`) into utterances of min_s..max_s seconds.

    A piece that would push the utterance past `max_s` starts the next one; an unfinished
    utterance shorter than `min_s` at that point is dropped (a fragment is not an utterance).
    """
    lo, hi = int(round(min_s * rate)), int(round(max_s * rate))
    parts: list[np.ndarray] = []
    length = 0
    target = rng.integers(lo, hi + 1)
    for piece in pieces:
        if len(piece) > hi:  # split_at_pauses never yields these; guard the contract anyway
            continue
        pause = np.zeros(int(rng.uniform(*PAUSE_S) * rate)) if parts else piece[:0]
        if length + len(pause) + len(piece) > hi:
            if length >= lo:
                yield np.concatenate(parts)
            parts, length, target = [], 0, rng.integers(lo, hi + 1)
            pause = piece[:0]
        parts += [pause, piece]
        length += len(pause) + len(piece)
        if length >= target:
            yield np.concatenate(parts)
            parts, length, target = [], 0, rng.integers(lo, hi + 1)
    if length >= lo:
        yield np.concatenate(parts)
