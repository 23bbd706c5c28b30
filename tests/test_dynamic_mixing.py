"""Dynamic mixing and augmentation: seeded, never one group twice, the recipe's levels and gains,
exact resume, speed perturbation that makes a new speaker."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dpcl.activlev import active_level
from dpcl.audio import write_wav
from dpcl.augment import perturbed_speaker, speed_perturb, telephone_band
from dpcl.config import AugmentationConfig, DynamicMixingConfig, FeaturesConfig, params_from_dict
from dpcl.dynamic_mixing import DynamicMixDataset, DynamicMixError, UtterancePool
from dpcl.features import run_features
from dpcl.train_loop import fit
from dpcl.models.build import build_model
from dpcl.objectives import DeepClusteringObjective
from dpcl.chunks import ChunkDataset

RATE = 8000
# speaker -> (f0, group, kind): two characters of one cast share a group.
SPEAKERS = {"cast-a": (110, "cast", "real"), "cast-b": (210, "cast", "real"), "solo-c": (150, "solo-c", "real"),
            "solo-d": (250, "solo-d", "real"), "synth-e": (130, "synth-e", "synthetic")}


def voice(f0: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    signal = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 12) if f0 * k < 3800)
    return 0.2 * signal * np.clip(np.sin(2 * np.pi * rng.uniform(2, 4) * t), 0.05, None)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    rows = []
    for speaker, (f0, group, kind) in SPEAKERS.items():
        for k in range(6):
            rel = f"{speaker}/{speaker}-{k:04d}.wav"
            samples = voice(f0, rng.uniform(0.8, 1.6), rng)
            write_wav(root / rel, samples, RATE)
            rows.append({"speaker": speaker, "utterance": f"{speaker}-{k:04d}", "path": rel,
                         "duration": len(samples) / RATE, "source": "test", "language": "xx", "sex": "unknown",
                         "kind": kind, "group": group, "identity": "known", "split": "tr" if k < 5 else "cv"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def dataset(corpus: Path, chunk_frames: int = 400, length: int = 64, **cfg) -> DynamicMixDataset:
    stats = (np.zeros(129), np.ones(129))
    return DynamicMixDataset(UtterancePool.from_corpus(corpus, RATE), length, chunk_frames,
                             DynamicMixingConfig(enabled=True, **cfg), FeaturesConfig(), stats,
                             max_gain_db=2.5, peak=0.9, seed=7)


def test_draws_repeat_from_the_seed_and_change_with_the_epoch(corpus: Path) -> None:
    a, b = dataset(corpus), dataset(corpus)
    for item in (0, 5, 63):
        assert torch.equal(a[item]["logmag"], b[item]["logmag"])
    before = a[3]["logmag"]
    a.set_epoch(0, 1)
    assert not torch.equal(before, a[3]["logmag"])
    a.set_epoch(0, 0)
    assert torch.equal(before, a[3]["logmag"])
    item = a[0]
    assert item["logmag"].shape == (400, 129) and item["target"].dtype == torch.int64
    assert set(item) == {"logmag", "mixture_mag", "target", "weight"}


def test_a_mixture_never_joins_one_speaker_group_twice(corpus: Path) -> None:
    data = dataset(corpus, length=300, real_pair_share=0.5)
    seen = set()
    for item in range(300):
        _, _, drawn = data.draw(item)
        assert drawn[0].group != drawn[1].group
        seen.add(frozenset(d.speaker for d in drawn))
    assert len(seen) >= 7  # the draws cover many pairs, not a few
    with pytest.raises(DynamicMixError, match="at least 2 speaker groups"):
        UtterancePool((np.zeros(10, np.float32),) * 2, ("a", "b"), ("g", "g"), (True, True), RATE)


def test_real_pair_share_sets_how_many_pairs_are_real_only(corpus: Path) -> None:
    pool = UtterancePool.from_corpus(corpus, RATE)
    for share, expected in ((1.0, 1.0), (0.0, 0.0)):
        data = dataset(corpus, length=100, real_pair_share=share)
        real = [all(pool.real[d.utterance] for d in data.draw(i)[2]) for i in range(100)]
        assert np.mean(real) == expected


def test_gains_and_levels_follow_the_recipe(corpus: Path) -> None:
    """Sources whole inside a long chunk: their P.56 levels differ by exactly the drawn 2x dB."""
    data = dataset(corpus, chunk_frames=400)  # 3.2 s > every utterance: no crop, a random offset
    for item in range(10):
        mix, sources, drawn = data.draw(item)
        assert drawn[0].gain_db == -drawn[1].gain_db and 0 <= drawn[0].gain_db <= 2.5
        whole = [np.trim_zeros(s) for s in sources]  # each source as placed: the utterance, scaled
        difference = 10 * math.log10(active_level(whole[0], RATE).level / active_level(whole[1], RATE).level)
        assert difference == pytest.approx(2 * drawn[0].gain_db, abs=0.05)
        np.testing.assert_allclose(mix, sources.sum(axis=0))
        assert max(np.abs(mix).max(), np.abs(sources).max()) == pytest.approx(0.9)
    short = dataset(corpus, chunk_frames=50)  # 0.4 s: a crop of each source
    mix, sources, _ = short.draw(0)
    assert len(mix) == 49 * 64 and np.abs(sources).min(axis=1).max() >= 0  # no error, right length


def test_speed_perturbation_changes_duration_and_names_a_new_speaker(corpus: Path) -> None:
    samples = voice(120, 2.0, np.random.default_rng(1))
    for factor in (0.9, 1.1):
        assert len(speed_perturb(samples, factor)) == pytest.approx(len(samples) / factor, abs=2)
    assert perturbed_speaker("fotaq-joe", 0.9) == "fotaq-joe-sp0.9" and perturbed_speaker("x", 1.0) == "x"
    data = dataset(corpus, augmentation=AugmentationConfig(speed_factors=(0.9, 1.1), speed_probability=1.0))
    drawn = [d for i in range(20) for d in data.draw(i)[2]]
    assert {d.speed for d in drawn} == {0.9, 1.1}
    assert all(d.speaker.endswith(f"-sp{d.speed:g}") for d in drawn)
    assert all(d.group == SPEAKERS[d.speaker.rsplit("-sp", 1)[0]][1] for d in drawn)  # same person, same group


def test_telephone_band_removes_low_and_high_frequencies() -> None:
    t = np.arange(RATE) / RATE
    low, mid = np.sin(2 * np.pi * 100 * t), np.sin(2 * np.pi * 1000 * t)
    assert np.std(telephone_band(low, RATE)[2000:]) < 0.1 * np.std(low)
    assert np.std(telephone_band(mid, RATE)[2000:]) == pytest.approx(np.std(mid), rel=0.05)


def test_interrupted_dynamic_mixing_run_resumes_to_the_same_weights(corpus: Path, tmp_path: Path) -> None:
    """Two epochs straight, or one epoch, a stop, and a resume from the checkpoint: equal weights."""
    mix_root = tmp_path / "mix" / "min"
    pool = UtterancePool.from_corpus(corpus, RATE)
    for split in ("tr", "cv", "tt"):  # fixed features for validation and statistics
        rows = []
        for i in range(4):
            name = f"m{split}{i}.wav"
            s1, s2 = pool.samples[i][:6000], pool.samples[-1 - i][:6000]
            for folder, signal in (("s1", s1), ("s2", s2), ("mix", s1 + s2)):
                write_wav(mix_root / split / folder / name, signal, RATE)
            rows.append({"name": name})
        pd.DataFrame(rows).to_csv(mix_root / split / "mixtures.csv", index=False)
    run_features(params_from_dict({}), tmp_path / "mix", tmp_path / "features", workers=1)
    training = {"phases": [{"chunk_frames": 50, "epochs": 2, "batch_size": 4, "learning_rate": 3e-3}],
                "device": "cpu", "early_stopping_patience": 0,
                "dynamic_mixing": {"enabled": True, "real_pair_share": 0.5}}
    params = params_from_dict({"dpcl": {"sizes": {"default": {"hidden": 8, "layers": 1}}, "embedding_dim": 4,
                                        "training": training}})
    cfg = params.dpcl.training
    stats = (np.zeros(129), np.ones(129))
    features = tmp_path / "features"

    def datasets(chunk_frames: int):
        return (DynamicMixDataset(pool, 16, chunk_frames, cfg.dynamic_mixing, params.features, stats, 2.5, 0.9, 0),
                ChunkDataset(features / "cv.h5", features / "stats.json", chunk_frames))

    def trained(checkpoint: Path, stop_after: int | None = None):
        torch.manual_seed(0)
        model = build_model(params, "dpcl", None)

        def on_epoch(record, state):
            if stop_after is not None and len(state.history) == stop_after:
                raise KeyboardInterrupt

        try:
            state = fit(model, DeepClusteringObjective(2), datasets, cfg, checkpoint, {"x": 1}, on_epoch=on_epoch)
        except KeyboardInterrupt:
            return None, None
        return model, state

    straight, _ = trained(tmp_path / "a.pt")
    assert trained(tmp_path / "b.pt", stop_after=1) == (None, None)
    resumed, state = trained(tmp_path / "b.pt")
    assert len(state.history) == 2
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_loader_workers_change_the_speed_never_the_batches(corpus: Path) -> None:
    """Examples drawn in DataLoader worker processes, with levels measured up front, are the ones
    the training process draws itself: the same weights after an epoch."""
    import dataclasses

    pool = UtterancePool.from_corpus(corpus, RATE)
    training = {"phases": [{"chunk_frames": 50, "epochs": 1, "batch_size": 4, "learning_rate": 3e-3}],
                "device": "cpu", "early_stopping_patience": 0, "dynamic_mixing": {"enabled": True}}
    params = params_from_dict({"dpcl": {"sizes": {"default": {"hidden": 8, "layers": 1}}, "embedding_dim": 4,
                                        "training": training}})
    stats = (np.zeros(129), np.ones(129))

    def trained(workers: int, checkpoint: Path) -> dict:
        cfg = dataclasses.replace(params.dpcl.training, loader_workers=workers)

        def datasets(chunk_frames: int):
            drawn = DynamicMixDataset(pool, 16, chunk_frames, cfg.dynamic_mixing, params.features, stats, 2.5, 0.9, 0)
            if workers:
                drawn.measure_levels()
                assert len(drawn._levels) == len(pool.samples)
            held_out = DynamicMixDataset(pool, 4, chunk_frames, cfg.dynamic_mixing, params.features, stats,
                                         2.5, 0.9, 1)
            return drawn, held_out

        torch.manual_seed(0)
        model = build_model(params, "dpcl", None)
        fit(model, DeepClusteringObjective(2), datasets, cfg, checkpoint, {"workers": workers})
        return model.state_dict()

    alone, with_workers = trained(0, corpus.parent / "w0.pt"), trained(2, corpus.parent / "w2.pt")
    for key, tensor in alone.items():
        assert torch.equal(tensor, with_workers[key]), key


def test_loader_workers_must_not_be_negative() -> None:
    from dpcl.config import ConfigError

    with pytest.raises(ConfigError, match="loader_workers"):
        params_from_dict({"dpcl": {"training": {"loader_workers": -1}}})
