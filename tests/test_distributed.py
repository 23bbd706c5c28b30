"""Training on several processes: the real `torchrun` with two CPU ranks on the gloo backend.

What would be wrong if DDP were not really at work, and which check catches it:
- ranks training on the same examples: each rank's batch count per epoch is half of one process's;
- gradients not averaged: the ranks' final weights differ (each logs a hash of its own), and the
  recorded validation loss (summed over ranks) differs from one process scoring the saved model;
- every rank writing: more than one MLflow run, or doubled metric steps and history rows.
"""

from __future__ import annotations

import io
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ROOT, run
from dpcl.audio import write_wav
from dpcl.chunks import ChunkDataset
from dpcl.config import load_params
from dpcl.distributed import World, deal, from_env, shard, weights_digest
from dpcl.features import run_features
from dpcl.models.build import load_model
from dpcl.objectives import DeepClusteringObjective
from dpcl.train_loop import evaluate

RATE = 8000
CHUNK, BATCH, EPOCHS = 50, 2, 2
DIGEST = r"rank (\d) of 2: final weights sha256 (\w+)"  # logged by every rank at the end of `fit`


@dataclass
class Trained:
    """What the two torchrun runs left: their folder, params files, logs and first outputs."""

    tmp: Path
    files: list[Path]
    log: str  # stdout + stderr of the training run
    resume_log: str  # ... and of the rerun that found the finished checkpoint
    model: bytes  # model.pt and history.csv as the training run wrote them
    history: str


def voice(f0: float, rng: np.random.Generator) -> np.ndarray:
    """One second of a harmonic 'voice' with a syllable-rate envelope."""
    t = np.arange(RATE) / RATE
    signal = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 12) if f0 * k < 3800)
    return 0.2 * signal * np.clip(np.sin(2 * np.pi * rng.uniform(2, 4) * t + rng.uniform(0, 6)), 0, None)


