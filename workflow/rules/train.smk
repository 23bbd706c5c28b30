# Training: DPCL and one neuron-model baseline per transfer function and objective
# (src/dpcl/train_stages.py). Checkpoints live in data/checkpoints/, outside the outputs, so an
# interrupted job resumes where it stopped.


rule train_dpcl:
    input:
        # corpus (DPCL_CORPUS): dynamic mixing draws from its tr utterances; mix: validation SDRi separates cv.
        **DPCL_CORPUS,
        mix="data/mix",
        features="data/features",
        code=[f"{CODE}/{name}.py" for name in [*TRAINING_CODE, *DPCL_TRAINING_CODE]],
    output:
        directory("data/models/dpcl"),
    params:
        files=PARAMS_ARGS,
        corpus_flag=corpus_flag,
        corpus=config["corpus"],
        features=config["features"],
        mix=config["mix"],
        dpcl=config["dpcl"],
        separate=config["separate"],
    # The longest job: it gets every core, after the baselines (priority 20) have trained two at a
    # time. A fixed thread count keeps its numbers the same run after run (torch's sums depend on
    # how work is split over threads), which growing the threads when the baselines finish would not.
    threads: workflow.cores
    priority: 10
    log:
        "logs/train_dpcl.log",
    benchmark:
        "logs/benchmarks/train_dpcl.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl train-dpcl {params.files} --features {input.features} --out {output}"
        " --checkpoints data/checkpoints --threads {threads} {params.corpus_flag} --mix {input.mix} > {log} 2>&1"


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
    priority: 20
    log:
        "logs/train_baseline/{run}.log",
    benchmark:
        "logs/benchmarks/train_baseline/{run}.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl train-baseline {params.files} --run {wildcards.run} --features {input.features}"
        " --out {output} --checkpoints data/checkpoints --threads {threads} > {log} 2>&1"
