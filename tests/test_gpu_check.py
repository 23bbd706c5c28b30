"""benchmarks/gpu_check.py: the CPU smoke path runs for real here; the CUDA check runs where torch sees a GPU."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from conftest import ROOT, tool_env

SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
NO_GPU = "torch sees no CUDA device: the GPU check cannot run here"
ROW_KEYS = {"mode", "autocast_bf16", "steps", "seconds", "steps_per_s", "frames_per_s", "peak_memory_gib",
            "first_loss", "final_loss", "finite"}
CHECK_KEYS = {"device", "batch", "frames", "cpu_loss", "device_loss", "abs_diff", "rel_diff", "tolerance", "passed",
              "default_precision"}


@pytest.fixture(scope="module")
def gpu_check() -> ModuleType:
    """The script as a module (benchmarks/ is no package), registered so its dataclasses resolve."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


def test_cpu_smoke_writes_the_full_report(gpu_check: ModuleType, tmp_path: Path, capsys) -> None:
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--cpu-smoke", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("cuda", "device", "device_name", "torch", "cuda_version", "cudnn_version", "model", "training",
                "rows", "check", "passed", "failures"):
        assert key in result, key
    assert result["smoke"] is True and result["device"] == "cpu" and result["passed"] is True
    assert result["model"]["size"] == "paper" and result["model"]["hidden"] == 8  # the paper entry, shrunk
    assert result["model"]["n_bins"] == 129 and result["training"]["optimizer"] == "adam"
    assert [row["mode"] for row in result["rows"]] == ["fp32", "bf16"]
    for row in result["rows"]:
        assert ROW_KEYS <= set(row) and row["finite"] and row["steps"] == 2
        assert row["peak_memory_gib"] is None and row["autocast_bf16"] is False  # no GPU memory or autocast on CPU
        assert row["output_dtypes"] == {"LSTM": "float32", "Linear": "float32"}
    assert CHECK_KEYS <= set(result["check"]) and result["check"]["rel_diff"] == 0.0  # CPU against itself
    printed = capsys.readouterr().out
    assert "steps/s" in printed and "frames/s" in printed and "peak GiB" in printed


def test_a_failed_check_exits_1_with_one_line(gpu_check: ModuleType, tmp_path: Path, capsys,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_check, "RELATIVE_TOLERANCE", -1.0)  # no difference passes: the failure path runs
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--cpu-smoke", "--out", str(out)]) == 1
    assert json.loads(out.read_text())["passed"] is False  # the measurements are kept
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("GPU check FAILED: CPU and cpu losses differ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the no-CUDA path does not run")
def test_without_cuda_it_says_so_and_exits_0(gpu_check: ModuleType, tmp_path: Path, capsys) -> None:
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == gpu_check.NO_CUDA
    result = json.loads(out.read_text())
    assert result["cuda"] is False and result["measured"] is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
def test_paper_size_trains_on_cuda_and_agrees_with_the_cpu(tmp_path: Path) -> None:
    """The real check, shortened: the paper size, both modes, CPU vs CUDA within the tolerance."""
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, str(SCRIPT), "--steps", "5", "--warmup", "1", "--batch", "8", "--check-batch", "2",
           "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    result = json.loads(out.read_text())
    assert result["cuda"] is True and result["device"].startswith("cuda") and result["passed"] is True
    assert result["model"] == {**result["model"], "size": "paper", "hidden": 600, "layers": 4}
    assert result["check"]["rel_diff"] <= result["check"]["tolerance"]
    assert {row["mode"]: row["autocast_bf16"] for row in result["rows"]} == {"fp32": False, "bf16": True}
    for row in result["rows"]:
        assert row["finite"] and row["peak_memory_gib"] > 0 and row["steps_per_s"] > 0
    dtypes = {row["mode"]: row["output_dtypes"] for row in result["rows"]}
    assert dtypes["fp32"] == {"LSTM": "float32", "Linear": "float32"} and dtypes["bf16"]["Linear"] == "bfloat16"


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
def test_cuda_loss_matches_cpu_for_the_same_weights(gpu_check: ModuleType) -> None:
    """The agreement check alone, in this process, on the paper size."""
    params = gpu_check.sized_params(gpu_check.load_params([ROOT / "params.yaml"]), "paper")
    settings = gpu_check.Settings(device="cuda", size="paper", steps=1, warmup=1, batch=2, frames=100,
                                  check_batch=2, seed=0)
    check = gpu_check.device_agreement(params, settings, torch.device("cuda"))
    assert check["passed"], check
    assert check["cpu_loss"] > 0 and abs(check["cpu_loss"] - check["device_loss"]) == check["abs_diff"]
