"""The official wsj0-2mix/3mix lists and level tables: what the recipe says, and that we read and
write them exactly. Runs where the lists are shared beside the repository (../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpcl.mixlists import mixture_name, read_activlev_tables, read_mix_list, write_mix_list

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "wsj0-2mix"
pytestmark = pytest.mark.skipif(not OFFICIAL.is_dir(), reason=f"official wsj0-2mix lists not found at {OFFICIAL}")
SPLITS = ("tr", "cv", "tt")


def speaker(path: str) -> str:
    """WSJ0 speaker id: the first 3 characters of the utterance id."""
    return Path(path).stem[:3]


@pytest.fixture(scope="module")
def lists() -> dict[tuple[int, str], list]:
    return {(n, split): read_mix_list(OFFICIAL / f"mix_{n}_spk_{split}.txt", n) for n in (2, 3) for split in SPLITS}


def test_two_speaker_lists_follow_the_recipe(lists):
    assert [len(lists[2, s]) for s in SPLITS] == [20000, 5000, 3000]
    for split in SPLITS:
        for entry in lists[2, split]:
            gain1, gain2 = entry.gains_db
            assert gain2 == -gain1 and 0 <= gain1 <= 2.5
            assert speaker(entry.sources[0]) != speaker(entry.sources[1])


def test_speakers_per_split(lists):
    speakers = {s: {speaker(p) for e in lists[2, s] for p in e.sources} for s in SPLITS}
    assert len(speakers["tt"]) == 18 and speakers["tt"].isdisjoint(speakers["tr"] | speakers["cv"])
    assert len(speakers["tr"]) == 101 and speakers["cv"] == speakers["tr"]


def test_every_listed_utterance_has_an_official_level(lists):
    levels = read_activlev_tables(OFFICIAL / "activlev")
    utterances = {u for entries in lists.values() for e in entries for u in e.utterances}
    assert utterances <= levels.keys()
    assert all(level > 0 for level in levels.values())


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("split", SPLITS)
def test_lists_round_trip_byte_for_byte(lists, tmp_path, n, split):
    write_mix_list(tmp_path / "list.txt", lists[n, split])
    assert (tmp_path / "list.txt").read_bytes() == (OFFICIAL / f"mix_{n}_spk_{split}.txt").read_bytes()


def test_three_speaker_lists(lists):
    assert [len(lists[3, s]) for s in SPLITS] == [20000, 5000, 3000]
    for split in SPLITS:
        for entry in lists[3, split]:
            assert len(entry.sources) == 3 and entry.gains_db[2] == 0 and entry.gains_db[1] == -entry.gains_db[0]
            assert len({speaker(p) for p in entry.sources}) == 3


def test_mixture_names_match_the_official_files(lists):
    tt = lists[2, "tt"]
    assert mixture_name(tt[75]) == "050c0105_0.94642_444c020p_-0.94642.wav"  # line 76
    assert mixture_name(tt[2911]) == "423o030d_0.059714_053o020f_-0.059714.wav"  # MATLAB's name (pywsj0-mix README)
    assert mixture_name(lists[3, "tr"][0]) == "01ca0102_1.2972_209c0105_-1.2972_20mo010h_0.wav"
    assert len({mixture_name(e) for e in lists[2, "tr"]}) == 20000  # names are unique
