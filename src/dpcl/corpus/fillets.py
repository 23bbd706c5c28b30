"""Fish Fillets NG voice lines (Czech and Dutch dubs): one speaker per dub and role.

Lines live in `usr/share/games/fillets-ng/sound/<level>/<lang>/` and are named
`<level-abbreviation>-<role>-<word>.ogg` (for example `vit-m-hlava.ogg`) or, in a few levels,
`<role>-<word>.ogg` (`fdto` alone: `<word>-<role>.ogg`). Roles `m` (Czech "malá", the small
fish) and `v` ("velká", the big fish) carry about 37 minutes each per dub. The minor roles (a level's characters, numbered vikings, ...) are voiced by
uncredited actors who may double the main roles, so they are off by default; when kept, the
whole dub shares one speaker group so that no actor can straddle train and test.
Sex is 'unknown': the cast is not credited in the package.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from dpcl.corpus.debian import debian_package_root
from dpcl.corpus.plan import CorpusError, FileClips, SpeakerPlan, safe_id, unique_files

MAIN_ROLES = ("m", "v")
_SOUND_DIR = "usr/share/games/fillets-ng/sound"
# Levels that name their lines `<word>-<role>.ogg` (`fdto/cs/agenti-m.ogg`).
ROLE_LAST_LEVELS = frozenset({"fdto"})
# Lines the pinned packages ship with zero samples (found by reading every file once).
EMPTY_LINES = frozenset({"elevator1/nl/zd1-m-cesta.ogg", "gems/nl/zav-v-sto.ogg"})


def parse_role(path: Path) -> str | None:
    """The speaking role of a line from its path `<level>/<lang>/<name>.ogg`; None when unknown."""
    parts = path.stem.split("-")
    if len(parts) == 3:  # <level-abbreviation>-<role>-<word>
        return parts[1]
    if len(parts) == 2:  # <role>-<word>, or <word>-<role> in the levels of ROLE_LAST_LEVELS
        return parts[1] if path.parent.parent.name in ROLE_LAST_LEVELS else parts[0]
    return None  # `help12.ogg`, `rand-3-3-0.ogg`: narrator and lines of unclear speaker


def plan_fillets(language: str, download_dir: str, minor_roles: bool) -> list[SpeakerPlan]:
    """Speakers of one dub (`cs` or `nl`), downloading its Debian package when needed."""
    source = f"fillets_{language}"
    root = debian_package_root(f"fillets-ng-data-{language}", download_dir) / _SOUND_DIR
    lines = unique_files([p for p in root.glob(f"**/{language}/*.ogg")
                          if p.relative_to(root).as_posix() not in EMPTY_LINES])
    if not lines:
        raise CorpusError(f"no {language} voice lines (*.ogg) under {root}: the package layout changed")
    by_role: dict[str, list[Path]] = defaultdict(list)
    for path in lines:
        role = parse_role(path)
        if role in MAIN_ROLES:
            by_role[role].append(path)
        elif role is not None and minor_roles:
            level = path.parent.parent.name
            by_role[safe_id(level, role)].append(path)
    dub = safe_id("fillets", language)
    plans = []
    for role, paths in sorted(by_role.items()):
        speaker = safe_id(dub, role)
        plans.append(SpeakerPlan(speaker=speaker, source=source, language=language, sex="unknown",
                                 kind="real", group=dub if minor_roles else speaker,
                                 audio=FileClips(tuple(str(p) for p in paths))))
    return plans
