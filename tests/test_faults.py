"""Faults a user meets, end to end through a stage: each stops with a message that says what to do,
and every output an earlier run made is left as it was.

Covered elsewhere: a corrupt wav in a corpus folder (tests/test_corpus.py), in the mixture tree
(tests/test_mixing.py) and among estimates (tests/test_evaluate.py); an empty speaker folder,
skipped with a warning naming it (tests/test_corpus.py); a Debian data package apt cannot fetch
(tests/test_corpus_debian.py); a pipeline interrupted mid-training (tests/test_pipeline.py).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import tree_digest
from dpcl.tracking import TrackingError
from dpcl.train_stages import train_dpcl
from test_training import features_dir, tiny_params  # noqa: F401 (features_dir is a fixture)

DPCL = Path(sys.executable).parent / "dpcl"


def test_a_missing_debian_tool_stops_the_corpus_stage_and_keeps_the_earlier_corpus(tmp_path):
    earlier = tmp_path / "corpus"
    (earlier / "espeak-m1").mkdir(parents=True)
    (earlier / "manifest.csv").write_text("speaker,path\nespeak-m1,espeak-m1/0.wav\n")
    before = tree_digest(earlier)
    params = tmp_path / "espeak.yaml"
    params.write_text(yaml.safe_dump({"corpus": {"sources": ["espeak"], "test_speakers": [],
                                                 "n_test_speakers": 2}}))
    # A PATH without /usr/bin: espeak-ng is not there, as on a machine without the Debian package.
    done = subprocess.run([str(DPCL), "corpus", "--params", "params.yaml", "--params", str(params),
                           "--out", str(earlier)], cwd=Path(__file__).parents[1],
                          env={"PATH": str(tmp_path / "no-bin"), "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "needs espeak-ng: install the Debian package `espeak-ng`" in done.stderr
    assert "Traceback" not in done.stderr
    assert tree_digest(earlier) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("corpus")] == ["corpus"]  # no staging left


def test_a_tracking_store_held_locked_stops_training_and_keeps_the_model(features_dir, tmp_path):
    params = tiny_params(tmp_path)
    out = tmp_path / "model"
    train_dpcl(params, features_dir, out, tmp_path / "checkpoints")
    before = tree_digest(out)

    lock_file = tmp_path / "mlflow.db.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"handle = open({str(lock_file)!r}, 'a')\n"
        "fcntl.flock(handle, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        stuck = dataclasses.replace(params, tracking=dataclasses.replace(params.tracking, lock_timeout_s=1.0))
        with pytest.raises(TrackingError, match=r"stayed locked for 1 s \(lock file mlflow.db.lock\)"):
            train_dpcl(stuck, features_dir, out, tmp_path / "checkpoints-again")
    finally:
        holder.kill()
        holder.wait()
    assert tree_digest(out) == before


def test_a_read_only_tracking_store_is_one_line_naming_the_file(tmp_path):
    # Root writes through any mode bits, so as root the stage runs as `nobody` (setpriv), as a
    # teammate without write access to a shared store would. The store is made as the owner.
    import os
    import shutil
    import stat
    import tempfile

    from dpcl.config import TrackingConfig
    from dpcl.tracking import Run

    as_other_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: no way to be a user the modes bind")
        as_other_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    with tempfile.TemporaryDirectory(dir="/tmp") as shared:  # tmp_path's parents are private to root
        shared = Path(shared)
        shared.chmod(0o755)
        db = shared / "mlflow.db"
        cfg = TrackingConfig(uri=f"sqlite:///{db}", artifact_location=str(shared / "artifacts"))
        Run(cfg, "made-by-the-owner").finish()
        db.chmod(0o444)
        before = db.read_bytes()
        overlay = shared / "store.yaml"
        overlay.write_text(yaml.safe_dump({"tracking": {"uri": cfg.uri, "artifact_location": cfg.artifact_location}}))
        overlay.chmod(0o644)
        done = subprocess.run([*as_other_user, sys.executable, "-m", "dpcl.cli", "ui", "--params", "params.yaml",
                               "--params", str(overlay), "--port", "5987"],
                              cwd=Path(__file__).parents[1], env={**os.environ, "HOME": str(shared)},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert lines == [f"dpcl ui: error: the MLflow store {db} is read-only: make it writable "
                         f"(chmod u+w {db}) or point tracking.uri at another store"], done.stderr
        assert db.read_bytes() == before and stat.S_IMODE(db.stat().st_mode) == 0o444
