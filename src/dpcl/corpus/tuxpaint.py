"""Tux Paint stamps (`tuxpaint-stamps-default`): spoken stamp descriptions, one voice per language.

Layout. Every stamp sits in `usr/share/tuxpaint/stamps/<category>/.../<stamp>.png` with its sounds
beside it, told apart only by their names:

- `<stamp>_desc_<locale>.ogg` (pt_BR: `.wav`): the stamp's name spoken in one language, about a
  second each. Nine languages (be, bg, ca, da, el, es, fr, ro, ru) cover nearly every stamp; lt
  (letters), nl (animals), pt_BR and ml only a few. One file is misnamed `..._desc_da.ogg.ogg`.
- `<stamp>_desc.ogg`: the unlocalised (default, i.e. English) description, 66 animals imported
  from Childsplay with their Dutch (`_desc_nl`) and French counterparts.
- `<letter>_<locale>.ogg` under `symbols/alphabets/` and `<digit>_<locale>.ogg` under
  `symbols/math/` (locale `en_GB`, `zh_tw`, ...): letters and digits spoken in about 20 languages,
  recorded years before the descriptions and credited to other people (or to Schoolsplay).
- `<stamp>.ogg` with neither `_desc` nor a locale suffix: the stamp's sound effect (animal calls,
  instruments, a moon-landing radio line, a few German letters of unknown voice). Excluded: a file
  counts only when its name ends in `_desc[_<locale>]`, or in `_<locale>` inside the two symbol
  folders; elsewhere `_xx` endings (`apple_red`, `xing_ped`) are effect names, not locales.

Speakers. A language's `_desc` files are one speaker `tuxpaint-<lang>`, its letter/digit files a
second one `tuxpaint-<lang>-symbols`: the changelog (usr/share/doc/.../changelog.gz) credits the two
sets to different people (Spanish descriptions: Estefanía Ortiz; Spanish digits: Gabriel Gazzan's
son). Both of a language, and sibling locales (`en`/`en_GB`, `pt`/`pt_BR`, `nb`/`nn`), share one
group `volunteers-<language>` with the KDE games' recordings of that language
(`plan.volunteer_group`), since one volunteer may have recorded several of them.

Identity. `CREDITS` lists the sets whose recordings the changelog attributes to one named person:
they are "known". Everything else is "uncertain" (Schoolsplay or Childsplay imports, "the Greek
Linux i18n Team", "various Brazilian school children"), and so is French: the changelog credits
French description sounds to both Jacques Chion and PaulK, and their pitch shows at least two
voices (alphabet ~165 Hz, most stamps ~130 Hz, Childsplay animals ~230 Hz). Sex is given only
where the credit itself says it ("his son", "daughter"); a first name is not evidence.

Duplicates. 1,043 of the 7,737 speech files are byte-identical copies (mostly letters shared by
the outlined and filled alphabets, always within one locale); `unique_files` (sha1) keeps each
content once, so a voice is not counted twice.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from pathlib import Path
from typing import Literal

from dpcl.corpus.debian import debian_package_root
from dpcl.corpus.plan import CorpusError, FileClips, Sex, SpeakerPlan, safe_id, unique_files, volunteer_group

PACKAGE = "tuxpaint-stamps-default"
SOURCE = "tuxpaint"
STAMPS_DIR = "usr/share/tuxpaint/stamps"
AUDIO_SUFFIXES = (".ogg", ".wav")
# Tux Paint plays `<stamp>_desc.ogg` when no localised file exists; the stamps' own default
# language (their .txt names, Childsplay's originals) is English.
DEFAULT_LOCALE = "en"
# Folders of spoken letter and digit stamps, where a bare `_<locale>` ending names a language.
SYMBOL_DIRS = ("symbols/alphabets/", "symbols/math/")

ClipKind = Literal["description", "symbols"]

_LOCALE = r"[a-z]{2,3}(?:_[A-Za-z]{2})?"
_DESC = re.compile(rf"_desc(?:_(?P<locale>{_LOCALE}))?$")
_SYMBOL = re.compile(rf"_(?P<locale>{_LOCALE})$")


@dataclasses.dataclass(frozen=True)
class Credit:
    """The one person the changelog names as the voice of a set, and the sex it states (if any)."""

    person: str
    sex: Sex = "unknown"


# (locale, clip kind) -> credit, read from the 2022.06.04 changelog; sets not listed are uncertain.
CREDITS: dict[tuple[str, ClipKind], Credit] = {
    ("be", "description"): Credit("Kseniya Buraya"),
    ("bg", "description"): Credit("Krasimir Petkov"),
    ("ca", "description"): Credit("Pere Pujal i Carabantes"),
    ("da", "description"): Credit("Joe Dalton"),
    ("el", "description"): Credit("Kiriaki Serafeim"),
    ("es", "description"): Credit("Estefanía Ortiz"),
    ("ro", "description"): Credit("Tabbytha"),
    ("ru", "description"): Credit("Edwin Veber"),
    # Lithuanian letters and digits: changelog "Lithuanian: Andrius, Jurkus", and the files' Vorbis
    # ARTIST tag says "Andrius Jurkus".
    ("lt", "description"): Credit("Andrius Jurkus"),
    ("lt", "symbols"): Credit("Andrius Jurkus"),
    ("en_GB", "symbols"): Credit("John Arundel"),
    ("es", "symbols"): Credit("son of Gabriel Gazzan", sex="M"),
    ("fr", "symbols"): Credit("Jacques Chion"),
    ("ja", "symbols"): Credit("TOYAMA Shin-ichi"),
    ("ko", "symbols"): Credit("Sohyun Iris Lee"),
    ("nl", "symbols"): Credit("Sanne Stams", sex="F"),
}


@dataclasses.dataclass(frozen=True)
class ClipTag:
    """What a file's name says: the locale it is spoken in, and which recording set it belongs to."""

    locale: str
    kind: ClipKind


