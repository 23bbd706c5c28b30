"""Features: STFT geometry of DESIGN.md section 3, known-answer targets and silence weights."""

import json

import numpy as np
import pandas as pd
import pytest

from dpcl.audio import AudioError, write_wav
from dpcl.config import params_from_dict
from dpcl.features import FeatureStore, compute_features, run_features, silence_weights
from dpcl.stft import Stft

RATE = 8000


def tone(freq: float, seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return amplitude * np.sin(2 * np.pi * freq * t)


def test_stft_geometry_and_perfect_reconstruction():
    stft = Stft()
    x = np.random.default_rng(0).standard_normal(RATE) * 0.1
    spec = stft.analyse(x)
    assert spec.shape == (stft.n_frames(len(x)), 129)  # time-major (T, F), 129 bins for 256 points
    y = stft.synthesise(spec, len(x))
    assert np.max(np.abs(x - y)) < 1e-5  # sqrt-Hann at hop n_fft/4 overlap-adds to a constant


def test_targets_follow_the_dominant_source_and_silence_is_weighted_out():
    cfg = params_from_dict({}).features
    s1 = tone(500, 1.0)
    s2 = tone(2000, 1.0)
    s2[: RATE // 2] = 0.0  # source 2 silent in the first half
    feats = compute_features(s1 + s2, [s1, s2], Stft(), cfg)
    hz_per_bin = RATE / 256
    bin_500, bin_2000 = round(500 / hz_per_bin), round(2000 / hz_per_bin)
    frames = slice(5, -5)
    assert np.all(feats.target[frames, bin_500] == 0)
    late = slice(feats.target.shape[0] // 2 + 5, -5)
    assert np.all(feats.target[late, bin_2000] == 1)
    assert np.all(feats.weight[frames, bin_500] == 1)
    # A bin far from both tones is > 40 dB below the peak: weight 0.
    assert np.all(feats.weight[frames, 100] == 0)
    assert feats.logmag.dtype == np.float32 and np.all(np.isfinite(feats.logmag))


def test_silence_weights_are_gain_invariant():
    mag = np.abs(np.random.default_rng(1).standard_normal((50, 129))) ** 3
    assert np.array_equal(silence_weights(mag, 40.0), silence_weights(mag * 1000.0, 40.0))
    assert silence_weights(np.zeros((3, 129)), 40.0).sum() == 0


def write_split(root, split, n, rng):
    rows = []
    for i in range(n):
        name = f"a{i}_1.5_b{i}_-1.5.wav"
        s1 = tone(300 + 50 * i, 1.0) * rng.uniform(0.5, 1.0)
        s2 = tone(1500 + 30 * i, 1.0) * rng.uniform(0.5, 1.0)
        for folder, signal in (("s1", s1), ("s2", s2), ("mix", s1 + s2)):
            write_wav(root / "min" / split / folder / name, signal, RATE)
        rows.append({"name": name})
    pd.DataFrame(rows).to_csv(root / "min" / split / "mixtures.csv", index=False)


def test_stage_writes_streamable_hdf5_with_training_statistics(tmp_path):
    rng = np.random.default_rng(0)
    mix_dir = tmp_path / "mix"
    for split, n in (("tr", 4), ("cv", 2), ("tt", 2)):
        write_split(mix_dir, split, n, rng)
    params = params_from_dict({})
    summary = run_features(params, mix_dir, tmp_path / "features", workers=2)
    assert summary["tr"]["mixtures"] == 4 and summary["tt"]["mixtures"] == 2
    store = FeatureStore(tmp_path / "features" / "tr.h5", tmp_path / "features" / "stats.json")
    assert len(store) == 4 and store.n_frames(0) == Stft().n_frames(RATE)
    chunk = store.read(1, 10, 30)
    assert chunk.logmag.shape == (20, 129) and chunk.target.shape == (20, 129)
    # Normalised with statistics of the training split: per-bin mean 0 and std 1 over tr.
    everything = np.concatenate([f.logmag for f in store])
    assert np.allclose(everything.mean(axis=0), 0.0, atol=1e-3)
    assert np.allclose(everything.std(axis=0)[everything.std(axis=0) > 0.1], 1.0, atol=1e-2)
    stats = json.loads((tmp_path / "features" / "stats.json").read_text())
    assert stats["frames"] == summary["tr"]["frames"]
    store.close()


def test_wrongly_sampled_mixture_fails_cleanly_and_keeps_old_output(tmp_path):
    rng = np.random.default_rng(0)
    mix_dir = tmp_path / "mix"
    for split in ("tr", "cv", "tt"):
        write_split(mix_dir, split, 2, rng)
    out = tmp_path / "features"
    run_features(params_from_dict({}), mix_dir, out, workers=1)
    before = sorted(p.name for p in out.iterdir())
    bad = next((mix_dir / "min" / "cv" / "mix").iterdir())
    write_wav(bad, tone(400, 1.0), 16000)
    with pytest.raises(AudioError, match="16000 Hz, expected 8000 Hz"):
        run_features(params_from_dict({}), mix_dir, out, workers=1)
    assert sorted(p.name for p in out.iterdir()) == before
    assert not (tmp_path / "features.partial").exists()


def test_write_wav_matches_libsndfile_and_refuses_to_clip(tmp_path):
    """The fast `wave` writer gives the bytes soundfile would, for mono and stereo."""
    import soundfile as sf

    from dpcl.audio import to_int16

    rng = np.random.default_rng(0)
    for samples in (tone(440, 0.5), np.clip(0.2 * rng.standard_normal((4000, 2)), -0.9, 0.9)):
        write_wav(tmp_path / "ours.wav", samples, RATE)
        sf.write(tmp_path / "libsndfile.wav", to_int16(samples), RATE, subtype="PCM_16")
        assert (tmp_path / "ours.wav").read_bytes() == (tmp_path / "libsndfile.wav").read_bytes()
    with pytest.raises(AudioError, match="clip"):
        write_wav(tmp_path / "loud.wav", tone(440, 0.5) * 10, RATE)


def test_parallel_features_equal_serial(tmp_path, monkeypatch):
    import h5py

    import dpcl.features

    rng = np.random.default_rng(3)
    mix_dir = tmp_path / "mix"
    for split in ("tr", "cv", "tt"):
        write_split(mix_dir, split, 3, rng)
    monkeypatch.setattr(dpcl.features, "PARALLEL_MIN_JOBS", 1)  # use the pool even for 3 mixtures
    run_features(params_from_dict({}), mix_dir, tmp_path / "parallel", workers=2)
    run_features(params_from_dict({}), mix_dir, tmp_path / "serial", workers=1)
    for split in ("tr", "cv", "tt"):
        with h5py.File(tmp_path / "parallel" / f"{split}.h5") as a, h5py.File(tmp_path / "serial" / f"{split}.h5") as b:
            for key in ("logmag", "target", "weight", "offsets"):
                assert np.array_equal(a[key][:], b[key][:]), (split, key)
