"""flite voices: CMU's small unit-selection / diphone synthesiser with its built-in voices.

flite falls back to its default voice for an unknown name without complaint, so names are
checked against `flite -lv`. Sexes are those of the CMU ARCTIC / diphone speakers behind the
voices. `kal` is an 8 kHz diphone voice with a 16 kHz twin (`kal16`): the corpus uses the
twin when it is built at 16 kHz, so the voice is not dropped as band-limited.
"""

from __future__ import annotations

import shutil
import subprocess

from dpcl.config import SynthesisConfig
from dpcl.corpus.fortunes import load_sentences
from dpcl.corpus.plan import CorpusError, Sex, SpeakerPlan, safe_id
from dpcl.corpus.tts import TtsClips

VOICE_SEX: dict[str, Sex] = {"awb": "M", "rms": "M", "kal": "M", "kal16": "M", "slt": "F"}
# Voice rendered instead at a corpus rate above the voice's own.
WIDEBAND_TWIN = {"kal": "kal16"}


def flite_voices() -> set[str]:
    """Voices compiled into the installed flite."""
    if shutil.which("flite") is None:
        raise CorpusError("source `flite` needs flite: install the Debian package `flite`")
    listing = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=True).stdout
    return set(listing.split(":", 1)[-1].split())


def plan_flite(synthesis: SynthesisConfig, sample_rate: int) -> list[SpeakerPlan]:
    """One speaker per configured voice, e.g. `flite-awb`."""
    usable = flite_voices() & set(VOICE_SEX)
    unknown = [v for v in synthesis.flite_voices if v not in usable]
    if unknown:
        raise CorpusError(f"synthesis.flite_voices: unknown flite voice(s) {unknown}; "
                          f"available: {', '.join(sorted(usable))}")
    sentences = load_sentences()
    plans = []
    for voice in synthesis.flite_voices:
        engine_voice = WIDEBAND_TWIN.get(voice, voice) if sample_rate > 8000 else voice
        speaker = safe_id("flite", voice)
        command = ("flite", "-voice", engine_voice, "-t", "{text}", "-o", "{wav}")
        plans.append(SpeakerPlan(speaker=speaker, source="flite", language="en", sex=VOICE_SEX[voice],
                                 kind="synthetic", group=speaker, audio=TtsClips(command, sentences)))
    return plans
