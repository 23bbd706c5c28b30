"""Keep Snakemake's and DVC's records of the same outputs in step, so neither redoes the other's work.

Both orchestrators run the same stages on the same files but each keeps its own record of what
is done: DVC hashes outputs into `dvc.lock`, Snakemake stores params, code and mtimes in
`.snakemake/metadata`. Left alone, `dvc repro` after a Snakemake run redoes every stage, and
Snakemake after a `dvc repro` that followed a param change redoes what DVC just ran
(measured, ../shared/STYLE.md). The cures are the tools' own commands, applied only to what the
other tool vouches for:

- after Snakemake: `dvc commit -f` on the stages whose every output Snakemake reports as up to
  date (`snakemake --summary`: "no update"), never on one it still plans to run, so a partial
  run (`snakemake data/features`) cannot mark a stale model as current;
- after DVC: `snakemake --touch` on the outputs of the stages `dvc status` reports unchanged.

The Snakefile calls `after_snakemake` on success and `before_snakemake` while it is parsed, so a
user types only `snakemake` or `dvc repro`. Both are skipped when the project is not a git + DVC
repository, when the Snakemake run merges `--configfile` overlays that change what is computed
(DVC knows params.yaml alone: recording an overlay's outputs as params.yaml's would be false),
and inside the child Snakemake processes they start themselves. `dpcl sync` runs either
direction by hand.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import yaml

from dpcl.errors import DpclError

# Set in the Snakemake processes this module starts, so their Snakefile does not sync again.
CHILD_ENV = "DPCL_SYNC_CHILD"
# The digest of dvc.lock and its outputs when the two records last agreed: a different one means
# DVC ran (or restored outputs) since.
STAMP = Path(".snakemake") / "dpcl" / "dvc-lock-synced.sha256"
# The tools of the running interpreter's environment, whatever PATH holds.
DVC = [sys.executable, "-m", "dvc"]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


class SyncError(DpclError):
    """A tool this module drives failed; its own message is included."""


def another_run(root: Path) -> str | None:
    """Why another Snakemake seems to be at work here: the lock files a running one holds.

    This start has not taken its own lock yet (Snakemake locks after reading the Snakefile), so
    any lock is another run's, or a killed run's that `snakemake --unlock` clears.
    """
    locks = root / ".snakemake" / "locks"
    if locks.is_dir() and any(locks.iterdir()):
        return ("another snakemake holds this project's lock (.snakemake/locks): let it finish; "
                "if none runs, `snakemake --unlock` clears a killed run's lock")
    return None


def skip_reason(root: Path, overlays: Sequence[str]) -> str | None:
    """Why no sync may happen here, or None when it may."""
    if os.environ.get(CHILD_ENV):
        return "inside a sync's own Snakemake process"
    if overlays and (sections := overlay_changes(root, overlays)):
        return (f"--configfile {' '.join(map(str, overlays))} changes {', '.join(sections)} of params.yaml, "
                "and DVC reads params.yaml alone")
    if not (root / ".dvc").is_dir() or not (root / "dvc.yaml").is_file():
        return "not a DVC project"
    inside_git = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=root,
                                capture_output=True, text=True)
    if inside_git.returncode != 0:
        return "not a git repository (DVC needs one)"
    return None


def overlay_changes(root: Path, overlays: Sequence[str]) -> list[str]:
    """The params sections the overlays change, other than `tracking`.

    `tracking` (where MLflow runs go, profiles/team.yaml) is in no stage's params and changes no
    output, so a run with only that overlay makes exactly what `dvc repro` would.
    """
    from dpcl.config import deep_merge

    base = yaml.safe_load((root / "params.yaml").read_text()) or {}
    merged = base
    for overlay in overlays:
        merged = deep_merge(merged, yaml.safe_load((root / overlay).read_text()) or {})
    return sorted(key for key in set(base) | set(merged) if key != "tracking" and base.get(key) != merged.get(key))


def _lock_digest(root: Path) -> str:
    """dvc.lock's bytes plus the identity (inode, mtime) of every output it names.

    The outputs count because DVC can rebuild or restore them without changing dvc.lock at all
    (`dvc pull` into a fresh clone, `dvc checkout`, `dvc repro` of deleted outputs); every
    stage writes its output by renaming a new folder into place, so a rebuilt one has a new inode.
    """
    lock = root / "dvc.lock"
    if not lock.is_file():
        return ""
    text = lock.read_bytes()
    digest = hashlib.sha256(text)
    stages = (yaml.safe_load(text) or {}).get("stages", {})
    for path in sorted({out["path"] for stage in stages.values() for out in stage.get("outs", [])}):
        with contextlib.suppress(OSError):
            info = (root / path).stat()
            digest.update(f"{path}:{info.st_ino}:{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _record_agreement(root: Path) -> None:
    stamp = root / STAMP
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(_lock_digest(root) + "\n")


def dvc_ran_since_sync(root: Path) -> bool:
    """True when dvc.lock or its outputs differ from when both records last agreed (or none was recorded)."""
    stamp = root / STAMP
    recorded = stamp.read_text().strip() if stamp.is_file() else None
    return _lock_digest(root) not in ("", recorded)


def _run(command: list[str], root: Path) -> str:
    env = {**os.environ, CHILD_ENV: "1", "DVC_NO_ANALYTICS": "1"}
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    except OSError as error:
        raise SyncError(f"cannot start `{command[0]}`: {error}") from None
    if done.returncode != 0:
        raise SyncError(f"`{' '.join(command[:3])} ...` failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


@dataclasses.dataclass(frozen=True)
class DvcStage:
    """What the sync needs to know of one dvc.yaml stage."""

    outputs: tuple[str, ...]
    upstream: frozenset[str]  # every stage it depends on, directly or not
    frozen: bool  # `dvc freeze`: DVC skips its checks, so it cannot vouch for it


def dvc_stages(root: Path) -> dict[str, DvcStage]:
    """Every stage of the project's dvc.yaml by name (foreach items expanded, e.g.
    `train_baseline@threshold-pit`, as `dvc status` names them).

    `.dvc` files (data a user `dvc add`ed) are not stages Snakemake has rules for: left out.
    """
    import networkx as nx
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges run from a stage to the stages it depends on
        # `name`, not `addressing`: the latter is relative to this process's working directory.
        return {stage.name: DvcStage(tuple(out.def_path for out in stage.outs),
                                     frozenset(up.name for up in nx.descendants(graph, stage)),
                                     bool(stage.frozen))
                for stage in graph.nodes if isinstance(stage, PipelineStage)}


def snakemake_plan(root: Path, cores: int) -> dict[str, str]:
    """Output path -> Snakemake's plan for it: "no update" or "update pending" (`--summary`)."""
    table = _run([*SNAKEMAKE, "--cores", str(cores), "--summary", "--nolock"], root)
    plan: dict[str, str] = {}
    rows = [line.split("\t") for line in table.splitlines()]
    header = next((row for row in rows if row[:1] == ["output_file"]), None)
    if header is None:
        raise SyncError("snakemake --summary printed no table")
    for row in rows[rows.index(header) + 1:]:
        if len(row) == len(header):
            plan[row[0]] = row[header.index("plan")]
    return plan


