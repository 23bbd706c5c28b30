"""The corpus stage's parts: clip surgery, utterance assembly, splits, name parsing, WSJ0 checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dpcl.audio import AudioError
from dpcl.config import CORPUS_SOURCES, CorpusConfig
from dpcl.corpus import CorpusError, build_corpus
from dpcl.corpus.assemble import join_pieces
from dpcl.corpus.clips import split_at_pauses, trim_silence
from dpcl.corpus.fillets import parse_role
from dpcl.corpus.fortunes import load_sentences, parse_fortunes
from dpcl.corpus.kde import language_group, language_tag
from dpcl.corpus.plan import FileClips, SpeakerPlan, safe_id
from dpcl.corpus.sources import PLANNERS
from dpcl.corpus.split import assign_splits, choose_test_speakers
from dpcl.corpus.wsj0 import plan_wsj0

RATE = 8000


def bursts(seconds: list[float], gap_s: float = 0.3) -> np.ndarray:
    """Tone bursts of the given lengths separated by silent gaps: speech with pauses, roughly."""
    parts = []
    for length in seconds:
        t = np.arange(int(length * RATE)) / RATE
        parts += [0.5 * np.sin(2 * np.pi * 220 * t), np.zeros(int(gap_s * RATE))]
    return np.concatenate(parts)


def test_trim_keeps_speech_and_ignores_a_click() -> None:
    signal = np.concatenate([np.zeros(RATE), bursts([1.0], gap_s=0.0), np.zeros(RATE)])
    signal[200] = 0.9  # a click in the lead-in
    trimmed = trim_silence(signal, RATE)
    assert 1.0 <= len(trimmed) / RATE <= 1.15
    assert trim_silence(np.zeros(RATE), RATE).size == 0


def test_long_clips_are_cut_in_pauses() -> None:
    signal = bursts([1.2] * 10)  # 15 s, a pause every 1.5 s
    pieces = split_at_pauses(signal, RATE, 2.0, 6.0)
    assert sum(map(len, pieces)) == len(signal)
    assert all(len(p) <= 6 * RATE for p in pieces) and all(len(p) >= 2 * RATE for p in pieces)
    for piece in pieces[:-1]:
        assert np.max(np.abs(piece[-40:])) < 1e-9  # each cut lands in a silent gap


def test_joined_utterances_stay_within_bounds() -> None:
    rng = np.random.default_rng(0)
    pieces = [np.ones(int(rng.uniform(0.2, 6.0) * RATE)) for _ in range(200)]
    utterances = list(join_pieces(pieces, RATE, 2.0, 6.0, rng))
    lengths = np.array([len(u) for u in utterances]) / RATE
    assert len(utterances) > 50 and lengths.min() >= 2.0 and lengths.max() <= 6.0
    assert lengths.std() > 0.5  # lengths spread over the range, not piled up at the maximum


def test_name_parsing() -> None:
    assert parse_role(Path("city/cs/vit-m-hlava.ogg")) == "m"
    assert parse_role(Path("rush/cs/m-obdivovat.ogg")) == "m"
    assert parse_role(Path("fdto/nl/agenti-m.ogg")) == "m"
    assert parse_role(Path("viking2/cs/dr-4-erik.ogg")) == "4"
    assert parse_role(Path("briefcase/cs/help12.ogg")) is None
    assert parse_role(Path("keys/cs/rand-3-3-0.ogg")) is None
    assert language_tag("pt_BR") == "pt-BR" and language_tag("sr@latin") == "sr-latin"
    assert language_group("en_GB") == language_group("en") == "volunteers-en"
    assert safe_id("folder", "a_b c") == "folder-a-b-c"
    with pytest.raises(ValueError, match="A-Za-z0-9-"):
        SpeakerPlan("bad_id", "folder", "en", "M", "real", "g", FileClips(()))


def test_fortune_sentences_are_plain_and_single() -> None:
    assert parse_fortunes("One line.\n%\nTwo\n  lines.\n%\n") == ["One line.", "Two lines.", ""]
    sentences = load_sentences()
    assert len(sentences) > 1500
    assert all(s[-1] in ".!?" and not any(c in s[:-1] for c in ".!?\"") for s in sentences)


def test_every_configurable_source_has_a_planner() -> None:
    assert set(PLANNERS) == set(CORPUS_SOURCES)


def plans(*specs: tuple) -> list[SpeakerPlan]:
    """Plans without audio from (speaker, kind, group[, identity]) tuples."""
    return [SpeakerPlan(spec[0], "folder", "en", "unknown", spec[1], spec[2], FileClips(()),  # type: ignore[arg-type]
                        *(spec[3:] or ()))
            for spec in specs]


def test_named_test_speakers_bring_their_group() -> None:
    speakers = plans(("klettres-fr", "real", "volunteers-fr"), ("ktuberling-fr", "real", "volunteers-fr"),
                     ("r1", "real", "r1"), ("r2", "real", "r2"), ("s1", "synthetic", "s1"))
    cfg = CorpusConfig(sources=("espeak",), test_speakers=("klettres-fr", "s1"), synthetic_in_test=True)
    assert choose_test_speakers(cfg, speakers).test == ["klettres-fr", "ktuberling-fr", "s1"]


def test_drawn_test_speakers_are_at_least_half_real_when_synthetic_may_test() -> None:
    speakers = plans(*[(f"r{i}", "real", f"r{i}") for i in range(4)],
                     *[(f"s{i}", "synthetic", f"s{i}") for i in range(8)])
    for seed in range(20):
        chosen = choose_test_speakers(CorpusConfig(sources=("espeak",), n_test_speakers=4, seed=seed,
                                                   synthetic_in_test=True), speakers).test
        assert len(chosen) == 4 and sum(c.startswith("r") for c in chosen) >= 2
    with pytest.raises(CorpusError, match="left for training"):
        choose_test_speakers(CorpusConfig(sources=("espeak",), n_test_speakers=11, synthetic_in_test=True), speakers)


def test_the_test_split_holds_real_voices_of_known_identity_only() -> None:
    speakers = plans(*[(f"r{i}", "real", f"r{i}") for i in range(5)],
                     *[(f"s{i}", "synthetic", f"s{i}") for i in range(5)],
                     *[(f"game-c{i}", "real", "game", "uncertain") for i in range(5)])
    by_id = {p.speaker: p for p in speakers}
    for seed in range(20):
        chosen = choose_test_speakers(CorpusConfig(sources=("espeak",), n_test_speakers=4, seed=seed), speakers)
        assert len(chosen.test) == 4 and chosen.excluded == []
        assert all(by_id[s].kind == "real" and by_id[s].identity == "known" for s in chosen.test)
    for name, message in (("s1", "synthetic"), ("game-c1", "identity uncertain")):
        with pytest.raises(CorpusError, match=f"{name} \\({message}"):
            choose_test_speakers(CorpusConfig(sources=("espeak",), test_speakers=("r1", name)), speakers)
    only_synthetic = plans(*[(f"s{i}", "synthetic", f"s{i}") for i in range(5)])
    with pytest.raises(CorpusError, match="synthetic_in_test"):
        choose_test_speakers(CorpusConfig(sources=("espeak",), n_test_speakers=2), only_synthetic)


def test_uncertain_group_mates_of_a_test_speaker_leave_the_corpus() -> None:
    """A dub's credited voice goes to tt; its uncredited cast-mates may be that actor: neither tt nor tr."""
    speakers = plans(("dub-main", "real", "dub"), ("dub-extra", "real", "dub", "uncertain"),
                     ("r1", "real", "r1"), ("r2", "real", "r2"), ("r3", "real", "r3"))
    chosen = choose_test_speakers(CorpusConfig(sources=("espeak",), test_speakers=("dub-main", "r1")), speakers)
    assert chosen.test == ["dub-main", "r1"] and chosen.excluded == ["dub-extra"]


