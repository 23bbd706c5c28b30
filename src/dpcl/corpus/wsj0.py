"""WSJ0 (LDC93S6A) speakers, for users who own it: `<wsj0_root>/wsj0/<subset>/<spk>/<utt>.wv1`.

WSJ0 ships NIST SPHERE files, most of them shorten-compressed. libsndfile reads SPHERE PCM
but not shorten, and would fail with an unhelpful message, so the header's `sample_coding`
is checked first and the user is told to convert with sph2pipe. Converted copies (`.wav` in
the same layout, beside or instead of the `.wv1`) are preferred when present. Only the
first-channel microphone (`.wv1`) is used, as in WSJ0-2mix.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np

from dpcl.audio import read_audio
from dpcl.corpus.plan import CorpusError, SpeakerPlan, safe_id

# The subsets WSJ0-2mix draws from (train; development and evaluation for its test speakers).
SUBSETS = ("si_tr_s", "si_dt_05", "si_et_05")
SPH2PIPE_ADVICE = ("convert WSJ0 to wav with sph2pipe (LDC's SPHERE tool; Kaldi's tools/ builds it), e.g. "
                   "`find WSJ0_ROOT/wsj0 -name '*.wv1' | while read f; "
                   "do sph2pipe -f wav \"$f\" \"${f%.wv1}.wav\"; done`; "
                   "the corpus stage reads the .wav copies in the same layout")


def sphere_header(path: Path) -> dict[str, str]:
    """Fields of a NIST SPHERE header (`NIST_1A`, its size, `name -type value` lines, `end_head`)."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    lines = head.decode("ascii", errors="replace").splitlines()
    if not lines or lines[0].strip() != "NIST_1A":
        raise CorpusError(f"{path} is not a NIST SPHERE file (no NIST_1A header); expected a WSJ0 .wv1")
    fields = {}
    for line in lines[2:]:
        if line.strip() == "end_head":
            break
        parts = line.split(None, 2)
        if len(parts) == 3:
            fields[parts[0]] = parts[2].strip()
    return fields


def check_sphere_readable(path: Path) -> None:
    """Raise with the sph2pipe advice when the samples are shorten-compressed."""
    coding = sphere_header(path).get("sample_coding", "pcm")
    if "shorten" in coding:
        raise CorpusError(f"{path} is shorten-compressed SPHERE (sample_coding {coding!r}), which "
                          f"libsndfile cannot decode: {SPH2PIPE_ADVICE}")


@dataclasses.dataclass(frozen=True)
class Wsj0Clips:
    """WSJ0 utterances; SPHERE files are checked before libsndfile sees them."""

    paths: tuple[str, ...]

    def clips(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, int]]:
        for index in rng.permutation(len(self.paths)):
            path = Path(self.paths[index])
            if path.suffix.lower() != ".wav":
                check_sphere_readable(path)
            yield read_audio(path)


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
                check_sphere_readable(path)  # fail now, not after minutes of decoding
        speaker = safe_id("wsj0", spk)
        plans.append(SpeakerPlan(speaker=speaker, source="wsj0", language="en", sex="unknown", kind="real",
                                 group=speaker, audio=Wsj0Clips(tuple(str(p) for p in sorted(files.values())))))
    if not plans:
        raise CorpusError(f"no .wv1 or .wav utterances under {', '.join(map(str, subsets))}")
    return plans
