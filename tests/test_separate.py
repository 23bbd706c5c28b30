"""Separation: mask sum rules, oracle separation quality, k-means, the Separator, the stage, the command.

Signals are built here (two harmonic 'voices' with different f0 under syllable envelopes), models
are tiny random networks saved the way the train stages save them: no corpus, no training.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import mir_eval.separation
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from dpcl.audio import AudioError, write_wav
from dpcl.config import Params, SeparateConfig, params_from_dict, params_to_dict
from dpcl.errors import DpclError
from dpcl.features import compute_features
from dpcl.masks import apply_masks, kmeans_masks, oracle_masks
from dpcl.models.build import build_model
from dpcl.separate import Separator, fit_int16, log_magnitude, run_separate, separate_file, separate_folder
from dpcl.stft import Stft

RATE = 8000
STFT = Stft()


def voice(n: int, f0: float, syllable_hz: float, phase: float, rate: int = RATE) -> np.ndarray:
    """Harmonics of f0 (1/k roll-off, 4 % vibrato) under a syllable envelope with pauses."""
    t = np.arange(n) / rate
    f0_t = f0 * (1 + 0.04 * np.sin(2 * np.pi * 3.0 * t + phase))
    angle = 2 * np.pi * np.cumsum(f0_t) / rate
    harmonics = sum(np.sin(k * angle) / k for k in range(1, int(rate / 2 / (1.1 * f0))))
    envelope = np.clip(np.sin(2 * np.pi * syllable_hz * t + phase), 0.0, None) ** 2
    return 0.25 * harmonics * envelope


def two_voices(seconds: float = 2.0, rate: int = RATE) -> tuple[np.ndarray, np.ndarray]:
    """(mix (n,), sources (2, n)): a low and a high voice, syllables out of step."""
    n = int(seconds * rate)
    sources = np.stack([voice(n, 115.0, 2.5, 0.0, rate), 0.8 * voice(n, 220.0, 3.3, 1.7, rate)])
    return sources.sum(axis=0), sources


def sdr(refs: np.ndarray, ests: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # mir_eval.separation is deprecated since 0.8
        return mir_eval.separation.bss_eval_sources(refs, ests)[0]


def tiny_params(**sections) -> Params:
    """Tiny networks; one k-means start (a random network's embeddings are not clustered: slow)."""
    return params_from_dict({"dpcl": {"sizes": {"default": {"hidden": 8, "layers": 1}}, "embedding_dim": 4},
                             "baselines": {"hidden": [8], "context": 1}, "separate": {"n_init": 1}, **sections})


def save_model(path: Path, params: Params, kind: str = "dpcl", transfer: str | None = None) -> Path:
    """A random model written as training._write_outputs writes model.pt."""
    torch.manual_seed(0)
    model = build_model(params, kind, transfer)
    torch.save({"state_dict": model.state_dict(), "params": params_to_dict(params), "kind": kind,
                "transfer": transfer, "objective": None if kind == "dpcl" else "pit", "name": f"tiny-{kind}"}, path)
    return path


def save_stats(path: Path, n_bins: int = 129) -> Path:
    path.write_text(json.dumps({"mean": [-4.0] * n_bins, "std": [2.0] * n_bins, "frames": 1}))
    return path


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Batch-of-one inference is fastest on one thread (on a busy 2-core machine, 2 threads made the
    first LSTM calls take seconds); restored for the other test modules."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    params = tiny_params()
    return {"dpcl": save_model(root / "dpcl.pt", params),
            "baseline": save_model(root / "baseline.pt", params, "baseline", "unipolar_sigmoid"),
            "stats": save_stats(root / "stats.json")}


# --------------------------------------------------------------------------- masks


def test_oracle_masks_sum_to_one() -> None:
    rng = np.random.default_rng(0)
    mags = rng.random((3, 20, 129)) ** 4
    mags[:, 0] = 0.0  # a frame where every source is silent
    mags[1, 1] = mags[0, 1]  # ties
    ibm = oracle_masks(mags, "ibm")
    assert ibm.shape == mags.shape and set(np.unique(ibm)) == {0.0, 1.0}
    assert np.array_equal(ibm.sum(axis=0), np.ones((20, 129)))
    assert np.array_equal(ibm.argmax(axis=0), mags.argmax(axis=0))
    irm = oracle_masks(mags, "irm")
    np.testing.assert_allclose(irm.sum(axis=0), 1.0, atol=1e-6)
    np.testing.assert_allclose(irm[:, 0], 1 / 3, atol=1e-7)
    assert np.all(np.isfinite(irm)) and irm.min() >= 0
    with pytest.raises(ValueError, match="allowed: ibm, irm"):
        oracle_masks(mags, "wiener")


def clustered_embeddings(target: np.ndarray, dim: int = 20, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Unit embeddings (T*F, D): one direction per source (orthogonal), plus optional noise."""
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.standard_normal((dim, dim)))[0][: int(target.max()) + 1]
    v = directions[target.reshape(-1)] + noise * rng.standard_normal((target.size, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("rule, silent_sum", [("both", 2.0), ("nearest", 1.0), ("louder", 1.0), ("none", 0.0)])
@pytest.mark.parametrize("soft", [False, True])
def test_kmeans_mask_sum_rules(rule: str, silent_sum: float, soft: bool) -> None:
    rng = np.random.default_rng(1)
    target = rng.integers(0, 2, (40, 129))
    active = rng.random((40, 129)) < 0.6
    active[5] = False  # a frame without active bins ('louder' falls back to the utterance)
    masks = kmeans_masks(clustered_embeddings(target, noise=0.3), active, 2, seed=0, n_init=2, silent_bins=rule,
                         soft=soft, magnitude=rng.random((40, 129)))
    total = masks.sum(axis=0)
    assert masks.shape == (2, 40, 129) and masks.dtype == np.float32
    np.testing.assert_allclose(total[active], 1.0, atol=1e-6)
    np.testing.assert_allclose(total[~active], silent_sum, atol=1e-6)
    if not soft:
        assert set(np.unique(masks)) <= {0.0, 1.0}


def test_kmeans_on_perfect_embeddings_recovers_the_ibm() -> None:
    mix, sources = two_voices(1.0)
    ibm = oracle_masks(np.stack([np.abs(STFT.analyse(s)) for s in sources]), "ibm")
    target = ibm.argmax(axis=0)
    active = np.ones_like(target, dtype=bool)
    masks = kmeans_masks(clustered_embeddings(target), active.reshape(-1), 2, seed=3, n_init=1, shape=target.shape)
    assert np.array_equal(masks, ibm) or np.array_equal(masks, ibm[::-1])
    again = kmeans_masks(clustered_embeddings(target), active, 2, seed=3, n_init=1)
    assert np.array_equal(masks, again)  # seeded: the same input gives the same masks


def test_kmeans_degenerate_and_bad_input() -> None:
    masks = kmeans_masks(np.ones((6, 4), np.float32), np.zeros((2, 3), bool), 2)  # nothing active
    assert np.array_equal(masks, np.ones((2, 2, 3)))  # 'both': every silent bin to both
    with pytest.raises(ValueError, match="shape"):
        kmeans_masks(np.ones((6, 4)), np.ones(6, bool), 2)
    with pytest.raises(ValueError, match="allowed"):
        kmeans_masks(np.ones((6, 4)), np.ones((2, 3), bool), 2, silent_bins="loudest")
    with pytest.raises(ValueError, match="magnitude"):
        kmeans_masks(np.ones((6, 4)), np.ones((2, 3), bool), 2, silent_bins="louder")


def test_oracle_ibm_separates_two_voices_and_ones_reconstruct() -> None:
    mix, sources = two_voices(2.0)
    spec = STFT.analyse(mix)
    ones = apply_masks(spec, np.ones((2, *spec.shape)), STFT, len(mix))
    assert ones.shape == (2, len(mix))
    assert np.max(np.abs(ones - mix)) < 1e-4
    ibm = oracle_masks(np.stack([np.abs(STFT.analyse(s)) for s in sources]), "ibm")
    estimates = apply_masks(spec, ibm, STFT, len(mix))
    scores = sdr(sources, estimates)
    assert np.all(scores > 8.0), scores
    assert np.all(scores < 40.0), scores  # a real separation, not the references themselves


def test_logmag_is_the_features_logmag() -> None:
    mix, sources = two_voices(0.5)
    mix[:800] = 0.0  # digital silence: the floor matters
    cfg = Params().features
    _, logmag, active = log_magnitude(mix, STFT, cfg)
    expected = compute_features(mix, list(sources), STFT, cfg)
    assert logmag.dtype == expected.logmag.dtype and np.array_equal(logmag, expected.logmag)
    assert np.array_equal(active, expected.weight.astype(bool))


def test_fit_int16_rescales_only_what_would_clip() -> None:
    quiet = np.array([0.5, -0.99, 0.2])
    assert fit_int16(quiet) == (quiet, False)
    loud, rescaled = fit_int16(np.array([0.5, -1.5, 0.2]))
    assert rescaled and np.isclose(np.max(np.abs(loud)), 0.9)


# --------------------------------------------------------------------------- model inference


def test_separator_runs_dpcl_and_baseline_models(models: dict[str, Path]) -> None:
    mix, _ = two_voices(1.0)
    dpcl = Separator(models["dpcl"], models["stats"])
    result = dpcl.run(mix, RATE)
    n_frames = STFT.n_frames(len(mix))
    assert result.estimates.shape == (2, len(mix))
    assert result.embeddings.shape == (n_frames * 129, 4)
    assert result.masks.shape == (2, n_frames, 129) and result.active.shape == (n_frames, 129)
    assert set(result.timings) == {"stft", "network", "masks", "istft"}
    np.testing.assert_allclose(result.masks.sum(axis=0)[result.active], 1.0)  # default: silent bins to both
    assert np.all(result.masks.sum(axis=0)[~result.active] == 2.0)
    assert np.array_equal(dpcl.separate(mix, RATE), result.estimates)  # seeded k-means: deterministic

    baseline = Separator(models["baseline"], models["stats"]).run(mix, RATE)
    assert baseline.estimates.shape == (2, len(mix)) and baseline.embeddings is None
    model = build_model(tiny_params(), "baseline", "unipolar_sigmoid")
    model.load_state_dict(torch.load(models["baseline"])["state_dict"])
    model.eval()
    _, logmag, _ = log_magnitude(mix, STFT, Params().features)
    with torch.no_grad():
        expected = model(torch.from_numpy((logmag + 4.0) / 2.0)[None])[0].numpy()  # (T, F, C)
    np.testing.assert_allclose(baseline.masks, np.moveaxis(expected, -1, 0), atol=1e-6)  # source c = channel c

    with pytest.raises(AudioError, match="16000 Hz"):
        dpcl.run(mix, 16000)
    with pytest.raises(AudioError, match="mono"):
        dpcl.run(np.stack([mix, mix]), RATE)


def test_not_a_model_file_is_a_clear_error(tmp_path: Path, models: dict[str, Path]) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    with pytest.raises(DpclError, match="not a dpcl model file"):
        Separator(text, models["stats"])
    other = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(DpclError, match="lacks.*kind"):
        Separator(other, models["stats"])
    with pytest.raises(DpclError, match="model file not found"):
        Separator(tmp_path / "missing.pt", models["stats"])
    with pytest.raises(DpclError, match="stats.json"):
        Separator(models["dpcl"], tmp_path / "missing.json")
    (tmp_path / "short.json").write_text(json.dumps({"mean": [0.0] * 65, "std": [1.0] * 65}))
    with pytest.raises(DpclError, match="65 bins"):
        Separator(models["dpcl"], tmp_path / "short.json")


# --------------------------------------------------------------------------- the user command


def test_separate_file_downmixes_and_resamples(tmp_path: Path, models: dict[str, Path],
                                               caplog: pytest.LogCaptureFixture) -> None:
    mix, _ = two_voices(1.0, rate=16000)
    stereo = tmp_path / "talk.wav"
    sf.write(str(stereo), np.stack([mix, 0.5 * mix], axis=1), 16000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="dpcl.separate"):
        written = separate_file(stereo, models["dpcl"], models["stats"], tmp_path / "out")
    assert written == [tmp_path / "out" / "talk_s1.wav", tmp_path / "out" / "talk_s2.wav"]
    for path in written:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames) == (8000, 1, 8000)
    assert "downmixed 2 channels to mono" in caplog.text and "resampled 16000 Hz to 8000 Hz" in caplog.text

    with pytest.raises(AudioError, match="not found"):
        separate_file(tmp_path / "missing.wav", models["dpcl"], models["stats"], tmp_path / "out")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(AudioError, match="not a valid sound file"):
        separate_file(broken, models["dpcl"], models["stats"], tmp_path / "out")
    with pytest.raises(DpclError, match="not a dpcl model file"):
        separate_file(stereo, models["stats"], models["stats"], tmp_path / "out")


def test_separate_takes_a_training_folder_as_the_model(tmp_path: Path, models: dict[str, Path]) -> None:
    training = tmp_path / "models" / "dpcl"
    training.mkdir(parents=True)
    shutil.copy(models["dpcl"], training / "model.pt")
    mix, _ = two_voices(0.5)
    sf.write(str(tmp_path / "talk.wav"), mix, RATE, subtype="FLOAT")
    assert [p.name for p in separate_file(tmp_path / "talk.wav", training, models["stats"], tmp_path / "out")] == [
        "talk_s1.wav", "talk_s2.wav"]
    with pytest.raises(DpclError, match="folder without a model.pt"):
        Separator(tmp_path / "models", models["stats"])


@pytest.mark.parametrize("problem", ["out_is_a_file", "out_under_a_file", "s2_is_a_folder"])
def test_a_bad_output_is_refused_before_work_and_nothing_half_written(tmp_path: Path, models: dict[str, Path],
                                                                      problem: str) -> None:
    # Was: a traceback after the whole separation, and with `talk_s2.wav` a folder, `talk_s1.wav`
    # written without its twin.
    mix, _ = two_voices(0.5)
    sf.write(str(tmp_path / "talk.wav"), mix, RATE, subtype="FLOAT")
    out = tmp_path / "out"
    if problem == "out_is_a_file":
        out.write_text("a file\n")
        message = "is a file: give a folder"
    elif problem == "out_under_a_file":
        (tmp_path / "notes").write_text("a file\n")
        out = tmp_path / "notes" / "out"
        message = "notes is not a folder"
    else:
        (out / "talk_s2.wav").mkdir(parents=True)
        message = "talk_s2.wav exists and is a folder"
    with pytest.raises(DpclError, match=message):
        separate_file(tmp_path / "talk.wav", models["dpcl"], models["stats"], out)
    if out.is_dir():
        assert sorted(p.name for p in out.iterdir()) == (["talk_s2.wav"] if problem == "s2_is_a_folder" else [])


def test_a_truncated_wav_is_refused_with_both_sizes(tmp_path: Path, models: dict[str, Path]) -> None:
    # libsndfile reads a cut-off WAV to its end without a word; the header says how long it was.
    mix, _ = two_voices(1.0)
    whole = tmp_path / "whole.wav"
    write_wav(whole, mix, RATE)
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    assert sf.info(str(cut)).frames > 0  # what made it pass silently
    with pytest.raises(AudioError, match=r"cut.wav is truncated: its header announces 16000 bytes of samples, "
                                         r"the file holds 7978"):
        separate_file(cut, models["dpcl"], models["stats"], tmp_path / "out")
    assert not (tmp_path / "out" / "cut_s1.wav").exists()


def test_separate_a_folder_skips_what_it_cannot_read_and_says_so(tmp_path: Path, models: dict[str, Path],
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    from dpcl.cli import main

    recordings = tmp_path / "recordings"
    recordings.mkdir()
    for i, name in enumerate(["a.wav", "b.flac"]):
        mix, _ = two_voices(0.5 + 0.25 * i)
        sf.write(str(recordings / name), mix, RATE)
    (recordings / "notes.txt").write_text("not audio, not picked up\n")
    (recordings / "c.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    result = separate_folder(recordings, models["dpcl"], models["stats"], tmp_path / "out")
    assert (result.files, [p.name for p, _ in result.refused]) == (3, ["c.wav"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_s1.wav", "a_s2.wav", "b_s1.wav", "b_s2.wav"]

    # From the command line, outside any project (no params.yaml): the model carries its params.
    (recordings / "c.wav").unlink()
    training = tmp_path / "training"
    training.mkdir()
    shutil.copy(models["dpcl"], training / "model.pt")
    monkeypatch.chdir(tmp_path)
    assert main(["separate", str(recordings), "--model", str(training), "--stats", str(models["stats"]),
                 "--out", str(tmp_path / "cli")]) == 0
    assert "separated 2 of 2 files" in capsys.readouterr().out
    assert len(list((tmp_path / "cli").iterdir())) == 4
    with pytest.raises(DpclError, match="holds no sound files"):
        separate_folder(training, models["dpcl"], models["stats"], tmp_path / "x")


# --------------------------------------------------------------------------- the stage


NAMES = ["a_1.5_b_-1.5.wav", "c_0.2_d_-0.2.wav", "e_2_f_-2.wav"]


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/mix/min/tt in miniature: mix/, s1/, s2/ and mixtures.csv."""
    split = tmp_path_factory.mktemp("mix") / "min" / "tt"
    for i, name in enumerate(NAMES):
        mix, sources = two_voices(0.5 + 0.25 * i)
        write_wav(split / "mix" / name, mix, RATE)
        for c, source in enumerate(sources):
            write_wav(split / f"s{c + 1}" / name, source, RATE)
    pd.DataFrame({"name": NAMES}).to_csv(split / "mixtures.csv", index=False)
    return split


def test_run_separate_ibm_writes_the_tree(tmp_path: Path, split_dir: Path) -> None:
    out = tmp_path / "ibm"
    summary = run_separate(tiny_params(), "ibm", split_dir, None, None, out)
    for c in (1, 2):
        assert sorted(p.name for p in (out / f"s{c}").iterdir()) == sorted(NAMES)
    assert summary["mixtures"] == 3 and summary["rescaled"] == []
    assert json.loads((out / "summary.json").read_text())["method"] == "ibm"
    example = np.load(out / "example.npz")
    assert str(example["name"]) == NAMES[0]
    n_frames = STFT.n_frames(4000)
    assert example["logmag"].shape == (n_frames, 129) and example["masks"].shape == (2, n_frames, 129)
    assert np.array_equal(example["masks"].argmax(axis=0), example["ibm_target"])
    assert "embeddings" not in example
    mix = sf.read(str(split_dir / "mix" / NAMES[0]))[0]
    refs = np.stack([sf.read(str(split_dir / f"s{c}" / NAMES[0]))[0] for c in (1, 2)])
    ibm = oracle_masks(np.abs([STFT.analyse(r) for r in refs]), "ibm")
    expected = apply_masks(STFT.analyse(mix), ibm, STFT, len(mix))
    written = np.stack([sf.read(str(out / f"s{c}" / NAMES[0]))[0] for c in (1, 2)])
    assert np.max(np.abs(written - expected)) <= 1 / 2**15  # the IBM estimates, in order, 16-bit

    run_separate(tiny_params(), "irm", split_dir, None, None, tmp_path / "irm")
    np.testing.assert_allclose(np.load(tmp_path / "irm" / "example.npz")["masks"].sum(axis=0), 1.0, atol=1e-6)


def test_run_separate_dpcl_saves_embeddings(tmp_path: Path, split_dir: Path, models: dict[str, Path]) -> None:
    out = tmp_path / "dpcl"
    run_separate(tiny_params(), "dpcl", split_dir, models["dpcl"], models["stats"], out)
    assert sorted(p.name for p in (out / "s2").iterdir()) == sorted(NAMES)
    example = np.load(out / "example.npz")
    n_frames = STFT.n_frames(4000)
    assert example["embeddings"].shape == (n_frames * 129, 4) and example["active"].dtype == bool
    run_separate(tiny_params(), "unipolar_sigmoid-pit", split_dir, models["baseline"], models["stats"], tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b" / "s1").iterdir()) == sorted(NAMES)
    assert "embeddings" not in np.load(tmp_path / "b" / "example.npz")
    with pytest.raises(DpclError, match="needs a model file"):
        run_separate(tiny_params(), "dpcl", split_dir, None, None, tmp_path / "x")
    with pytest.raises(DpclError, match="baseline model"):
        run_separate(tiny_params(), "dpcl", split_dir, models["baseline"], models["stats"], tmp_path / "x")
    with pytest.raises(DpclError, match="not a dpcl model file"):
        run_separate(tiny_params(), "dpcl", split_dir, models["stats"], models["stats"], tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_separate_params_are_validated() -> None:
    assert Params().separate == SeparateConfig()
    with pytest.raises(DpclError, match="separate.silent_bins"):
        params_from_dict({"separate": {"silent_bins": "loudest"}})
    with pytest.raises(DpclError, match="separate.n_init"):
        params_from_dict({"separate": {"n_init": 0}})
