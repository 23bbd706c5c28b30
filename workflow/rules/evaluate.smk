# Separation of the test split by every method, scoring, the cost run and the report
# (src/dpcl/separate.py, evaluate.py, cost_growth.py, report.py).


# One rule for both ways of clustering DPCL's embeddings: k-means (dpcl) and spectral (dpcl-spectral).
rule separate_dpcl:
    input:
        mix="data/mix",
        model="data/models/dpcl",
        code=[f"{CODE}/{name}.py" for name in SPECTRAL_CODE],
    output:
        directory("data/separated/{dpcl_method}"),
    params:
        files=PARAMS_ARGS,
        split=TEST_SPLIT,
        corpus=config["corpus"],
        mix=config["mix"],
        features=config["features"],
        separate=config["separate"],
    log:
        "logs/separate/{dpcl_method}.log",
    benchmark:
        "logs/benchmarks/separate/{dpcl_method}.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl separate-split {params.files} --method {wildcards.dpcl_method} --mixtures {params.split}"
        " --model {input.model}/model.pt --out {output} --threads 1 > {log} 2>&1"


rule separate_baseline:
    input:
        mix="data/mix",
        model="data/models/baselines/{run}",
        code=[f"{CODE}/{name}.py" for name in SEPARATE_CODE],
    output:
        directory("data/separated/baseline-{run}"),
    params:
        files=PARAMS_ARGS,
        split=TEST_SPLIT,
        corpus=config["corpus"],
        mix=config["mix"],
        features=config["features"],
        separate=config["separate"],
    log:
        "logs/separate/baseline-{run}.log",
    benchmark:
        "logs/benchmarks/separate/baseline-{run}.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl separate-split {params.files} --method baseline-{wildcards.run} --mixtures {params.split}"
        " --model {input.model}/model.pt --out {output} --threads 1 > {log} 2>&1"


rule separate_oracle:
    input:
        mix="data/mix",
        code=[f"{CODE}/{name}.py" for name in SEPARATE_CODE],
    output:
        directory("data/separated/{oracle}"),
    params:
        files=PARAMS_ARGS,
        split=TEST_SPLIT,
        corpus=config["corpus"],
        mix=config["mix"],
        features=config["features"],
        separate=config["separate"],
    log:
        "logs/separate/{oracle}.log",
    benchmark:
        "logs/benchmarks/separate/{oracle}.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl separate-split {params.files} --method {wildcards.oracle} --mixtures {params.split}"
        " --out {output} --threads 1 > {log} 2>&1"


# No model; only the first spectral.max_mixtures test mixtures (a dense affinity is O(N^2)).
rule separate_spectral:
    input:
        mix="data/mix",
        code=[f"{CODE}/{name}.py" for name in SPECTRAL_CODE],
    output:
        directory("data/separated/spectral"),
    params:
        files=PARAMS_ARGS,
        split=TEST_SPLIT,
        corpus=config["corpus"],
        mix=config["mix"],
        features=config["features"],
        separate=config["separate"],
        spectral=config["spectral"],
    log:
        "logs/separate/spectral.log",
    benchmark:
        "logs/benchmarks/separate/spectral.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl separate-split {params.files} --method spectral --mixtures {params.split}"
        " --out {output} --threads 1 > {log} 2>&1"


rule evaluate:
    input:
        mix="data/mix",
        estimates="data/separated/{method}",
        code=f"{CODE}/evaluate.py",
    output:
        csv="data/scores/{method}.csv",
        json="data/scores/{method}.json",
    params:
        files=PARAMS_ARGS,
        split=TEST_SPLIT,
        mix=config["mix"],
        evaluate=config["evaluate"],
    threads: max(1, workflow.cores // 2)  # half: scoring runs beside the DPCL training
    log:
        "logs/evaluate/{method}.log",
    benchmark:
        "logs/benchmarks/evaluate/{method}.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl evaluate {params.files} --mixtures {params.split} --estimates {input.estimates}"
        " --csv {output.csv} --json {output.json} --threads {threads} > {log} 2>&1"


# Scores the same first spectral.max_mixtures mixtures that separate_spectral separated.
rule evaluate_spectral:
    input:
        mix="data/mix",
        estimates="data/separated/spectral",
        code=f"{CODE}/evaluate.py",
    output:
        csv="data/scores/spectral.csv",
        json="data/scores/spectral.json",
    params:
        files=PARAMS_ARGS,
        split=TEST_SPLIT,
        mix=config["mix"],
        evaluate=config["evaluate"],
        spectral=config["spectral"],
    threads: max(1, workflow.cores // 2)  # half: scoring runs beside the DPCL training
    log:
        "logs/evaluate/spectral.log",
    benchmark:
        "logs/benchmarks/evaluate/spectral.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl evaluate {params.files} --mixtures {params.split} --estimates {input.estimates}"
        " --csv {output.csv} --json {output.json} --limit {params.spectral[max_mixtures]}"
        " --threads {threads} > {log} 2>&1"


# Seconds, peak memory and SDRi against mixture length (spectral.cost_lengths_s). It takes every
# core so that no other job shares the machine while it times.
rule cost:
    input:
        mix="data/mix",
        model="data/models/dpcl",
        code=[f"{CODE}/{name}.py" for name in COST_CODE],
    output:
        directory("data/cost"),
    params:
        files=PARAMS_ARGS,
        split=TEST_SPLIT,
        corpus=config["corpus"],
        mix=config["mix"],
        features=config["features"],
        separate=config["separate"],
        spectral=config["spectral"],
        evaluate=config["evaluate"],
    threads: workflow.cores
    log:
        "logs/cost.log",
    benchmark:
        "logs/benchmarks/cost.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl cost {params.files} --mixtures {params.split} --model {input.model}/model.pt"
        " --out {output} --threads {threads} > {log} 2>&1"


rule report:
    input:
        mix="data/mix",
        scores=expand("data/scores/{method}.csv", method=METHODS),
        separated=expand("data/separated/{method}", method=METHODS),
        models=["data/models/dpcl", *expand("data/models/baselines/{run}", run=BASELINE_RUNS)],
        cost="data/cost",
        code=f"{CODE}/report.py",
    output:
        site=directory("reports/site"),
        metrics="reports/metrics.json",
        plots="reports/sdri.csv",
    params:
        files=PARAMS_ARGS,
        split=TEST_SPLIT,
    log:
        "logs/report.log",
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl report {params.files} --scores data/scores --mixtures {params.split}"
        " --separated data/separated --models data/models --cost {input.cost} --site {output.site}"
        " --metrics {output.metrics} --plots {output.plots} > {log} 2>&1"
