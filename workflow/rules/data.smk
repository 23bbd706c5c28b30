# From sources to features: the first three stages (src/dpcl/{corpus,mixing,features}.py).


rule corpus:
    input:
        code=[f"{CODE}/audio.py", *sorted(glob.glob(f"{CODE}/corpus/*.py"))],
    output:
        directory("data/corpus"),
    params:
        files=PARAMS_ARGS,
        corpus=config["corpus"],
    log:
        "logs/corpus.log",
    benchmark:
        "logs/benchmarks/corpus.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl corpus {params.files} --out {output} > {log} 2>&1"


# The corpus stage's output, or the standard corpus's lists when mix reads those (MIX_SOURCES).
rule mix:
    input:
        **MIX_SOURCES,
        code=[f"{CODE}/{name}.py" for name in ["audio", "activlev", "mixing", "mixlists", "librimix"]],
    output:
        directory("data/mix"),
    params:
        files=PARAMS_ARGS,
        corpus_flag=corpus_flag,
        corpus=config["corpus"],
        mix=config["mix"],
    log:
        "logs/mix.log",
    benchmark:
        "logs/benchmarks/mix.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl mix {params.files} {params.corpus_flag} --out {output} > {log} 2>&1"


rule features:
    input:
        mix="data/mix",
        code=[f"{CODE}/stft.py", f"{CODE}/features.py"],
    output:
        directory("data/features"),
    params:
        files=PARAMS_ARGS,
        corpus=config["corpus"],
        mix=config["mix"],
        features=config["features"],
    log:
        "logs/features.log",
    benchmark:
        "logs/benchmarks/features.tsv"
    conda:
        "../envs/dpcl.yaml"
    shell:
        "dpcl features {params.files} --mix {input.mix} --out {output} > {log} 2>&1"