def test_validation_takes_a_share_of_each_training_speaker() -> None:
    labels = assign_splits({"a": 20, "b": 6, "t": 10}, ["t"], 0.15, seed=0)
    assert labels["t"] == ["tt"] * 10
    assert labels["a"].count("cv") == 3 and labels["b"].count("cv") == 1
    assert labels == assign_splits({"t": 10, "b": 6, "a": 20}, ["t"], 0.15, seed=0)


def write_sphere(path: Path, coding: str) -> None:
    header = (f"NIST_1A\n   1024\nsample_count -i 16000\nsample_rate -i 16000\nchannel_count -i 1\n"
              f"sample_coding -s{len(coding)} {coding}\nend_head\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.ljust(1024, b" ") + bytes(4000))


def test_a_sphere_coding_not_read_here_stops_the_plan(tmp_path: Path) -> None:
    """Raw shorten .wv1 files are read (tests/test_sphere.py); an unknown coding fails before any decoding."""
    utterance = tmp_path / "wsj0" / "wsj0" / "si_tr_s" / "011" / "011c0201.wv1"
    write_sphere(utterance, "pcm,embedded-wavpack")
    cfg = CorpusConfig(sources=("wsj0",), wsj0_root=str(tmp_path / "wsj0"))
    with pytest.raises(AudioError, match=r"011c0201.wv1: NIST SPHERE sample_coding 'pcm,embedded-wavpack' is not"):
        build_corpus(cfg, tmp_path / "corpus")
    assert not (tmp_path / "corpus").exists()


def test_wsj0_reads_pcm_sphere_and_prefers_wav_copies(tmp_path: Path) -> None:
    speaker = tmp_path / "wsj0" / "si_tr_s" / "011"
    speaker.mkdir(parents=True)
    tone = 0.1 * np.sin(np.arange(16000) * 0.2)
    sf.write(speaker / "011c0201.wv1", tone, 16000, format="NIST", subtype="PCM_16")  # PCM: readable
    write_sphere(speaker / "011c0202.wv1", "pcm,embedded-shorten-v2.00")  # damaged; the .wav beside wins
    sf.write(speaker / "011c0202.wav", tone, 16000)
    (plan,) = plan_wsj0(str(tmp_path))
    assert plan.speaker == "wsj0-011" and plan.language == "en"
    names = sorted(Path(p).name for p in plan.audio.paths)  # type: ignore[attr-defined]
    assert names == ["011c0201.wv1", "011c0202.wav"]
    clips = list(plan.audio.clips(np.random.default_rng(0)))
    assert [rate for _, rate in clips] == [16000, 16000]
    with pytest.raises(CorpusError, match=r"expected .*si_tr_s"):
        plan_wsj0(str(tmp_path / "nowhere"))
