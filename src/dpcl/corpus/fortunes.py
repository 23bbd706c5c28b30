"""English sentences for the synthetic voices, from Debian's fortune cookie files.

TTS voices need text; fixed, versioned Debian files keep the corpus reproducible without
shipping text in the repository. Only plain single sentences are kept (letters, spaces and
light punctuation, one final stop): quotations, dialogues, lists and ASCII art would be read
out as noise or run far longer than an utterance. `fortunes` alone (package fortunes-min)
yields 280 such sentences, too few for 400 utterances per voice (params.yaml), so
the collections below (package `fortunes`) are read too: about 2,100 sentences.
"""

from __future__ import annotations

import re
from pathlib import Path

from dpcl.corpus.plan import CorpusError

FORTUNE_DIR = Path("/usr/share/games/fortunes")
# Collections read, in this order; the topical ones likely to read as offensive are left out.
COLLECTIONS = ("fortunes", "miscellaneous", "people", "platitudes", "computers", "work", "science",
               "disclaimer", "wisdom", "zippy", "food", "art", "cookie", "education", "kids", "love",
               "sports", "law", "paradoxum", "goedel", "medicine", "pets")
# 5-14 words at 150 words per minute is about 2-6 s, the utterance length wanted.
MIN_WORDS, MAX_WORDS = 5, 14
_PLAIN_SENTENCE = re.compile(r"^[A-Z][A-Za-z ,;'-]*[a-z][.!?]$")


def parse_fortunes(text: str) -> list[str]:
    """Cookies are separated by lines holding only `%`; wrapped lines are joined."""
    return [" ".join(entry.split()) for entry in re.split(r"^%\s*$", text, flags=re.MULTILINE)]


def load_sentences(folder: Path = FORTUNE_DIR) -> tuple[str, ...]:
    """The distinct plain single sentences of COLLECTIONS, in file order."""
    sentences: dict[str, None] = {}  # ordered set
    for name in COLLECTIONS:
        path = folder / name
        if not path.is_file():
            raise CorpusError(f"sentence file {path} not found: install the Debian package `fortunes`")
        for entry in parse_fortunes(path.read_text(encoding="utf-8", errors="replace")):
            if _PLAIN_SENTENCE.match(entry) and MIN_WORDS <= len(entry.split()) <= MAX_WORDS:
                sentences[entry] = None
    return tuple(sentences)
