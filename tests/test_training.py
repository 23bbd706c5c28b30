"""Training: a tiny run learns, an interrupted run resumes exactly, MLflow records it all."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dpcl.audio import write_wav
from dpcl.chunks import ChunkDataset
from dpcl.config import params_from_dict
from dpcl.features import run_features
from dpcl.models.build import build_model, load_model
from dpcl.objectives import DeepClusteringObjective
from dpcl.train_loop import fit
from dpcl.train_stages import train_baseline, train_dpcl

RATE = 8000


def harmonic(f0: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A voiced-speech-like source: harmonics of f0 with a syllable-rate envelope and pauses."""
    t = np.arange(int(seconds * RATE)) / RATE
    signal = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 12) if f0 * k < 3800)
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 4) * t + rng.uniform(0, 6)), 0, None)
    return 0.2 * signal * envelope


@pytest.fixture(scope="module")
def features_dir(tmp_path_factory):
    """Features of two-talker mixtures of a low and a high 'voice', built by the real stages."""
    root = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    for split, n in (("tr", 24), ("cv", 6), ("tt", 2)):
        rows = []
        for i in range(n):
            name = f"u{split}{i}_0_v{split}{i}_0.wav"
            s1, s2 = harmonic(rng.uniform(100, 140), 1.0, rng), harmonic(rng.uniform(220, 300), 1.0, rng)
            for folder, signal in (("s1", s1), ("s2", s2), ("mix", s1 + s2)):
                write_wav(root / "mix" / "min" / split / folder / name, signal, RATE)
            rows.append({"name": name})
        pd.DataFrame(rows).to_csv(root / "mix" / "min" / split / "mixtures.csv", index=False)
    run_features(params_from_dict({}), root / "mix", root / "features", workers=1)
    return root / "features"


def tiny_params(tmp_path, **training):
    phases = training.pop("phases", [{"chunk_frames": 50, "epochs": 3, "batch_size": 4, "learning_rate": 3e-3}])
    train = {"phases": phases, "device": "cpu", "early_stopping_patience": 0, **training}
    return params_from_dict({
        "dpcl": {"sizes": {"default": {"hidden": 16, "layers": 1}}, "embedding_dim": 8, "training": train},
        "baselines": {"hidden": [32], "context": 1, "transfer_functions": ["unipolar_sigmoid", "threshold"],
                      "training": train},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "artifact_location": str(tmp_path / "artifacts")},
    })


def test_chunks_pad_with_zero_weight_and_restore_linear_magnitude(features_dir):
    data = ChunkDataset(features_dir / "tr.h5", features_dir / "stats.json", chunk_frames=100)
    item = data[0]
    assert item["logmag"].shape == (100, 129)
    n = 1 + RATE // 64  # frames of a 1 s utterance
    assert torch.all(item["weight"][n:] == 0) and item["weight"][:n].sum() > 0
    assert torch.all(item["mixture_mag"][:n] > 0)


