"""KDE education games: klettres (letters, syllables) and ktuberling (single words).

Both ship one folder of recordings per language, each made by a volunteer (sometimes a
parent with a child), so a folder is taken as one speaker. Clips are far shorter than an
utterance; the assembler joins several of them with short pauses. The same volunteer may
have recorded a language for both games (and for Tux Paint), so every volunteer folder of one
language (`en` and `en_GB` included) shares one speaker group and never straddles train and test.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from dpcl.corpus.debian import debian_package_root
from dpcl.corpus.plan import CorpusError, FileClips, SpeakerPlan, safe_id, unique_files, volunteer_group

AUDIO_SUFFIXES = (".ogg", ".wav", ".opus")
# Where each game keeps its language folders inside its Debian package.
GAMES = {
    "klettres": ("klettres-data", "usr/share/klettres"),
    "ktuberling": ("ktuberling-data", "usr/share/ktuberling/sounds"),
}


def language_tag(folder: str) -> str:
    """KDE locale folder -> BCP 47-like tag of [A-Za-z0-9-]: `pt_BR` -> `pt-BR`, `sr@latin` -> `sr-latin`."""
    return safe_id(*re.split(r"[_@]", folder))


def language_group(folder: str) -> str:
    """Speaker group of a language folder: its base language's volunteers, shared by both games
    and by Tux Paint (`plan.volunteer_group`)."""
    return volunteer_group(folder)


def plan_kde_game(game: str, download_dir: str) -> list[SpeakerPlan]:
    """One speaker per language folder that holds audio; byte-identical copies count once."""
    package, subdir = GAMES[game]
    root = debian_package_root(package, download_dir) / subdir
    files = [p for p in root.rglob("*") if p.suffix in AUDIO_SUFFIXES and p.is_file()]
    by_folder: dict[str, list[Path]] = defaultdict(list)
    for path in unique_files(files):
        parts = path.relative_to(root).parts
        if len(parts) > 1:  # recordings sit in <language>/ or <language>/<set>/
            by_folder[parts[0]].append(path)
    if not by_folder:
        raise CorpusError(f"no recordings ({', '.join(AUDIO_SUFFIXES)}) under {root}: the package layout changed")
    return [SpeakerPlan(speaker=safe_id(game, language_tag(folder)), source=game, language=language_tag(folder),
                        sex="unknown", kind="real", group=language_group(folder),
                        audio=FileClips(tuple(str(p) for p in paths)))
            for folder, paths in sorted(by_folder.items())]
