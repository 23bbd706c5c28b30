# Training: DPCL and one neuron-model baseline per transfer function and objective
# (src/dpcl/training.py). Checkpoints live in data/checkpoints/, outside the outputs, so an
# interrupted job resumes where it stopped.


rule train_dpcl:
    input:
        # corpus: dynamic mixing draws from its tr utterances; mix: validation SDRi separates cv.
        corpus="data/corpus",
        mix="data/mix",
        features="data/features",
        code=[f"{CODE}/{name}.py" for name in [*TRAINING_CODE, *DPCL_TRAINING_CODE]],
    output:
        directory("data/models/dpcl"),
    params:
        files=PARAMS_ARGS,
        corpus=config["corpus"],
        features=config["features"],
        mix=config["mix"],
        dpcl=config["dpcl"],
        separate=config["separate"],
    # The longest job and the critical path: it starts first, on half the cores, and the baselines,
    # oracles and scoring share the other half meanwhile. On 2 CPU cores one torch thread does 60%
    # of the work of two, so two 1-thread jobs side by side finish the main job sooner.
    threads: max(1, workflow.cores // 2)
    priority: 10
    log:
        "logs/train_dpcl.log",
    benchmark:
        "logs/benchmarks/train_dpcl.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl train-dpcl {params.files} --features {input.features} --out {output}"
        " --checkpoints data/checkpoints --threads {threads} --corpus {input.corpus} --mix {input.mix} > {log} 2>&1"


rule train_baseline:
    input:
        features="data/features",
        code=[f"{CODE}/{name}.py" for name in TRAINING_CODE],
    output:
        directory("data/models/baselines/{run}"),
    params:
        files=PARAMS_ARGS,
        features=config["features"],
        mix=config["mix"],
        baselines=config["baselines"],
    threads: 1
    log:
        "logs/train_baseline/{run}.log",
    benchmark:
        "logs/benchmarks/train_baseline/{run}.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl train-baseline {params.files} --run {wildcards.run} --features {input.features}"
        " --out {output} --checkpoints data/checkpoints --threads {threads} > {log} 2>&1"
