"""codec2-examples: the Codec 2 project's test recordings, one speaker per voice.

Layout: `usr/share/codec2/raw/*.raw` (headerless 16-bit little-endian mono, 8 kHz: Codec 2's
native format) and `usr/share/codec2/wav/*.wav`; the package's docs say nothing about the files,
so every one was measured (durations, F0, which file contains which). Most wavs are the raw file
of the same name with a header (identical samples, `cross.wav` in mu-law): a stem counts once,
its raw file read. Besides speech the folders hold modem signals, test tones, codec outputs,
excerpts and a concatenation: `EXCLUDED` lists each with why.

Voices: radio amateurs named by call sign (g3plx, ve9qrp, vk5qi) and one named person (kristoff)
have identity "known" and a group each. The other voices are unnamed test speakers (`forig` and
`morig`, "female/male original", `mmt1`, `big_dog`, `cross`, `cq_ref`, the 16 kHz
`speech_orig_16k.wav`, the four of `hts.raw`); any two of one sex may be one person, so they share
a group per sex (from the name where it says, else from median F0: the unnamed males 83-115 Hz,
the females 180-215 Hz) and are "uncertain".
`hts.raw` (24 s) is four speakers in four 6-s blocks: `hts1.raw` and `hts2.raw` are exactly its
first and second 6 s, every 6-s boundary falls in silence (RMS about 20 of 32768), and the blocks'
median F0 alternate 107, 182, 98, 211 Hz (male, female, male, female). It is split there; a file
of another length is refused rather than cut at guessed boundaries.
Language: English throughout as far as names tell (kristoff, a Belgian amateur's 5 s, unheard).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from dpcl.audio import AudioError, read_audio
from dpcl.corpus.debian import debian_package_root
from dpcl.corpus.plan import CorpusError, Identity, Sex, SpeakerPlan, safe_id

PACKAGE = "codec2-examples"
SOURCE = "codec2"
RAW_RATE = 8000
_DATA_DIR = "usr/share/codec2"
# Files (relative to usr/share/codec2) that are not one voice's speech.
EXCLUDED = frozenset({
    "raw/700d_end_over.raw",  # FreeDV 700D modem signal (an over's end), not speech
    "wav/david4.wav",  # modem signal
    "wav/vk2tpm_004.wav",  # modem signal
    "raw/test_datac1_006.raw",  # FreeDV datac1 data-modem frames
    "raw/testframes_700d.raw",  # 700D modem test frames
    "raw/sine1k_2Hz_spread.raw",  # 1 kHz test tone through a fading-channel model
    "raw/sine1k_2ms_delay_2Hz_spread.raw",  # the same with multipath delay
    "wav/all.wav",  # concatenation of hts, morig, forig, ve9qrp, cq_ref, kristoff, vk5qi (found in it)
    "raw/f2400.raw", "wav/f2400.wav",  # forig after Codec 2 at 2400 bit/s: a codec output
    "raw/m2400.raw", "wav/m2400.wav",  # morig after Codec 2 at 2400 bit/s
    "raw/hts1.raw", "raw/hts2.raw",  # exactly hts.raw's first and second 6 s
    "raw/hts1a.raw", "raw/hts2a.raw", "wav/hts1a.wav", "wav/hts2a.wav",  # first 3 s of hts1, hts2
    "raw/ve9qrp_10s.raw",  # the first 10 s of ve9qrp.raw
    "wav/wia_16kHz.wav",  # 1.0 s in all, of an unknown source: too little to be a speaker
})
HTS_STEM = "hts"
HTS_BLOCK = 6 * RAW_RATE  # samples per speaker block of hts.raw
HTS_SEXES: tuple[Sex, ...] = ("M", "F", "M", "F")


class Voice(NamedTuple):
    identity: Identity
    sex: Sex
    group: str  # speakers that may be one person share it


_UNNAMED_M = Voice("uncertain", "unknown", "codec2-unnamed-m")
_UNNAMED_F = Voice("uncertain", "unknown", "codec2-unnamed-f")
# Every speech file by stem; a file in neither this table nor EXCLUDED stops planning.
VOICES = {
    "g3plx": Voice("known", "unknown", "codec2-g3plx"),
    "ve9qrp": Voice("known", "unknown", "codec2-ve9qrp"),
    "vk5qi": Voice("known", "unknown", "codec2-vk5qi"),
    "kristoff": Voice("known", "unknown", "codec2-kristoff"),
    "forig": Voice("uncertain", "F", _UNNAMED_F.group),
    "morig": Voice("uncertain", "M", _UNNAMED_M.group),
    "mmt1": _UNNAMED_M, "big_dog": _UNNAMED_M, "cross": _UNNAMED_M,
    "cq_ref": _UNNAMED_M,  # F0 near ve9qrp's, but no containment or name ties them
    "speech_orig_16k": _UNNAMED_F,
}


@dataclasses.dataclass(frozen=True)
class Segment:
    """Samples `start:stop` of one file (`stop` None: to the end)."""

    path: str
    start: int = 0
    stop: int | None = None


def read_raw_s16le(path: str | Path) -> tuple[np.ndarray, int]:
    """A headerless 16-bit little-endian mono file as float64 in [-1, 1) at 8 kHz."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) % 2:
        raise CorpusError(f"{path}: {len(data)} bytes, odd: not 16-bit samples (truncated?)")
    if not data:
        raise CorpusError(f"{path} holds no samples")
    return np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0, RAW_RATE


