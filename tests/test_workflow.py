"""The Snakefile and dvc.yaml describe the same stages: same commands, inputs and outputs.

Both tools are asked for their own view on a copy of the project: Snakemake through
the jobs of a dry run of the whole DAG, DVC through its repository index (matrix stages
expanded by DVC itself). A stage added to one but not the other, or a path or command that
differs, fails here.

Compared on params.yaml, the recipe dvc.yaml wires (lists drawn from the corpus stage). The one
switch dvc.yaml cannot make, a mix and a DPCL training without the corpus stage when the mixtures
come from wsj0-2mix's official lists or LibriMix's metadata (workflow/rules/common.smk), is checked
by the dry runs of the standard-corpus profiles in tests/test_profiles.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from conftest import run

# Thread counts are scheduling (Snakemake gives a job what it has free), not part of a result.
THREADS = re.compile(r"\s--threads\s+\S+")


def normalise(cmd: str) -> str:
    cmd = re.sub(r"\s*>\s*\S+\s+2>&1\s*$", "", cmd)  # Snakemake's log redirect
    return " ".join(THREADS.sub("", cmd).split())


def snakemake_jobs(project: Path) -> dict[str, dict]:
    """output path -> {rule, cmd, inputs}, from the jobs a real dry run plans (`-n -p`)."""
    out = run(["snakemake", "-n", "-p", "--cores", "2"], cwd=project).stdout
    jobs = {}
    for block in re.split(r"\n(?=rule \w+:)", out)[1:]:
        rule = re.match(r"rule (\w+):", block).group(1)
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, flags=re.M))
        shell = re.search(r"^Shell command: (.*)$", block, flags=re.M)
        if rule == "all":
            continue
        jobs[sorted(fields["output"].split(", "))[0]] = {"rule": rule, "cmd": normalise(shell.group(1)),
                                  "inputs": set(fields.get("input", "").split(", ")) - {""}}
    return jobs


def dvc_stages(project: Path) -> dict[str, dict]:
    """output path -> {stage, cmd, inputs, params}, from DVC's own parse of dvc.yaml."""
    from dvc.repo import Repo

    run(["git", "init", "-q"], cwd=project)  # the project ships .dvc/; DVC wants the git repo around it
    stages = {}
    with Repo(str(project)) as repo:
        for stage in repo.index.stages:
            deps: set[str] = set()
            params: set[str] = set()
            for dep in stage.deps:
                if type(dep).__name__ == "ParamsDependency":
                    params |= set(dep.params)
                    continue
                path = project / str(dep.def_path)
                # DVC hashes a code folder as a whole; Snakemake lists its files.
                deps |= ({str(p.relative_to(project)) for p in path.glob("*.py")} if path.is_dir()
                         else {str(dep.def_path)})
            out = sorted(str(o.def_path) for o in stage.outs)[0]  # evaluate: the .csv of csv + json
            stages[out] = {"stage": stage.name, "cmd": normalise(stage.cmd), "inputs": deps, "params": params}
    return stages


def test_snakemake_and_dvc_describe_the_same_stages(project_copy):
    smk = snakemake_jobs(project_copy)
    dvc = dvc_stages(project_copy)
    # data, DPCL, baselines, separate + evaluate of 15 methods (DPCL, dpcl-spectral, spectral, 2 oracles,
    # 10 baselines), the cost run, the report
    assert len(dvc) >= 3 + 1 + 10 + 15 * 2 + 1 + 1
    assert set(dvc) == set(smk), f"only in dvc.yaml: {set(dvc) - set(smk)}; only in Snakemake: {set(smk) - set(dvc)}"
    for output, stage in dvc.items():
        job = smk[output]
        assert job["cmd"] == stage["cmd"], output
        assert job["inputs"] == expand_data_folders(stage["inputs"], job["inputs"]), output
        # One Snakemake rule may stand for several DVC stages (evaluate: evaluate_dpcl, _oracle, ...).
        assert stage["stage"].split("@")[0].startswith(job["rule"]), output


def expand_data_folders(dvc_inputs: set[str], smk_inputs: set[str]) -> set[str]:
    """A DVC dependency on a folder of other stages' outputs (report: data/scores) stands for the
    outputs inside it, which Snakemake lists one by one; each such folder must cover at least one."""
    expanded = set()
    for dep in dvc_inputs:
        inside = {path for path in smk_inputs if path.startswith(dep + "/")}
        if dep.startswith("data/") and dep not in smk_inputs and inside:
            expanded |= inside
        else:
            expanded.add(dep)
    return expanded


def test_each_stage_depends_on_the_params_sections_it_reads(project_copy):
    """A param change must re-run the same stages under both tools (rule params = DVC params)."""
    rules = "\n".join(p.read_text() for p in sorted((project_copy / "workflow" / "rules").glob("*.smk")))
    smk = snakemake_jobs(project_copy)
    for output, stage in dvc_stages(project_copy).items():
        name = smk[output]["rule"]
        body = rules.split(f"rule {name}:")[1].split("\nrule ")[0]
        smk_sections = {section for _, section in re.findall(r"(\w+)=config\[\"(\w+)\"\]", body)}
        assert smk_sections == stage["params"], name


def test_workflow_passes_lint(project_copy):
    out = run(["snakemake", "--lint"], cwd=project_copy)
    assert "Congratulations" in out.stdout + out.stderr
