"""The corpus stage end to end, with the real TTS engines and real files (no mocks)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import tree_digest
from dpcl.audio import read_audio, resample
from dpcl.config import CorpusConfig, SynthesisConfig
from dpcl.corpus import COLUMNS, CorpusError, build_corpus
from dpcl.errors import DpclError

SYNTHETIC = CorpusConfig(sources=("espeak", "flite"), max_utterances_per_speaker=8, min_utterances_per_speaker=4,
                         n_test_speakers=2, synthetic_in_test=True, synthesis=SynthesisConfig(espeak_voices=("m1", "f1"),
                                                                      flite_voices=("awb", "slt")))
# LibriSpeech-like speakers of the folder corpus: folder name -> (espeak variant, SPEAKERS.TXT sex)
FOLDER_SPEAKERS = {"19": ("m1", "F"), "26": ("f1", "M"), "32": ("m3", "F"), "40": ("f2", "M")}
SENTENCES = ["The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
             "It is easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
             "Rice is often served in round bowls.", "The juice of lemons makes fine punch."]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    out = tmp_path_factory.mktemp("synthetic") / "corpus"
    return build_corpus(SYNTHETIC, out, workers=2), out


def test_synthetic_build_writes_valid_utterances(synthetic: tuple[pd.DataFrame, Path]) -> None:
    frame, out = synthetic
    assert tuple(frame.columns) == COLUMNS
    assert frame["duration"].dtype == np.float64
    for column in set(COLUMNS) - {"duration"}:
        assert pd.api.types.is_string_dtype(frame[column]), column
    assert set(frame["split"]) == {"tr", "cv", "tt"}
    assert set(frame["kind"]) == {"synthetic"} and set(frame["sex"]) <= {"M", "F"}
    assert set(frame["speaker"]) == {"espeak-m1", "espeak-f1", "flite-awb", "flite-slt"}
    assert frame["utterance"].str.fullmatch(r"[A-Za-z0-9-]+").all()
    assert frame.groupby("speaker").size().max() <= SYNTHETIC.max_utterances_per_speaker
    for row in frame.itertuples():
        samples, rate = read_audio(out / row.path)
        assert rate == 8000
        assert row.path == f"{row.speaker}/{row.utterance}.wav"
        assert len(samples) / rate == pytest.approx(row.duration)
        assert 2.0 <= row.duration <= 6.0
        assert 0.5 < np.max(np.abs(samples)) < 1.0
    on_disk = pd.read_csv(out / "manifest.csv")
    pd.testing.assert_frame_equal(on_disk, frame, check_dtype=False)
    assert not out.with_name("corpus.partial").exists()


def test_test_speakers_are_unseen_in_training(synthetic: tuple[pd.DataFrame, Path]) -> None:
    frame, out = synthetic
    test = set(frame.loc[frame["split"] == "tt", "speaker"])
    train = set(frame.loc[frame["split"].isin(["tr", "cv"]), "speaker"])
    assert len(test) == 2 and not test & train
    # training and validation share speakers, as in WSJ0-2mix
    assert set(frame.loc[frame["split"] == "cv", "speaker"]) == set(frame.loc[frame["split"] == "tr", "speaker"])
    summary = pd.read_json(out / "summary.json", typ="series")
    assert sorted(summary["test_speakers"]) == sorted(test)
    assert summary["by_split"]["tt"]["speakers"] == 2


def test_build_is_reproducible_from_the_seed(synthetic: tuple[pd.DataFrame, Path], tmp_path: Path) -> None:
    frame, out = synthetic
    again = build_corpus(SYNTHETIC, tmp_path / "again", workers=1)  # other worker count, same result
    pd.testing.assert_frame_equal(again, frame)
    assert tree_digest(tmp_path / "again") == tree_digest(out)


def test_unknown_test_speaker_lists_the_choices(tmp_path: Path) -> None:
    cfg = CorpusConfig(sources=("espeak",), test_speakers=("espeak-m1", "espeak-zz"), synthetic_in_test=True,
                       synthesis=SynthesisConfig(espeak_voices=("m1", "f1")))
    with pytest.raises(CorpusError, match=r"espeak-zz.*espeak-f1, espeak-m1"):
        build_corpus(cfg, tmp_path / "corpus")
    assert not (tmp_path / "corpus").exists()


def test_unknown_voices_are_errors_not_silent_fallbacks(tmp_path: Path) -> None:
    for synthesis, message in ((SynthesisConfig(espeak_voices=("m1", "nosuch")), r"nosuch.*installed: .*m1"),
                               (SynthesisConfig(flite_voices=("awb", "nosuch")), r"nosuch.*available: .*slt")):
        with pytest.raises(CorpusError, match=message):
            build_corpus(CorpusConfig(sources=("espeak", "flite"), synthesis=synthesis), tmp_path / "corpus")


# --------------------------------------------------------------------------- folder corpus


def espeak_audio(variant: str, text: str, rate: int) -> np.ndarray:
    """Speech for test corpora, from the real espeak-ng, at `rate`."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", f"en+{variant}", "-w", str(wav), text], check=True)
        samples, native = read_audio(wav)
    return resample(samples, native, rate) * 0.5


