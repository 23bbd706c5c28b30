"""Shared fixtures: a throw-away copy of the project for tests that run Snakemake or DVC."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_WSJ0_2MIX = ROOT.parent / "shared" / "wsj0-2mix"


def project_files() -> list[str]:
    """Files a fresh clone would have (tracked, plus new files not git-ignored)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line and (ROOT / line).is_file()]


def tool_env() -> dict[str, str]:
    """Environment for subprocesses: the venv's tools first on PATH, no analytics, git identity."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="dpcl-test", GIT_AUTHOR_EMAIL="test@example.invalid",
               GIT_COMMITTER_NAME="dpcl-test", GIT_COMMITTER_EMAIL="test@example.invalid")
    return env


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` -> its sha256: equal digests mean an output was left as it was."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def copy_project(dest: Path) -> Path:
    """Copy the project's files into `dest`, as a fresh clone would have them."""
    for rel in project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    return dest


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A copy of the project's files in a fresh folder, as a fresh clone would have them."""
    return copy_project(tmp_path / "project")


def run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a real tool; on failure show its output in the assertion message."""
    result = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result