def _say(message: str) -> None:
    print(f"dpcl sync: {message}", file=sys.stderr)


def after_snakemake(root: Path, cores: int, overlays: Sequence[str] = (), touched: bool = False) -> list[str]:
    """Record in dvc.lock every stage Snakemake has brought up to date; returns their names.

    `touched`: the run was `snakemake --touch`, which vouches for nothing it did not make, so
    DVC is not told (its cache would take the touched outputs as the results of today's params).
    A failure is reported, not raised: the run's outputs are complete either way, and only
    DVC's record lags (`dpcl sync --to dvc` retries it).
    """
    reason = skip_reason(root, overlays) or ("a --touch run made nothing" if touched else None)
    if reason:
        if not os.environ.get(CHILD_ENV):
            _say(f"dvc.lock not updated: {reason}")
        return []
    try:
        return _commit_current(root, cores)
    except Exception as error:  # noqa: BLE001 - the run's outputs are complete; never fail it here
        _say(f"warning: dvc.lock not updated ({error}); `dpcl sync --to dvc` retries")
        return []


def _commit_current(root: Path, cores: int) -> list[str]:
    plan = snakemake_plan(root, cores)
    current = [name for name, stage in dvc_stages(root).items()
               if stage.outputs and all(plan.get(out) == "no update" for out in stage.outputs)]
    if current:
        _run([*DVC, "commit", "--force", "--quiet", *current], root)
    _record_agreement(root)
    _say(f"{len(current)} stages Snakemake brought up to date are recorded in dvc.lock (dvc commit)")
    return current


def dvc_current_stages(root: Path, stages: dict[str, DvcStage]) -> list[str]:
    """The stages DVC vouches for: unchanged in `dvc status`, and so is every stage upstream.

    The upstream condition matters because `snakemake --touch` marks a target's whole DAG as
    done: a stage with no params of its own (the report) reads as unchanged while the stages
    feeding it are stale, e.g. after a `dvc repro` stopped halfway through a param change.
    Frozen stages skip DVC's checks, so DVC cannot vouch for them.
    """
    changed = set(json.loads(_run([*DVC, "status", "--json"], root) or "{}"))
    trusted = {name for name, stage in stages.items() if name not in changed and not stage.frozen}
    return [name for name in trusted if stages[name].upstream <= trusted]


def before_snakemake(root: Path, cores: int, overlays: Sequence[str] = (), force: bool = False) -> list[str]:
    """When DVC ran since the records last agreed, mark what it made as done for Snakemake too.

    Returns the stages whose outputs were touched (none when nothing changed: the check costs a
    hash of dvc.lock, so it is cheap enough to run on every Snakemake start). `force` syncs even
    when dvc.lock is the one last agreed on.
    """
    if not (force or dvc_ran_since_sync(root)):  # first: the common case costs no subprocess
        return []
    if reason := another_run(root):  # its half-written outputs must never be adopted as done
        _say(f"Snakemake's records not updated: {reason}")
        return []
    if reason := skip_reason(root, overlays):
        if force:
            _say(f"Snakemake's records not updated: {reason}")
        return []
    try:
        return _touch_current(root, cores)
    except Exception as error:  # noqa: BLE001 - a failed adoption costs a rebuild, never the start
        _say(f"warning: Snakemake's records not updated ({error}); it may redo stages DVC ran")
        return []


def _touch_current(root: Path, cores: int) -> list[str]:
    stages = dvc_stages(root)
    current = dvc_current_stages(root, stages)
    targets = [out for name in current for out in stages[name].outputs]
    if targets:
        _run([*SNAKEMAKE, *targets, "--cores", str(cores), "--touch"], root)
    _record_agreement(root)
    _say(f"{len(current)} stages DVC reports up to date are marked done for Snakemake too (snakemake --touch)")
    return current