def test_tiny_dpcl_run_lowers_the_loss_and_is_tracked(features_dir, tmp_path):
    import mlflow

    params = tiny_params(tmp_path)
    state = train_dpcl(params, features_dir, tmp_path / "model", tmp_path / "checkpoints")
    history = pd.read_csv(tmp_path / "model" / "history.csv")
    assert len(history) == 3
    assert history["train_loss"].iloc[-1] < 0.8 * history["train_loss"].iloc[0]
    assert state.finished and len(state.history) == 3
    model, meta = load_model(tmp_path / "model" / "model.pt")
    assert meta["kind"] == "dpcl" and model(torch.zeros(1, 10, 129)).shape == (1, 10 * 129, 8)

    client = mlflow.tracking.MlflowClient(tracking_uri=params.tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name("dpcl").experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name.startswith("dpcl-default-1x16-D8") and run.info.status == "FINISHED"
    assert run.data.params["dpcl.embedding_dim"] == "8"
    assert run.data.tags["device"] == "cpu" and run.data.tags["data_version"]
    val = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in val] == [0, 1, 2]
    assert {"train_loss", "learning_rate", "epoch_seconds"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.pt", "history.csv", "metrics.json"} <= artifacts


def chunk_datasets(features_dir):
    """`fit`'s datasets(chunk_frames) over the fixture's tr and cv features."""
    stats = features_dir / "stats.json"

    def datasets(chunk):
        return ChunkDataset(features_dir / "tr.h5", stats, chunk), ChunkDataset(features_dir / "cv.h5", stats, chunk)

    return datasets


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_interrupted_training_resumes_exactly(features_dir, tmp_path, ema_decay):
    # Two curriculum phases, killed in the second: resuming must cross the phase boundary state too,
    # and with a moving average of the weights, continue the same average.
    params = tiny_params(tmp_path, ema_decay=ema_decay,
                         phases=[{"chunk_frames": 50, "epochs": 2, "batch_size": 4, "learning_rate": 3e-3},
                                 {"chunk_frames": 100, "epochs": 2, "batch_size": 2, "learning_rate": 1e-3}])
    datasets = chunk_datasets(features_dir)

    def trained(checkpoint, stop_after=None):
        torch.manual_seed(0)
        model = build_model(params, "dpcl")
        seen = []

        def on_epoch(record, state):
            seen.append(record)
            if stop_after is not None and len(seen) == stop_after:
                raise KeyboardInterrupt  # as a kill would, right after the checkpoint is written

        try:
            state = fit(model, DeepClusteringObjective(2), datasets, params.dpcl.training, checkpoint, {"k": 1},
                        on_epoch=on_epoch)
        except KeyboardInterrupt:
            return None, None
        return model, state

    straight, straight_state = trained(tmp_path / "a.pt")
    assert trained(tmp_path / "b.pt", stop_after=3) == (None, None)  # killed in phase 2
    resumed, resumed_state = trained(tmp_path / "b.pt")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert [r.val_loss for r in resumed_state.history] == [r.val_loss for r in straight_state.history]
    assert len(resumed_state.history) == 4


def test_probe_sees_the_kept_average_each_epoch_and_changes_nothing(features_dir, tmp_path):
    # The learning-curve benchmark scores the test split through `probe`: it must see the moving
    # average (what a training keeps), once per epoch, and leave the trained weights as they were.
    params = tiny_params(tmp_path, ema_decay=0.9,
                         phases=[{"chunk_frames": 50, "epochs": 3, "batch_size": 4, "learning_rate": 3e-3}])
    datasets = chunk_datasets(features_dir)

    def trained(checkpoint, probe=None):
        torch.manual_seed(0)
        model = build_model(params, "dpcl")
        fit(model, DeepClusteringObjective(2), datasets, params.dpcl.training, checkpoint, {"k": 1}, probe=probe)
        return model

    seen = []

    def probe(model, record):
        seen.append((record.step, {k: v.clone() for k, v in model.state_dict().items()}))
        for weight in model.parameters():  # a careless probe: the training must not see this
            weight.data.add_(1.0)

    plain, probed = trained(tmp_path / "a.pt"), trained(tmp_path / "b.pt", probe)
    assert [step for step, _ in seen] == [0, 1, 2]
    for (name, a), b in zip(plain.state_dict().items(), probed.state_dict().values()):
        assert torch.equal(a, b), name
    # The last epoch's probe saw the moving average the checkpoint ends with, not the trained weights.
    final_average = torch.load(tmp_path / "b.pt", weights_only=False)["average"]["average"]
    for name, value in final_average.items():
        assert torch.equal(seen[-1][1][name], value), name


@pytest.mark.parametrize("run", ["unipolar_sigmoid-pit", "threshold-fixed"])
def test_baselines_train_with_each_objective(features_dir, tmp_path, run):
    params = tiny_params(tmp_path)
    train_baseline(params, run, features_dir, tmp_path / run, tmp_path / "checkpoints")
    history = pd.read_csv(tmp_path / run / "history.csv")
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    model, meta = load_model(tmp_path / run / "model.pt")
    assert meta["transfer"] == run.split("-")[0] and meta["objective"] == run.split("-")[1]
    masks = model(torch.zeros(1, 7, 129))
    assert masks.shape == (1, 7, 129, 2)


def test_unknown_baseline_is_a_clear_error(features_dir, tmp_path):
    from dpcl.errors import DpclError

    with pytest.raises(DpclError, match="unknown baseline 'sigmoid-pit'"):
        train_baseline(tiny_params(tmp_path), "sigmoid-pit", features_dir, tmp_path / "x", tmp_path / "c")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: torch.cuda.is_available() is False")
def test_training_runs_on_cuda(features_dir, tmp_path):
    params = tiny_params(tmp_path, device="cuda", mixed_precision=True)
    train_dpcl(params, features_dir, tmp_path / "model", tmp_path / "checkpoints")
    assert '"device": "cuda' in (tmp_path / "model" / "metrics.json").read_text()