@pytest.fixture(scope="module")
def librispeech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LibriSpeech layout at 16 kHz: SPEAKERS.TXT above <subset>/<speaker>/<chapter>/<utt>.flac."""
    root = tmp_path_factory.mktemp("librispeech") / "LibriSpeech"
    subset = root / "train-clean-100"
    rows = [";ID  |SEX| SUBSET           |MINUTES| NAME"]
    for speaker, (variant, sex) in FOLDER_SPEAKERS.items():
        rows.append(f"{speaker:<5}| {sex} | train-clean-100  | 25.00 | Reader {speaker}")
        for index in range(3):
            chapter = subset / speaker / str(100 + index % 2)
            chapter.mkdir(parents=True, exist_ok=True)
            text = " ".join(SENTENCES[(index + k) % len(SENTENCES)] for k in range(3))
            suffix = ".wav" if index == 2 else ".flac"
            audio = espeak_audio(variant, text, 16000)
            sf.write(chapter / f"{speaker}-{chapter.name}-{index:04d}{suffix}", audio, 16000)
    (root / "SPEAKERS.TXT").write_text("\n".join(rows) + "\n")
    (subset / "77" / "empty-chapter").mkdir(parents=True)  # a speaker folder without audio
    (subset / "88" / "1").mkdir(parents=True)  # a speaker with too little audio to keep
    sf.write(subset / "88" / "1" / "88-1-0000.flac", espeak_audio("m7", SENTENCES[0], 16000), 16000)
    return subset


def folder_config(root: Path, **overrides: object) -> CorpusConfig:
    settings = dict(sources=("folder",), folder_root=str(root), test_speakers=("folder-19", "folder-26"),
                    min_utterances_per_speaker=3)
    return CorpusConfig(**{**settings, **overrides})  # type: ignore[arg-type]


def test_folder_corpus_is_resampled_and_split(librispeech: Path, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        frame = build_corpus(folder_config(librispeech), tmp_path / "corpus")
    assert "77" in caplog.text and "no .wav/.flac/.ogg" in caplog.text
    assert "dropping speaker folder-88: only 1 utterances" in caplog.text
    summary = pd.read_json(tmp_path / "corpus" / "summary.json", typ="series")
    assert list(summary["dropped_speakers"]) == ["folder-88"]
    assert not (tmp_path / "corpus" / "folder-88").exists()
    assert set(frame["speaker"]) == {f"folder-{s}" for s in FOLDER_SPEAKERS}
    sexes = {f"folder-{s}": sex for s, (_, sex) in FOLDER_SPEAKERS.items()}
    assert dict(frame.groupby("speaker")["sex"].first()) == sexes
    assert set(frame.loc[frame["split"] == "tt", "speaker"]) == {"folder-19", "folder-26"}
    assert set(frame.loc[frame["split"] != "tt", "speaker"]) == {"folder-32", "folder-40"}
    assert set(frame["kind"]) == {"real"} and set(frame["source"]) == {"folder"}
    for path in frame["path"]:
        info = sf.info(str(tmp_path / "corpus" / path))
        assert info.samplerate == 8000 and info.subtype == "PCM_16"
        assert 2.0 <= info.duration <= 6.0


def test_missing_folder_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"folder_root .*nowhere is not a folder.*<speaker>"):
        build_corpus(folder_config(tmp_path / "nowhere"), tmp_path / "corpus")
    assert not (tmp_path / "corpus").exists()


def test_corrupt_file_is_named_and_earlier_output_survives(librispeech: Path, tmp_path: Path) -> None:
    root = tmp_path / "corpus-src"
    shutil.copytree(librispeech, root)
    out = tmp_path / "corpus"
    good = build_corpus(folder_config(root), out)
    before = tree_digest(out)
    corrupt = root / "32" / "100" / "32-100-0002.wav"
    corrupt.write_bytes(b"RIFF\x00\x10\x00\x00WAVEjunk" + bytes(range(256)) * 8)
    with pytest.raises(DpclError, match=str(corrupt)):
        build_corpus(folder_config(root), out)
    assert tree_digest(out) == before and len(good) == len(pd.read_csv(out / "manifest.csv"))
    assert not out.with_name("corpus.partial").exists()
