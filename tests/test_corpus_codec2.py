"""codec2-examples planner and reader, on small raw and wav files laid out as in the package."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dpcl.corpus.codec2 import HTS_BLOCK, RAW_RATE, plan_codec2_tree, read_raw_s16le
from dpcl.corpus.plan import CorpusError


def samples(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-8000, 8000, n).astype("<i2")


def tree(root: Path, raw: dict[str, np.ndarray], wav: dict[str, np.ndarray]) -> Path:
    for folder in ("raw", "wav"):
        (root / "usr/share/codec2" / folder).mkdir(parents=True, exist_ok=True)
    for name, data in raw.items():
        data.tofile(root / "usr/share/codec2/raw" / name)
    for name, data in wav.items():
        sf.write(root / "usr/share/codec2/wav" / name, data, RAW_RATE, subtype="PCM_16")
    return root


def test_raw_reader(tmp_path: Path) -> None:
    data = samples(800, 0)
    data.tofile(tmp_path / "a.raw")
    x, rate = read_raw_s16le(tmp_path / "a.raw")
    assert rate == 8000 and x.dtype == np.float64
    np.testing.assert_array_equal(x, data / 32768.0)
    (tmp_path / "b.raw").write_bytes(b"\x01\x02\x03")
    with pytest.raises(CorpusError, match=r"b\.raw: 3 bytes, odd"):
        read_raw_s16le(tmp_path / "b.raw")


def test_planner_voices_groups_identity(tmp_path: Path) -> None:
    vk5qi, forig, hts = samples(4000, 1), samples(3000, 2), samples(4 * HTS_BLOCK, 3)
    root = tree(tmp_path, raw={"vk5qi.raw": vk5qi, "hts.raw": hts, "f2400.raw": samples(900, 4),
                               "hts1.raw": hts[:HTS_BLOCK]},
                wav={"vk5qi.wav": vk5qi, "forig.wav": forig, "all.wav": samples(900, 5)})
    plans = {p.speaker: p for p in plan_codec2_tree(root)}
    assert sorted(plans) == ["codec2-forig", "codec2-hts-1", "codec2-hts-2", "codec2-hts-3", "codec2-hts-4",
                             "codec2-vk5qi"]
    known = plans["codec2-vk5qi"]
    assert (known.identity, known.group, known.language, known.source) == ("known", "codec2-vk5qi", "en", "codec2")
    assert [s.path.endswith("raw/vk5qi.raw") for s in known.audio.segments] == [True]  # raw over its wav twin
    assert (plans["codec2-forig"].identity, plans["codec2-forig"].sex, plans["codec2-forig"].group) == \
        ("uncertain", "F", "codec2-unnamed-f")
    assert [plans[f"codec2-hts-{i}"].sex for i in range(1, 5)] == ["M", "F", "M", "F"]
    assert plans["codec2-hts-1"].group == plans["codec2-hts-3"].group == "codec2-unnamed-m"
    rng = np.random.default_rng(0)
    for index in range(4):
        (x, rate), = plans[f"codec2-hts-{index + 1}"].audio.clips(rng)
        np.testing.assert_array_equal(x, hts[index * HTS_BLOCK:(index + 1) * HTS_BLOCK] / 32768.0)
    (x, rate), = plans["codec2-forig"].audio.clips(rng)
    assert rate == 8000
    np.testing.assert_allclose(x, forig / 32768.0, atol=1e-12)
    (x, rate), = known.audio.clips(rng)
    np.testing.assert_array_equal(x, vk5qi / 32768.0)
    pickle.loads(pickle.dumps(list(plans.values())))


def test_unknown_files_and_changed_hts_are_refused(tmp_path: Path) -> None:
    root = tree(tmp_path / "a", raw={"newvoice.raw": samples(900, 6)}, wav={})
    with pytest.raises(CorpusError, match="newvoice"):
        plan_codec2_tree(root)
    root = tree(tmp_path / "b", raw={"hts.raw": samples(3 * HTS_BLOCK, 7)}, wav={})
    with pytest.raises(CorpusError, match="speaker boundaries"):
        plan_codec2_tree(root)
    with pytest.raises(CorpusError, match="layout changed"):
        plan_codec2_tree(tmp_path / "empty")
