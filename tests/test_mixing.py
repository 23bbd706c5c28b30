"""The WSJ0-2mix recipe on a tiny generated corpus: levels, gains, peaks, lengths, lists, failures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from dpcl.activlev import active_level
from dpcl.audio import AudioError, write_wav
from dpcl.config import Params, params_from_dict
from dpcl.mixing import mix_sources, run_mix
from dpcl.mixlists import (
    MixEntry,
    MixError,
    draw_mix_list,
    mixture_name,
    read_activlev_tables,
    read_mix_list,
    write_activlev_table,
    write_mix_list,
)

RATE = 8000
PEAK_LSB = round(0.9 * 2**15)  # 29491
SPEAKERS = {  # speaker -> (f0 Hz, sex, kind, split)
    "spk-a": (110.0, "m", "synthetic", "trcv"), "spk-b": (130.0, "m", "natural", "trcv"),
    "spk-c": (210.0, "f", "synthetic", "trcv"), "spk-d": (240.0, "f", "natural", "trcv"),
    "spk-e": (120.0, "m", "natural", "tt"), "spk-f": (220.0, "f", "synthetic", "tt"),
}


def speech_like(f0: float, seconds: float, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    """A harmonic 'voice' (gliding f0, 5 harmonics) in syllables: Hann bursts of 0.08-0.3 s at
    levels spread over 15 dB, some with pauses between them.

    Like a recorded utterance it starts and ends with silence (0.4 s or more, longer than P.56's
    0.2 s hangover), so zero-padding it in `max` mode leaves its active level unchanged. The
    spread of syllable levels matters: P.56 interpolates between 3 dB threshold steps, which is
    exact for speech but can be off by 0.3 dB for a signal of only a few distinct levels.
    """
    n = int(seconds * rate)
    t = np.arange(n) / rate
    envelope = np.zeros(n)
    position = int(0.4 * rate)
    while position < n - int(0.7 * rate):
        length = int(rng.uniform(0.08, 0.3) * rate)
        envelope[position: position + length] = np.hanning(length) * 10 ** (rng.uniform(-15, 0) / 20)
        position += length + int(rng.choice([0.0, 0.0, 0.03, 0.25]) * rate)
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))  # Hz, (n,)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
    return rng.uniform(0.05, 0.4) * voice * envelope / 2.3


def make_corpus(root: Path, per_speaker: int = 10, seed: int = 0, rate: int = RATE) -> pd.DataFrame:
    """6 speakers x `per_speaker` utterances of 1.5-3.5 s; 2 speakers held out for tt, 20% of the rest in cv."""
    rng = np.random.default_rng(seed)
    rows = []
    for speaker, (f0, sex, kind, split) in SPEAKERS.items():
        for k in range(per_speaker):
            rel = f"{speaker}/{speaker}-{k:04d}.wav"
            samples = speech_like(f0 * rng.uniform(0.95, 1.05), rng.uniform(1.5, 3.5), rng, rate)
            write_wav(root / rel, samples, rate)
            utt_split = "tt" if split == "tt" else ("cv" if k < per_speaker // 5 else "tr")
            rows.append({"speaker": speaker, "utterance": Path(rel).stem, "path": rel,
                         "duration": len(samples) / rate, "source": "test", "language": "xx", "sex": sex,
                         "kind": kind, "split": utt_split})
    manifest = pd.DataFrame(rows)
    manifest.to_csv(root / "manifest.csv", index=False)
    return manifest


def make_params(**mix) -> Params:
    mix = {"counts": {"tr": 12, "cv": 4, "tt": 6}, "modes": ["min", "max"], **mix}
    return params_from_dict({"corpus": {"sample_rate": RATE}, "mix": mix, "features": {"mode": mix["modes"][0]}})


def read_int(path: Path) -> np.ndarray:
    samples, rate = sf.read(str(path), dtype="int16")
    assert rate == RATE
    return samples.astype(np.int64)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """One corpus mixed in both modes, shared by the read-only checks below."""
    root = tmp_path_factory.mktemp("mixed")
    manifest = make_corpus(root / "corpus")
    run_mix(make_params(), root / "corpus", root / "mix")
    return root, manifest


def test_written_sources_keep_the_listed_gains_in_active_level(mixed):
    root, _ = mixed
    table = pd.read_csv(root / "mix" / "max" / "tr" / "mixtures.csv")
    for row in table.itertuples():
        levels = [active_level(read_int(root / "mix" / "max" / "tr" / s / row.name) / 2**15, RATE).level
                  for s in ("s1", "s2")]
        # after undoing the common gain each source sits at its listed gain, in active-level dB
        assert 10 * math.log10(levels[0] / row.scale**2) == pytest.approx(row.gain_1, abs=0.05)
        assert 10 * math.log10(levels[1] / row.scale**2) == pytest.approx(row.gain_2, abs=0.05)
        assert 10 * math.log10(levels[0] / levels[1]) == pytest.approx(row.gain_1 - row.gain_2, abs=0.05)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_mix_is_the_sum_of_sources_and_peaks_at_0_9(mixed, mode):
    root, manifest = mixed
    durations = dict(zip(manifest["utterance"], manifest["duration"]))
    for split in ("tr", "cv", "tt"):
        folder = root / "mix" / mode / split
        table = pd.read_csv(folder / "mixtures.csv")
        for row in table.itertuples():
            mix, s1, s2 = (read_int(folder / d / row.name) for d in ("mix", "s1", "s2"))
            assert np.max(np.abs(mix - s1 - s2)) <= 1  # int16 rounding of three separate roundings
            assert max(np.max(np.abs(x)) for x in (mix, s1, s2)) == pytest.approx(PEAK_LSB, abs=1)
            lengths = [round(durations[u] * RATE) for u in (row.utterance_1, row.utterance_2)]
            assert len(mix) == len(s1) == len(s2) == row.n_samples == (min if mode == "min" else max)(lengths)


def test_outputs_lists_levels_and_tables(mixed):
    root, manifest = mixed
    out = root / "mix"
    for split, count in (("tr", 12), ("cv", 4), ("tt", 6)):
        entries = read_mix_list(out / "lists" / f"mix_2_spk_{split}.txt", 2)
        table = pd.read_csv(out / "min" / split / "mixtures.csv")
        assert len(entries) == len(table) == count
        assert table["name"].tolist() == [mixture_name(e) for e in entries]
        assert sorted(p.name for p in (out / "max" / split / "mix").iterdir()) == sorted(table["name"])
        rows = manifest.set_index("utterance")
        for i in (1, 2):
            for column in ("speaker", "sex", "kind", "language"):
                assert table[f"{column}_{i}"].tolist() == rows.loc[table[f"utterance_{i}"], column].tolist()
        assert (table["speaker_1"] != table["speaker_2"]).all()
    levels = read_activlev_tables(out / "activlev")
    assert set(levels) == set(manifest["utterance"])
    assert (out / "summary.json").is_file()


def test_three_speakers(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", per_speaker=5)
    with pytest.raises(MixError, match="'tt' has 2 speaker.*at least 3"):  # tt holds only spk-e, spk-f
        run_mix(make_params(n_speakers=3), tmp_path / "corpus", tmp_path / "mix")
    manifest.loc[manifest["speaker"] == "spk-d", "split"] = "tt"  # now 3 speakers in each split
    manifest.to_csv(tmp_path / "corpus" / "manifest.csv", index=False)
    run_mix(make_params(n_speakers=3, modes=["max"], counts={"tr": 4, "cv": 1, "tt": 2}),
            tmp_path / "corpus", tmp_path / "mix")
    entries = read_mix_list(tmp_path / "mix" / "lists" / "mix_3_spk_tr.txt", 3)
    assert all(e.gains_db[2] == 0.0 and e.gains_db[1] == -e.gains_db[0] for e in entries)
    folder = tmp_path / "mix" / "max" / "tr"
    for entry in entries:
        name = mixture_name(entry)
        assert name.endswith("_0.wav")
        mix, *sources = (read_int(folder / d / name) for d in ("mix", "s1", "s2", "s3"))
        assert np.max(np.abs(mix - sum(sources))) <= 2
        assert max(np.max(np.abs(x)) for x in (mix, *sources)) == pytest.approx(PEAK_LSB, abs=1)
    table = pd.read_csv(folder / "mixtures.csv")
    assert {"utterance_3", "speaker_3", "gain_3", "sex_3"} <= set(table.columns)
    assert (table[["speaker_1", "speaker_2", "speaker_3"]].nunique(axis=1) == 3).all()


def test_drawn_lists_are_seeded_balanced_and_speaker_disjoint(tmp_path):
    manifest = make_corpus(tmp_path, per_speaker=6)
    speaker_of = dict(zip(manifest["path"], manifest["speaker"]))

    def draw(split: str, count: int, seed: int) -> list[MixEntry]:
        return draw_mix_list(manifest, split, count, 2, 2.5, np.random.default_rng(seed))

    assert draw("tr", 30, 1) == draw("tr", 30, 1)
    assert draw("tr", 30, 1) != draw("tr", 30, 2)
    assert draw("tr", 30, 1) == draw_mix_list(manifest.sample(frac=1, random_state=3), "tr", 30, 2, 2.5,
                                              np.random.default_rng(1))  # manifest row order is irrelevant
    entries = draw("tr", 64, 0)  # 4 speakers x 5 tr utterances: each used 64 * 2 / 20 = 6.4 times
    assert len({frozenset(e.sources) for e in entries}) == len(entries)  # no repeated pair
    assert all(speaker_of[e.sources[0]] != speaker_of[e.sources[1]] for e in entries)
    uses = pd.Series([s for e in entries for s in e.sources]).value_counts()
    assert len(uses) == 20 and uses.max() - uses.min() <= 2
    assert all(0 <= e.gains_db[0] <= 2.5 and e.gains_db[1] == -e.gains_db[0] for e in entries)
    tt_speakers = {speaker_of[s] for e in draw("tt", 20, 0) for s in e.sources}
    assert tt_speakers == {"spk-e", "spk-f"}
    assert tt_speakers.isdisjoint(speaker_of[s] for split in ("tr", "cv") for e in draw(split, 5, 0)
                                  for s in e.sources)
    with pytest.raises(MixError, match="only 36 distinct"):  # tt: 6 x 6 pairs
        draw("tt", 37, 0)


def test_drawn_pairs_never_join_two_speakers_of_one_group(tmp_path):
    """Two characters of one cast may be one actor: only different groups make a pair."""
    manifest = make_corpus(tmp_path, per_speaker=6)
    manifest["group"] = manifest["speaker"].map({"spk-a": "cast", "spk-b": "cast"}).fillna(manifest["speaker"])
    group_of = dict(zip(manifest["path"], manifest["group"]))
    entries = draw_mix_list(manifest, "tr", 60, 2, 2.5, np.random.default_rng(0))
    assert all(group_of[e.sources[0]] != group_of[e.sources[1]] for e in entries)
    assert {group_of[s] for e in entries for s in e.sources} == {"cast", "spk-c", "spk-d"}
    one_cast = manifest.assign(group="cast")
    with pytest.raises(MixError, match="1 group"):
        draw_mix_list(one_cast, "tr", 5, 2, 2.5, np.random.default_rng(0))


def test_list_round_trip(tmp_path):
    entries = [MixEntry(("a/x1.wav", "b/y2.wav"), (1.2345, -1.2345)),
               MixEntry(("a/x3.wav", "c/z1.wav"), (4.6942e-05, -4.6942e-05)),
               MixEntry(("a/x1.wav", "c/z2.wav"), (0.0, -0.0))]
    write_mix_list(tmp_path / "list.txt", entries)
    assert (tmp_path / "list.txt").read_text().splitlines()[1] == "a/x3.wav 4.6942e-05 c/z1.wav -4.6942e-05 "
    assert read_mix_list(tmp_path / "list.txt", 2) == entries
    assert mixture_name(entries[2]) == "x1_0_z2_0.wav"
    with pytest.raises(MixError, match=r"list.txt:1: 4 fields, expected 6"):
        read_mix_list(tmp_path / "list.txt", 3)
    write_activlev_table(tmp_path / "activlev_x.txt", {"x1": 2.5717652515284110e-04})
    assert (tmp_path / "activlev_x.txt").read_text() == "x1 2.5717652515284110e-04\n"


def test_mix_sources_known_answer():
    ones, twos = np.full(100, 0.5), np.full(60, -0.25)
    result = mix_sources([ones, twos], levels=[0.25, 0.0625], gains_db=[20 * math.log10(2), 0.0], mode="max")
    # normalised: 1 and -1; gains x2 and x1: 2 and -1; mix 1 (first 60), 2 (rest); peak 2 -> 0.9
    assert result.scale == pytest.approx(0.45)
    np.testing.assert_allclose(result.sources[0], 0.9)
    np.testing.assert_allclose(result.sources[1][:60], -0.45)
    np.testing.assert_allclose(result.mix, np.r_[np.full(60, 0.45), np.full(40, 0.9)])
    assert len(mix_sources([ones, twos], [0.25, 0.0625], [0, 0], "min").mix) == 60
    with pytest.raises(ValueError, match="positive"):
        mix_sources([ones, twos], [0.0, 1.0], [0, 0], "min")


def test_parallel_output_is_identical_to_serial(tmp_path):
    make_corpus(tmp_path / "corpus", per_speaker=5)
    params = make_params(modes=["min"], counts={"tr": 6, "cv": 2, "tt": 3})
    run_mix(params, tmp_path / "corpus", tmp_path / "serial", workers=1)
    run_mix(params, tmp_path / "corpus", tmp_path / "parallel", workers=2)
    files = sorted(p.relative_to(tmp_path / "serial") for p in (tmp_path / "serial").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "parallel") for p in (tmp_path / "parallel").rglob("*")
                           if p.is_file())
    for rel in files:
        assert (tmp_path / "serial" / rel).read_bytes() == (tmp_path / "parallel" / rel).read_bytes(), rel


def _wrong_rate(path: Path) -> None:
    samples, _ = sf.read(str(path))
    sf.write(str(path), samples, 16000, subtype="PCM_16")


def _corrupt(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(5000))


def _too_short(path: Path) -> None:
    samples, rate = sf.read(str(path))
    sf.write(str(path), samples[: int(0.4 * rate)], rate, subtype="PCM_16")


@pytest.mark.parametrize(("damage", "message", "workers"), [
    (_wrong_rate, "sampled at 16000 Hz, expected 8000 Hz", 1),
    (_corrupt, "not a valid sound file", 2),
    (_too_short, r"lasts 0.400 s; mixing needs sources of at least 0.5 s", 1),
])
def test_bad_input_fails_clearly_and_leaves_earlier_output_intact(tmp_path, damage, message, workers):
    manifest = make_corpus(tmp_path / "corpus", per_speaker=5)
    params = make_params(modes=["min"], counts={"tr": 4, "cv": 2, "tt": 2})
    broken = tmp_path / "corpus" / manifest["path"][7]
    damage(broken)
    with pytest.raises(AudioError, match=message) as error:
        run_mix(params, tmp_path / "corpus", tmp_path / "fresh", workers=workers)
    assert str(broken) in str(error.value)
    assert not (tmp_path / "fresh").exists() and not (tmp_path / "fresh.partial").exists()

    earlier = tmp_path / "earlier"
    (earlier / "lists").mkdir(parents=True)
    (earlier / "lists" / "mix_2_spk_tr.txt").write_text("earlier\n")
    with pytest.raises(AudioError):
        run_mix(params, tmp_path / "corpus", earlier, workers=workers)
    assert [p.name for p in earlier.rglob("*")] == ["lists", "mix_2_spk_tr.txt"]
    assert (earlier / "lists" / "mix_2_spk_tr.txt").read_text() == "earlier\n"


def test_manifest_with_a_test_speaker_in_training_is_refused(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", per_speaker=5)
    manifest.loc[0, "speaker"] = "spk-e"  # a tt speaker's utterance in tr
    manifest.to_csv(tmp_path / "corpus" / "manifest.csv", index=False)
    with pytest.raises(MixError, match="test speakers also appear in tr/cv: spk-e"):
        run_mix(make_params(), tmp_path / "corpus", tmp_path / "mix")
    assert not (tmp_path / "mix").exists()


# --------------------------------------------------------------------------- official lists mode


def make_wsj0(root: Path) -> tuple[Path, Path]:
    """A fake 16 kHz WSJ0 tree (one file as uncompressed NIST SPHERE .wv1), its list and level table."""
    rng = np.random.default_rng(5)
    utts = {"01aa0101": 110.0, "01ab0102": 115.0, "02ca0101": 220.0, "02cb0102": 230.0}
    levels = {}
    for utt, f0 in utts.items():
        samples = speech_like(f0, rng.uniform(1.5, 2.5), rng, rate=16000)
        folder = root / "wsj0" / "si_tr_s" / utt[:3]
        folder.mkdir(parents=True, exist_ok=True)
        if utt == "01ab0102":  # the original format, not converted: read as NIST
            sf.write(str(folder / f"{utt}.wv1"), np.round(samples * 2**15).astype(np.int16), 16000,
                     format="NIST", subtype="PCM_16")
        else:
            write_wav(folder / f"{utt}.wav", samples, 16000)
        levels[utt] = active_level(np.round(samples * 2**15) / 2**15, 16000).level
    lists = root / "lists"
    for split, pairs in {"tr": [("01aa0101", "02ca0101"), ("01ab0102", "02cb0102")],
                         "cv": [("01ab0102", "02ca0101")], "tt": [("01aa0101", "02cb0102")]}.items():
        entries = [MixEntry(tuple(f"wsj0/si_tr_s/{u[:3]}/{u}.wav" for u in pair), (g, -g))
                   for pair, g in zip(pairs, (1.9857, 0.079969))]
        write_mix_list(lists / f"mix_2_spk_{split}.txt", entries)
    write_activlev_table(root / "activlev" / "activlev_si_tr_s.txt", levels)
    return lists, root / "activlev"


def test_official_lists_mode_reads_wsj0_and_uses_the_tables(tmp_path):
    lists, activlev = make_wsj0(tmp_path)
    params = make_params(modes=["max"], official_lists=str(lists), official_activlev=str(activlev),
                         wsj0_root=str(tmp_path))
    run_mix(params, tmp_path / "no-corpus", tmp_path / "mix")
    for split in ("tr", "cv", "tt"):
        name = f"mix_2_spk_{split}.txt"
        assert (tmp_path / "mix" / "lists" / name).read_bytes() == (lists / name).read_bytes()
    table = pd.read_csv(tmp_path / "mix" / "max" / "tr" / "mixtures.csv")
    assert table["name"].tolist() == ["01aa0101_1.9857_02ca0101_-1.9857.wav",
                                      "01ab0102_0.079969_02cb0102_-0.079969.wav"]
    assert table["speaker_1"].tolist() == ["01a", "01a"]
    tables = read_activlev_tables(activlev)
    assert table["level_2"].tolist() == [tables["02ca0101"], tables["02cb0102"]]
    for row in table.itertuples():  # levels measured at 16 kHz, mixed at 8 kHz: the gains still hold
        s1, s2 = (read_int(tmp_path / "mix" / "max" / "tr" / s / row.name) / 2**15 for s in ("s1", "s2"))
        ratio_db = 10 * math.log10(active_level(s1, RATE).level / active_level(s2, RATE).level)
        assert ratio_db == pytest.approx(row.gain_1 - row.gain_2, abs=0.3)


def test_a_damaged_wv1_is_refused_by_name(tmp_path):
    """Raw .wv1 files are read directly (tests/test_sphere.py); one with a broken header stops the stage."""
    lists, activlev = make_wsj0(tmp_path)
    wv1 = tmp_path / "wsj0" / "si_tr_s" / "01a" / "01ab0102.wv1"
    wv1.write_bytes(b"NIST_1A\n   1024\nsample_coding -s26 pcm,embedded-shorten-v2.00\nend_head\n".ljust(1024)
                    + b"\x00" * 100)
    params = make_params(modes=["min"], official_lists=str(lists), official_activlev=str(activlev),
                         wsj0_root=str(tmp_path))
    with pytest.raises(AudioError, match=r"01ab0102.wv1: bad NIST SPHERE header \(no sample_count\)"):
        run_mix(params, tmp_path, tmp_path / "mix")
    assert not (tmp_path / "mix").exists()


def test_a_wav_copy_beside_a_wv1_is_used(tmp_path):
    """A .wav next to a listed utterance's .wv1 wins: the damaged .wv1 is never read."""
    lists, activlev = make_wsj0(tmp_path)
    wv1 = tmp_path / "wsj0" / "si_tr_s" / "01a" / "01ab0102.wv1"
    samples, rate = sf.read(str(wv1), dtype="float64")
    sf.write(str(wv1.with_suffix(".wav")), samples, rate, subtype="PCM_16")
    wv1.write_bytes(b"NIST_1A\n   1024\nsample_coding -s26 pcm,embedded-shorten-v2.00\nend_head\n".ljust(1024)
                    + b"\x00" * 100)
    params = make_params(modes=["min"], official_lists=str(lists), official_activlev=str(activlev),
                         wsj0_root=str(tmp_path))
    run_mix(params, tmp_path, tmp_path / "mix")
    assert (tmp_path / "mix" / "summary.json").is_file()
