# Separation of the test split by every method, scoring, and the report
# (src/dpcl/separate.py, evaluate.py, report.py).


rule separate_dpcl:
    input:
        mix="data/mix",
        model="data/models/dpcl",
        code=[f"{CODE}/{name}.py" for name in SEPARATE_CODE],
    output:
        directory("data/separated/dpcl"),
    params:
        files=PARAMS_ARGS,
        split=TEST_SPLIT,
        corpus=config["corpus"],
        mix=config["mix"],
        features=config["features"],
        separate=config["separate"],
    log:
        "logs/separate/dpcl.log",
    benchmark:
        "logs/benchmarks/separate/dpcl.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl separate-split {params.files} --method dpcl --mixtures {params.split}"
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
    threads: workflow.cores
    log:
        "logs/evaluate/{method}.log",
    benchmark:
        "logs/benchmarks/evaluate/{method}.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl evaluate {params.files} --mixtures {params.split} --estimates {input.estimates}"
        " --csv {output.csv} --json {output.json} --threads {threads} > {log} 2>&1"


rule report:
    input:
        mix="data/mix",
        scores=expand("data/scores/{method}.csv", method=METHODS),
        separated=expand("data/separated/{method}", method=METHODS),
        models=["data/models/dpcl", *expand("data/models/baselines/{run}", run=BASELINE_RUNS)],
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
        " --separated data/separated --models data/models --site {output.site}"
        " --metrics {output.metrics} --plots {output.plots} > {log} 2>&1"