def _strip_audio_suffixes(name: str) -> str | None:
    """`x_desc_da.ogg.ogg` -> `x_desc_da`; None when the name is not a sound file."""
    if not name.lower().endswith(AUDIO_SUFFIXES):
        return None
    while name.lower().endswith(AUDIO_SUFFIXES):
        name = name[: name.rindex(".")]
    return name


def parse_clip(relative: str) -> ClipTag | None:
    """The locale and set of a speech file from its path under the stamps folder; None for effects.

    `animals/birds/owl_desc_fr.ogg` -> (fr, description); `symbols/math/3_zh_tw.ogg` ->
    (zh_tw, symbols); `animals/birds/owl.ogg` (the owl's call) -> None.
    """
    stem = _strip_audio_suffixes(relative.rsplit("/", 1)[-1])
    if stem is None:
        return None
    if match := _DESC.search(stem):
        return ClipTag(match["locale"] or DEFAULT_LOCALE, "description")
    if relative.startswith(SYMBOL_DIRS) and (match := _SYMBOL.search(stem)):
        return ClipTag(match["locale"], "symbols")
    return None


def language_tag(locale: str) -> str:
    """Locale -> BCP 47-like tag: `pt_BR` -> `pt-BR`, `zh_tw` -> `zh-TW`."""
    language, _, region = locale.partition("_")
    return safe_id(language, region.upper())


def language_group(locale: str) -> str:
    """The speaker group of a locale's sets: every volunteer voice of its language, KDE's too."""
    return volunteer_group(locale)


def speaker_plan(tag: ClipTag, paths: list[Path]) -> SpeakerPlan:
    """One speaker for one (locale, set); known only when the changelog names its voice."""
    credit = CREDITS.get((tag.locale, tag.kind))
    suffix = "symbols" if tag.kind == "symbols" else ""
    return SpeakerPlan(speaker=safe_id(SOURCE, language_tag(tag.locale), suffix), source=SOURCE,
                       language=language_tag(tag.locale), sex=credit.sex if credit else "unknown",
                       kind="real", group=language_group(tag.locale),
                       audio=FileClips(tuple(str(p) for p in paths)),
                       identity="known" if credit else "uncertain")


def plan_tuxpaint_tree(root: Path) -> list[SpeakerPlan]:
    """Speakers of an unpacked package tree (the folder holding `usr/`), sorted by id."""
    stamps = root / STAMPS_DIR
    tags = {path: tag for path in stamps.rglob("*") if path.is_file()
            and (tag := parse_clip(path.relative_to(stamps).as_posix())) is not None}
    if not tags:
        raise CorpusError(f"no spoken stamp descriptions (*_desc*.ogg/.wav) under {stamps}: "
                          f"is {root} an unpacked {PACKAGE}? The package layout may have changed")
    by_tag: dict[ClipTag, list[Path]] = defaultdict(list)
    for path in unique_files(list(tags)):
        by_tag[tags[path]].append(path)
    plans = [speaker_plan(tag, paths) for tag, paths in by_tag.items()]
    return sorted(plans, key=lambda plan: plan.speaker)


def plan_tuxpaint(download_dir: str) -> list[SpeakerPlan]:
    """Speakers of the pinned package, downloading and unpacking it when needed."""
    return plan_tuxpaint_tree(debian_package_root(PACKAGE, download_dir))