def params_files(tmp: Path) -> list[Path]:
    """The project's params and CI profile, then a tiny network, one phase and a private MLflow store."""
    tiny = tmp / "tiny.yaml"
    tiny.write_text(f"""
dpcl:
  sizes: {{default: {{hidden: 16, layers: 1, dropout: 0.0}}}}
  embedding_dim: 8
  training:
    phases: [{{chunk_frames: {CHUNK}, epochs: {EPOCHS}, batch_size: {BATCH}, learning_rate: 3.0e-3}}]
    max_batches_per_epoch: 0
    max_val_batches: 0
    early_stopping_patience: 0
    device: cpu
    selection: loss  # the fixture has features only: no cv mixtures to separate for SDRi
tracking: {{uri: "sqlite:///{tmp / 'mlflow.db'}", artifact_location: "{tmp / 'artifacts'}"}}
""")
    return [ROOT / "params.yaml", ROOT / "profiles" / "ci.yaml", tiny]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Features built by the real stage, then `torchrun --nproc_per_node 2 -m dpcl.cli train-dpcl` twice.

    The second run finds the finished checkpoint: every rank must read it (a rank that trained
    anyway would wait forever for the others' gradients) and rank 0 writes the outputs again.
    """
    tmp = tmp_path_factory.mktemp("ddp")
    files = params_files(tmp)
    rng = np.random.default_rng(0)
    for split, n in (("tr", 8), ("cv", 4), ("tt", 2)):
        names = [f"u{split}{i}_0_v{split}{i}_0.wav" for i in range(n)]
        for name in names:
            s1, s2 = voice(rng.uniform(100, 140), rng), voice(rng.uniform(220, 300), rng)
            for folder, signal in (("s1", s1), ("s2", s2), ("mix", s1 + s2)):
                write_wav(tmp / "mix" / "min" / split / folder / name, signal, RATE)
        pd.DataFrame({"name": names}).to_csv(tmp / "mix" / "min" / split / "mixtures.csv", index=False)
    run_features(load_params(files), tmp / "mix", tmp / "features", workers=1)

    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "dpcl.cli", "train-dpcl",
           *[arg for f in files for arg in ("--params", str(f))], "--features", str(tmp / "features"),
           "--out", str(tmp / "model"), "--checkpoints", str(tmp / "checkpoints"), "--threads", "1"]
    logs = []
    for attempt in ("train", "resume"):
        started = time.perf_counter()
        result = run(cmd, cwd=tmp, timeout=300)
        print(f"torchrun {attempt}: {time.perf_counter() - started:.1f} s")
        logs.append(result.stdout + result.stderr)
        if attempt == "train":
            model, history = (tmp / "model" / "model.pt").read_bytes(), (tmp / "model" / "history.csv").read_text()
    return Trained(tmp, files, logs[0], logs[1], model, history)


def test_shards_are_disjoint_equal_and_cover_the_order():
    order = [7, 3, 9, 0, 4]
    parts = [shard(order, World(rank, 2)) for rank in range(2)]
    assert parts == [[7, 9, 4], [3, 0, 7]]  # padded by wrapping: both ranks take 3 steps
    assert sorted(parts[0] + parts[1][:-1]) == sorted(order)  # disjoint but for the one repeat
    assert shard(order, World()) == order
    assert deal([[0], [1], [2]], World(1, 2)) == [[1]]
    assert from_env({}) == World() and from_env({"WORLD_SIZE": "1", "RANK": "0"}) == World()
    assert from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == World(3, 4, 1)


@pytest.mark.slow
def test_two_ranks_share_batches_and_stay_in_step(trained):
    import mlflow

    tmp, output = trained.tmp, trained.log
    params = load_params(trained.files)
    cfg = params.dpcl.training
    stats = tmp / "features" / "stats.json"

    # Each rank took half of one process's batches, every epoch.
    n_train = len(ChunkDataset(tmp / "features" / "tr.h5", stats, CHUNK))
    single = math.ceil(n_train / BATCH)
    batches = {(int(r), int(e)): int(k) for r, e, k in
               re.findall(r"rank (\d) of 2: phase 1 epoch (\d+): (\d+) training batches", output)}
    assert sorted(batches) == [(r, e) for r in (0, 1) for e in range(1, EPOCHS + 1)], output
    assert set(batches.values()) == {math.ceil(math.ceil(n_train / 2) / BATCH)}, (batches, single)
    assert 2 * batches[0, 1] in (single, single + 1)

    # Both ranks ended with the very weights that were saved.
    digests = dict(re.findall(DIGEST, output))
    assert set(digests) == {"0", "1"}, output
    (tmp / "first.pt").write_bytes(trained.model)
    model, _ = load_model(tmp / "first.pt")
    assert digests["0"] == digests["1"] == weights_digest(model)
    assert all(torch.isfinite(p).all() for p in model.state_dict().values())

    # The recorded validation loss (summed over ranks) is what one process computes for the model.
    history = pd.read_csv(io.StringIO(trained.history))
    assert list(history["epoch"]) == list(range(1, EPOCHS + 1))
    val_set = ChunkDataset(tmp / "features" / "cv.h5", stats, CHUNK)
    objective = DeepClusteringObjective(params.mix.n_speakers, params.dpcl.loss_weights)  # as train-dpcl builds it
    single_val = evaluate(model, objective, val_set, BATCH, cfg, torch.device("cpu"))
    assert history["val_loss"].min() == pytest.approx(single_val, rel=1e-6)

    # Rank 0 alone wrote: one output, one checkpoint, one MLflow run with one value per epoch.
    assert sorted(p.name for p in (tmp / "model").iterdir()) == ["history.csv", "metrics.json", "model.pt"]
    assert len(list((tmp / "checkpoints").iterdir())) == 1
    client = mlflow.tracking.MlflowClient(tracking_uri=params.tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name(params.tracking.experiment).experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["world_size"] == "2"
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "val_loss")] == list(range(EPOCHS))


@pytest.mark.slow
def test_a_rerun_resumes_the_finished_checkpoint_on_every_rank(trained):
    import mlflow

    again = trained.resume_log
    assert "resuming from" in again and "training batches" not in again, again
    digests = dict(re.findall(DIGEST, again))
    assert digests == dict(re.findall(DIGEST, trained.log)) and set(digests) == {"0", "1"}, again
    model, _ = load_model(trained.tmp / "model" / "model.pt")
    assert weights_digest(model) == digests["0"]
    assert (trained.tmp / "model" / "history.csv").read_text() == trained.history
    uri = load_params(trained.files).tracking.uri
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("dpcl").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # the checkpoint's run, continued
