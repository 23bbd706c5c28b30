"""When Snakemake and DVC may record each other's work, and when they must not (src/dpcl/sync.py).
The records themselves are exercised on the real pipeline by tests/test_pipeline.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import run
from dpcl import sync


@pytest.fixture
def dvc_project(tmp_path: Path) -> Path:
    """An empty git + DVC repository with a dvc.yaml, as the project is after `git clone`."""
    run(["git", "init", "-q"], cwd=tmp_path)
    run(["dvc", "init", "-q"], cwd=tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    return tmp_path


def test_syncs_only_in_a_git_and_dvc_project_without_overlays(dvc_project, tmp_path_factory, monkeypatch):
    monkeypatch.delenv(sync.CHILD_ENV, raising=False)
    assert sync.skip_reason(dvc_project, []) is None
    (dvc_project / "params.yaml").write_text("mix: {counts: {tr: 100}}\ntracking: {uri: 'sqlite:///mlflow.db'}\n")
    (dvc_project / "ci.yaml").write_text("mix: {counts: {tr: 40}}\n")
    (dvc_project / "team.yaml").write_text("tracking: {uri: 'http://mlflow.example.org:5000'}\n")
    assert "ci.yaml changes mix of params.yaml" in sync.skip_reason(dvc_project, ["ci.yaml"])
    assert sync.skip_reason(dvc_project, ["team.yaml"]) is None  # where runs are tracked changes no output
    bare = tmp_path_factory.mktemp("bare")
    assert sync.skip_reason(bare, []) == "not a DVC project"
    (bare / ".dvc").mkdir()
    (bare / "dvc.yaml").write_text("stages: {}\n")
    assert sync.skip_reason(bare, []) == "not a git repository (DVC needs one)"
    monkeypatch.setenv(sync.CHILD_ENV, "1")
    assert "sync's own Snakemake" in sync.skip_reason(dvc_project, [])


def test_overlay_runs_leave_dvc_lock_alone(dvc_project, monkeypatch, capsys):
    monkeypatch.delenv(sync.CHILD_ENV, raising=False)
    (dvc_project / "params.yaml").write_text("mix: {counts: {tr: 100}}\n")
    (dvc_project / "ci.yaml").write_text("mix: {counts: {tr: 40}}\n")
    assert sync.after_snakemake(dvc_project, 1, ["ci.yaml"]) == []
    assert "dvc.lock not updated: --configfile ci.yaml changes mix" in capsys.readouterr().err
    assert not (dvc_project / "dvc.lock").exists() and not (dvc_project / sync.STAMP).exists()


def test_a_changed_dvc_lock_is_what_makes_snakemake_adopt_dvc_outputs(dvc_project):
    assert not sync.dvc_ran_since_sync(dvc_project)  # no dvc.lock: DVC never ran
    lock = dvc_project / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages: {}\n")
    assert sync.dvc_ran_since_sync(dvc_project)  # e.g. a fresh clone: no record of agreement yet
    sync._record_agreement(dvc_project)
    assert not sync.dvc_ran_since_sync(dvc_project)
    lock.write_text("schema: '2.0'\nstages: {corpus: {cmd: dpcl corpus}}\n")
    assert sync.dvc_ran_since_sync(dvc_project)


def test_a_start_beside_a_running_snakemake_adopts_nothing(dvc_project, monkeypatch, capsys):
    # The other run's outputs may be half-written: touching them would mark them done.
    monkeypatch.delenv(sync.CHILD_ENV, raising=False)
    (dvc_project / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    locks = dvc_project / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("data/models/dpcl\n")
    assert sync.before_snakemake(dvc_project, 1, force=True) == []
    assert "another snakemake holds this project's lock" in capsys.readouterr().err
    assert not (dvc_project / sync.STAMP).exists()  # nothing recorded as agreed either
    (locks / "0.output.lock").unlink()
    assert sync.another_run(dvc_project) is None


CHAIN_SNAKEFILE = '''
from pathlib import Path
from dpcl.sync import after_snakemake, before_snakemake

configfile: "params.yaml"

if workflow.is_main_process:
    before_snakemake(Path.cwd(), workflow.cores, workflow.overwrite_configfiles)

onsuccess:
    after_snakemake(Path.cwd(), workflow.cores, workflow.overwrite_configfiles, touched=workflow.touch)

rule all:
    input: "c.txt"

rule a:
    output: "a.txt"
    params: a=config["a"]
    shell: "echo {params.a} > {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    params: b=config["b"]
    shell: "cat {input} > {output} && echo {params.b} >> {output}"

rule c:
    input: "b.txt"
    output: "c.txt"
    shell: "wc -l < {input} > {output}"
'''

CHAIN_DVC = '''stages:
  a: {cmd: "echo ${a} > a.txt", params: [a], outs: [a.txt]}
  b: {cmd: "cat a.txt > b.txt && echo ${b} >> b.txt", deps: [a.txt], params: [b], outs: [b.txt]}
  c: {cmd: "wc -l < b.txt > c.txt", deps: [b.txt], outs: [c.txt]}
'''


def planned(project: Path) -> set[str]:
    out = run(["snakemake", "-c1", "--dry-run"], cwd=project)
    return set(re.findall(r"^(?:local)?rule (\w+):", out.stdout + out.stderr, flags=re.M)) - {"all"}


@pytest.mark.slow
def test_neither_tool_vouches_for_what_it_did_not_bring_up_to_date(dvc_project, monkeypatch):
    """A three-stage chain a -> b -> c; c has no params, like the report."""
    monkeypatch.delenv(sync.CHILD_ENV, raising=False)
    (dvc_project / "Snakefile").write_text(CHAIN_SNAKEFILE)
    (dvc_project / "dvc.yaml").write_text(CHAIN_DVC)
    (dvc_project / "params.yaml").write_text("a: 1\nb: 1\n")
    run(["snakemake", "-c1"], cwd=dvc_project)
    # Recorded on success: DVC vouches for all three.
    assert set(sync.dvc_current_stages(dvc_project, sync.dvc_stages(dvc_project))) == {"a", "b", "c"}

    # A partial Snakemake run brings `a` up to date, and only `a` goes into dvc.lock.
    (dvc_project / "params.yaml").write_text("a: 2\nb: 1\n")
    run(["snakemake", "-c1", "a.txt"], cwd=dvc_project)
    changed = json.loads(run(["dvc", "status", "--json"], cwd=dvc_project).stdout)
    assert set(changed) == {"b"}  # c's own dep b.txt is unchanged: DVC reaches it through b

    # DVC stops after `a` with a new param: Snakemake must still plan b and c, though DVC
    # reads c (no params, unchanged dep) as unchanged.
    (dvc_project / "params.yaml").write_text("a: 3\nb: 1\n")
    run(["dvc", "repro", "--single-item", "a"], cwd=dvc_project)
    assert planned(dvc_project) == {"b", "c"}
    assert set(sync.dvc_current_stages(dvc_project, sync.dvc_stages(dvc_project))) == {"a"}

    run(["dvc", "repro"], cwd=dvc_project)
    assert planned(dvc_project) == set()
    assert (dvc_project / "c.txt").read_text().strip() == "2"
