"""WSJ0 (LDC93S6A) speakers, for users who own it: `<wsj0_root>/wsj0/<subset>/<spk>/<utt>.wv1`.

WSJ0 ships NIST SPHERE files, most of them shorten-compressed; `dpcl.audio.read_audio` reads
them directly (the header parsed there, the shorten body decoded by FFmpeg through PyAV). Every
header is checked when the corpus is planned, so a damaged one or a coding not read here stops
the stage before any decoding. Copies as `.wav` in the same layout, beside or instead of the
`.wv1`, win when present. Only the first-channel microphone (`.wv1`) is used, as in WSJ0-2mix.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np

from dpcl.audio import read_audio, read_sphere_header
from dpcl.corpus.plan import CorpusError, SpeakerPlan, safe_id

# The subsets WSJ0-2mix draws from (train; development and evaluation for its test speakers).
SUBSETS = ("si_tr_s", "si_dt_05", "si_et_05")

@dataclasses.dataclass(frozen=True)
class Wsj0Clips:
    """WSJ0 utterances: raw `.wv1` (NIST SPHERE) or `.wav` copies, all read by `read_audio`."""

    paths: tuple[str, ...]

    def clips(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, int]]:
        for index in rng.permutation(len(self.paths)):
            yield read_audio(Path(self.paths[index]))


def plan_wsj0(wsj0_root: str) -> list[SpeakerPlan]:
    """One speaker per WSJ0 speaker folder across SUBSETS, e.g. `wsj0-011`."""
    base = Path(wsj0_root) / "wsj0"
    subsets = [base / s for s in SUBSETS if (base / s).is_dir()]
    if not subsets:
        raise CorpusError(f"wsj0_root {wsj0_root}: expected {base}/{{{','.join(SUBSETS)}}}/<speaker>/<utt>.wv1 "
                          f"(wsj0_root is the folder that holds wsj0/)")
    utterances: dict[str, dict[str, Path]] = defaultdict(dict)
    for subset in subsets:
        for path in sorted(subset.glob("*/*")):
            suffix = path.suffix.lower()
            chosen = utterances[path.parent.name]
            if suffix == ".wav" or (suffix == ".wv1" and path.stem not in chosen):
                chosen[path.stem] = path  # sorted order puts .wav before .wv1: a converted copy wins
    plans = []
    for spk, files in sorted(utterances.items()):
        if not files:
            continue
        for path in files.values():
            if path.suffix.lower() == ".wv1":
                read_sphere_header(path)  # a bad header or an unread coding fails now, not after minutes of decoding
        speaker = safe_id("wsj0", spk)
        plans.append(SpeakerPlan(speaker=speaker, source="wsj0", language="en", sex="unknown", kind="real",
                                 group=speaker, audio=Wsj0Clips(tuple(str(p) for p in sorted(files.values())))))
    if not plans:
        raise CorpusError(f"no .wv1 or .wav utterances under {', '.join(map(str, subsets))}")
    return plans
