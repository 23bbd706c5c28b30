"""espeak-ng voices: English spoken through the formant synthesiser's voice variants.

A variant (`m1`, `f2`, ...) changes pitch, formants and breathiness, enough to act as a
different speaker for separation. The variants and their sex come from espeak-ng's own
listing, so a misspelt variant is an error (espeak-ng itself silently falls back to the
default voice) and the sex is the one the variant file declares.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from dpcl.config import SynthesisConfig
from dpcl.corpus.fortunes import load_sentences
from dpcl.corpus.plan import CorpusError, Sex, SpeakerPlan, safe_id
from dpcl.corpus.tts import TtsClips

# `espeak-ng --voices=variant` rows: Pty, "variant", Age/Gender, VoiceName, File (may hold spaces).
_VARIANT_ROW = re.compile(r"^\s*\d+\s+variant\s+\S*/(?P<sex>\S)\s+\S+\s+!v/(?P<file>.+?)\s*$")


def espeak_variants() -> dict[str, Sex]:
    """Installed voice variants -> sex (M, F or unknown)."""
    if shutil.which("espeak-ng") is None:
        raise CorpusError("source `espeak` needs espeak-ng: install the Debian package `espeak-ng`")
    listing = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    variants: dict[str, Sex] = {}
    for line in listing.splitlines():
        match = _VARIANT_ROW.match(line)
        if match:
            sex = match["sex"]
            variants[match["file"]] = sex if sex in ("M", "F") else "unknown"  # type: ignore[assignment]
    return variants


def plan_espeak(synthesis: SynthesisConfig) -> list[SpeakerPlan]:
    """One speaker per configured variant, e.g. `espeak-m1`."""
    available = espeak_variants()
    unknown = [v for v in synthesis.espeak_voices if v not in available]
    if unknown:
        raise CorpusError(f"synthesis.espeak_voices: unknown espeak-ng variant(s) {unknown}; "
                          f"installed: {', '.join(sorted(available))}")
    sentences = load_sentences()
    plans = []
    for variant in synthesis.espeak_voices:
        speaker = safe_id("espeak", variant)
        command = ("espeak-ng", "-v", f"en+{variant}", "-s", str(synthesis.espeak_speed), "-w", "{wav}", "{text}")
        plans.append(SpeakerPlan(speaker=speaker, source="espeak", language="en", sex=available[variant],
                                 kind="synthetic", group=speaker, audio=TtsClips(command, sentences)))
    return plans
