"""Drascula's ALS reader and voice-pack planner, on small files written in the packs' formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from dpcl.corpus.als import ALS_RATE, decode_als, read_als
from dpcl.corpus.drascula import AlsClips, character, plan_drascula_tree
from dpcl.corpus.plan import CorpusError

RIFF_TAIL = b"\x80" * 19 + b"\x00fact\x04\x00\x00\x00FILT"  # 32 bytes, as the Spanish files end


def tone(n: int, seed: int = 0) -> bytes:
    """`n` unsigned 8-bit samples of a quiet noisy tone around 0x80."""
    rng = np.random.default_rng(seed)
    wave = 128 + 40 * np.sin(np.arange(n) / 5.0) + rng.normal(0, 3, n)
    return np.clip(np.round(wave), 0, 255).astype(np.uint8).tobytes()


def als(body: bytes, tail: bytes = b"\x80" * 32) -> bytes:
    """An ALS file: a 32-byte (silent) header, the played body and a 32-byte trailer."""
    return b"\x80" * 32 + body + tail


def voc(body: bytes, announced: int | None = None) -> bytes:
    """A file whose first 32 bytes are a VOC 1.10 header and a type-1 sound block header."""
    version = 0x010A
    header = b"Creative Voice File\x1a" + (26).to_bytes(2, "little") + version.to_bytes(2, "little") \
        + ((~version + 0x1234) & 0xFFFF).to_bytes(2, "little")
    length = (len(body) if announced is None else announced) + 2
    return header + b"\x01" + length.to_bytes(3, "little") + b"\xa5\x00" + body + b"\x00"


def test_als_body_between_the_margins_is_decoded() -> None:
    body = tone(2000)
    for tail in (b"\x80" * 32, RIFF_TAIL):
        samples = decode_als(als(body, tail), Path("1.ALS"))
        expected = (np.frombuffer(body, np.uint8).astype(float) - 128) / 128
        np.testing.assert_array_equal(samples, expected)
    assert samples.dtype == np.float64 and samples.min() >= -1 and samples.max() < 1


def test_als_file_rate_and_voc_header(tmp_path: Path) -> None:
    body = tone(1500)
    (tmp_path / "1.ALS").write_bytes(als(body))
    samples, rate = read_als(tmp_path / "1.ALS")
    assert rate == ALS_RATE == 11025 and len(samples) == 1500
    (tmp_path / "S1.ALS").write_bytes(voc(body))
    samples, _ = read_als(tmp_path / "S1.ALS")
    assert len(samples) == 1500  # exactly the announced sound block, not the engine's blind cut


@pytest.mark.parametrize("content, problem", [
    (b"\x80" * 50, "truncated"),
    (voc(tone(800), announced=5000), "truncated"),
    (voc(tone(800))[:20] + b"\x00\x00" + voc(tone(800))[22:], "corrupt Creative Voice header"),
    (als(bytes(np.full(900, 3, np.uint8)) + b"\x00\x10" * 50), "not unsigned 8-bit"),
    (als(b"\x80" * 900), "no sound"),
])
def test_bad_als_files_are_refused_by_name(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "L7.ALS"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=problem) as caught:
        read_als(path)
    assert str(path) in str(caught.value)


def test_character_rule() -> None:
    assert [character(s) for s in ("117", "VB12", "BJ3", "D5", "D57", "D70", "D82", "S3", "AUX9")] == \
        ["N", "VB", "BJ", "D", "N", "Dblind", None, None, None]


def pack(root: Path, language: str, files: dict[str, bytes]) -> Path:
    folder = root / "usr/share/scummvm/drascula" / language
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def test_planner_speakers_groups_and_exclusions(tmp_path: Path) -> None:
    en_root, es_root = tmp_path / "en_pkg", tmp_path / "es_pkg"
    en = pack(en_root, "en", {
        "1.ALS": als(tone(900, 1)), "2.ALS": als(tone(900, 2)), "D57.ALS": als(tone(900, 3)),
        "VB1.ALS": als(tone(900, 4)), "VB2.ALS": als(tone(900, 4)),  # VB2: a byte-identical copy
        "D3.ALS": als(tone(900, 5)), "D70.ALS": als(tone(900, 6)), "D82.ALS": als(tone(900, 7)),
        "S1.ALS": als(tone(900, 8)),  # an effect
        "20.ALS": als(tone(900, 9)),  # a recording the English pack shares with the Spanish one
        "1.ALG": b"not sound",
    })
    plans = {p.speaker: p for p in plan_drascula_tree(en_root, "en")}
    assert sorted(plans) == ["drascula-en-D", "drascula-en-Dblind", "drascula-en-N", "drascula-en-VB"]
    assert [Path(f).name for f in plans["drascula-en-N"].audio.paths] == ["1.ALS", "2.ALS", "D57.ALS"]
    assert len(plans["drascula-en-VB"].audio.paths) == 1
    for plan in plans.values():
        assert (plan.source, plan.language, plan.group, plan.identity, plan.sex, plan.kind) == \
            ("drascula", "en", "drascula-en", "uncertain", "unknown", "real")
    pickle.loads(pickle.dumps(plans["drascula-en-N"]))

    es = pack(es_root, "es", {"B1.ALS": als(tone(700, 10)), "20.ALS": als(tone(900, 9))})
    (es / "B61.ALS").symlink_to(en / "VB1.ALS")  # the Spanish pack links into the English one
    es_plans = {p.speaker: p for p in plan_drascula_tree(es_root, "es")}
    assert sorted(es_plans) == ["drascula-es-B", "drascula-es-N"]
    assert [Path(f).name for f in es_plans["drascula-es-B"].audio.paths] == ["B1.ALS"]
    assert {(p.source, p.group) for p in es_plans.values()} == {("drascula_es", "drascula-es")}


def test_clips_are_lazy_and_seeded(tmp_path: Path) -> None:
    paths = []
    for index in range(5):
        path = tmp_path / f"{index + 1}.ALS"
        path.write_bytes(als(tone(100 * (index + 1), index)))
        paths.append(str(path))
    source = AlsClips(tuple(paths))
    first = [len(x) for x, _ in source.clips(np.random.default_rng(3))]
    assert sorted(first) == [100, 200, 300, 400, 500]
    assert first == [len(x) for x, _ in source.clips(np.random.default_rng(3))]
    (tmp_path / "5.ALS").write_bytes(b"\x80" * 10)  # broken: found when its turn comes, not before
    read = []
    with pytest.raises(CorpusError, match="5.ALS: truncated"):
        for samples, _ in source.clips(np.random.default_rng(3)):
            read.append(len(samples))
    assert read == first[:first.index(500)]


def test_planner_refuses_missing_tree_and_language(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="layout changed"):
        plan_drascula_tree(tmp_path, "en")
    with pytest.raises(CorpusError, match="voice packs"):
        plan_drascula_tree(tmp_path, "de")