def read_codec2_file(path: str | Path) -> tuple[np.ndarray, int]:
    """A `.raw` (s16le, 8 kHz) or any sound file soundfile reads (`.wav`), as mono float64."""
    if Path(path).suffix == ".raw":
        return read_raw_s16le(path)
    try:
        return read_audio(path)
    except AudioError as error:
        raise CorpusError(str(error)) from None


@dataclasses.dataclass(frozen=True)
class Codec2Clips:
    """One voice's recordings (whole files or blocks of one), read in a seeded random order."""

    segments: tuple[Segment, ...]

    def clips(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, int]]:
        for index in rng.permutation(len(self.segments)):
            segment = self.segments[index]
            samples, rate = read_codec2_file(segment.path)
            yield samples[segment.start:segment.stop], rate


def voice_files(data_dir: Path) -> dict[str, Path]:
    """Stem -> the file to read: EXCLUDED dropped, a raw file preferred over its wav twin."""
    chosen: dict[str, Path] = {}
    for path in sorted(data_dir.glob("raw/*")) + sorted(data_dir.glob("wav/*")):
        relative = path.relative_to(data_dir).as_posix()
        if path.is_file() and path.suffix in (".raw", ".wav") and relative not in EXCLUDED:
            chosen.setdefault(path.stem, path)
    return chosen


def hts_plans(path: Path) -> list[SpeakerPlan]:
    """The four speakers of `hts.raw`, one per 6-s block."""
    samples = path.stat().st_size // 2
    if samples != len(HTS_SEXES) * HTS_BLOCK:
        raise CorpusError(f"{path} holds {samples} samples, expected {len(HTS_SEXES) * HTS_BLOCK} (four 6-s "
                          f"speaker blocks): the file changed, so its speaker boundaries are unknown")
    return [SpeakerPlan(speaker=safe_id(SOURCE, HTS_STEM, str(index + 1)), source=SOURCE, language="en",
                        sex=sex, kind="real", identity="uncertain",
                        group=_UNNAMED_M.group if sex == "M" else _UNNAMED_F.group,
                        audio=Codec2Clips((Segment(str(path), index * HTS_BLOCK, (index + 1) * HTS_BLOCK),)))
            for index, sex in enumerate(HTS_SEXES)]


def plan_codec2_tree(root: Path) -> list[SpeakerPlan]:
    """Speakers of the package unpacked at `root` (the tree holding `usr/`)."""
    data_dir = Path(root) / _DATA_DIR
    files = voice_files(data_dir)
    if not files:
        raise CorpusError(f"no recordings under {data_dir}/raw or /wav: the package layout changed")
    unknown = sorted(set(files) - set(VOICES) - {HTS_STEM})
    if unknown:
        raise CorpusError(f"codec2-examples files {unknown} are neither a known voice nor excluded: "
                          f"check what they hold and add them to VOICES or EXCLUDED in {__name__}")
    plans = hts_plans(files[HTS_STEM]) if HTS_STEM in files else []
    for stem, path in sorted(files.items()):
        if stem == HTS_STEM:
            continue
        voice = VOICES[stem]
        plans.append(SpeakerPlan(speaker=safe_id(SOURCE, stem), source=SOURCE, language="en", sex=voice.sex,
                                 kind="real", group=voice.group, identity=voice.identity,
                                 audio=Codec2Clips((Segment(str(path)),))))
    return sorted(plans, key=lambda plan: plan.speaker)


def plan_codec2(download_dir: str) -> list[SpeakerPlan]:
    """Speakers of codec2-examples, downloading the Debian package when needed."""
    return plan_codec2_tree(debian_package_root(PACKAGE, download_dir))
