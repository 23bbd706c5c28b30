"""Render one planned speaker: decode or synthesise clips, assemble utterances, write wavs.

One speaker is the unit of parallel work: it touches only its own folder and draws from its
own generator (seeded by the corpus seed and the speaker id), so the result is the same
whichever worker renders it and in whatever order.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from dpcl.audio import peak_normalise, write_wav
from dpcl.corpus.assemble import clean_pieces, join_pieces
from dpcl.corpus.plan import SpeakerPlan, stable_rng

# Every utterance is scaled to this peak: float resampling of loud sources (Fish Fillets)
# overshoots full scale, and the int16 write must never clip.
PEAK = 0.9


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """The part of CorpusConfig a worker needs (small and picklable)."""

    rate: int
    min_s: float
    max_s: float
    max_utterances: int
    min_utterances: int
    seed: int


@dataclasses.dataclass(frozen=True)
class RenderResult:
    """Rows for the manifest (without split), or why the speaker was dropped."""

    speaker: str
    rows: tuple[dict, ...]
    dropped: str | None
    skipped: dict[str, int]


def render_speaker(plan: SpeakerPlan, settings: RenderSettings, out_dir: Path) -> RenderResult:
    """Write `out_dir/<speaker>/<speaker>-NNNN.wav`; nothing when the speaker has too little audio.

    Utterances are written as they come (a 400-utterance speaker at 16 kHz would otherwise
    hold some 200 MB per worker) and the folder is removed again if the speaker is dropped.
    """
    rng = stable_rng(settings.seed, "utterances", plan.speaker)
    skipped: dict[str, int] = {}
    pieces = clean_pieces(plan.audio.clips(rng), settings.rate, settings.min_s, settings.max_s, skipped)
    rows = []
    for index, samples in enumerate(join_pieces(pieces, settings.rate, settings.min_s, settings.max_s, rng)):
        utterance = f"{plan.speaker}-{index:04d}"
        relative = Path(plan.speaker) / f"{utterance}.wav"
        write_wav(out_dir / relative, peak_normalise(samples, PEAK), settings.rate)
        rows.append({"speaker": plan.speaker, "utterance": utterance, "path": relative.as_posix(),
                     "duration": len(samples) / settings.rate, "source": plan.source,
                     "language": plan.language, "sex": plan.sex, "kind": plan.kind,
                     "group": plan.group, "identity": plan.identity})
        if len(rows) == settings.max_utterances:
            break
    if len(rows) < settings.min_utterances:
        shutil.rmtree(out_dir / plan.speaker, ignore_errors=True)
        reason = (f"only {len(rows)} utterances of {settings.min_s:g}-{settings.max_s:g} s, "
                  f"fewer than min_utterances_per_speaker={settings.min_utterances}")
        return RenderResult(plan.speaker, (), reason, skipped)
    return RenderResult(plan.speaker, tuple(rows), None, skipped)
