"""A user's folder-per-speaker corpus: `<root>/<speaker>/**/*.{wav,flac,ogg}`.

This covers LibriSpeech (`<speaker>/<chapter>/<utterance>.flac`), VCTK-like trees and any
home-made recordings. Speaker sex is taken from a LibriSpeech `SPEAKERS.TXT` in the root or
its parent when there is one (LibriSpeech keeps it above `train-clean-100/`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from dpcl.corpus.plan import CorpusError, FileClips, Sex, SpeakerPlan, safe_id

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def read_speaker_sexes(root: Path) -> dict[str, Sex]:
    """LibriSpeech `SPEAKERS.TXT` rows `ID | SEX | SUBSET | MINUTES | NAME` -> {ID: sex}."""
    for candidate in (root / "SPEAKERS.TXT", root.parent / "SPEAKERS.TXT"):
        if candidate.is_file():
            sexes: dict[str, Sex] = {}
            for line in candidate.read_text(encoding="utf-8", errors="replace").splitlines():
                fields = [f.strip() for f in line.split("|")]
                if not line.startswith(";") and len(fields) >= 2 and fields[1] in ("M", "F"):
                    sexes[fields[0]] = fields[1]  # type: ignore[assignment]
            return sexes
    return {}


def plan_folder(folder_root: str) -> list[SpeakerPlan]:
    """One speaker per sub-folder of `folder_root` that holds audio (empty ones are skipped)."""
    root = Path(folder_root)
    if not root.is_dir():
        raise CorpusError(f"folder_root {root} is not a folder: expected <root>/<speaker>/**/*.wav|flac|ogg "
                          f"(a LibriSpeech subset such as LibriSpeech/train-clean-100 works)")
    sexes = read_speaker_sexes(root)
    plans: dict[str, SpeakerPlan] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(str(f) for f in folder.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file())
        if not files:
            log.warning("folder corpus: skipping %s: no %s files in it", folder, "/".join(AUDIO_SUFFIXES))
            continue
        speaker = safe_id("folder", folder.name)
        if speaker in plans:
            raise CorpusError(f"speaker folders in {root} map to one id {speaker!r} (ids keep only "
                              f"[A-Za-z0-9-]); rename one of them")
        plans[speaker] = SpeakerPlan(speaker=speaker, source="folder", language="unknown",
                                     sex=sexes.get(folder.name, "unknown"), kind="real", group=speaker,
                                     audio=FileClips(tuple(files)))
    if not plans:
        raise CorpusError(f"folder_root {root} has no speaker folders with audio: expected "
                          f"<root>/<speaker>/**/*.wav|flac|ogg")
    return list(plans.values())
