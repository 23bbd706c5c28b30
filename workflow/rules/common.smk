# Validates params once (a typo stops here, with the key named) and names what rules share.
import glob

from dpcl.config import load_params, params_from_dict

PARAMS = params_from_dict(config)
# Stages read the same files Snakemake merged: params.yaml, then any --configfile overlays.
PARAMS_FILES = ["params.yaml", *workflow.overwrite_configfiles]
load_params(PARAMS_FILES)  # what Snakemake's YAML reader lets pass: a key stated twice stops here, both lines named
PARAMS_ARGS = " ".join(f"--params {path}" for path in PARAMS_FILES)
CODE = "src/dpcl"
# Modules whose change re-runs a training (dvc.yaml lists the same files).
TRAINING_CODE = ["averaging", "chunks", "losses", "objectives", "train_loop", "train_stages", "models/dpcl", "models/neuron", "models/transfer"]
# DPCL's training reads these too: dynamic mixing and selection by validation SDRi.
DPCL_TRAINING_CODE = ["augment", "dynamic_mixing", "validation"]
SEPARATE_CODE = ["masks", "separate", "stft", "features"]
# The spectral methods and the cost run read these too (dvc.yaml lists the same files).
SPECTRAL_CODE = [*SEPARATE_CODE, "spectral"]
COST_CODE = [*SPECTRAL_CODE, "evaluate", "cost_growth"]
# Where the mixtures come from: lists drawn from the corpus stage, or a standard corpus's own lists
# (wsj0-2mix's official lists, LibriMix's metadata), which need no corpus stage. The mix rule then
# takes those list folders as its inputs instead of data/corpus, and DPCL's training takes the
# corpus only when the mix does or dynamic mixing draws from it (refused with LibriMix).
# dvc.yaml cannot branch: it wires the default, the corpus.
MIX_FROM_CORPUS = PARAMS.mix.recipe == "wsj0-2mix" and not PARAMS.mix.official_lists
if MIX_FROM_CORPUS:
    MIX_SOURCES = {"corpus": "data/corpus"}
elif PARAMS.mix.recipe == "librimix":
    MIX_SOURCES = {"metadata": PARAMS.mix.librimix_metadata}
else:
    MIX_SOURCES = {"lists": PARAMS.mix.official_lists, "activlev": PARAMS.mix.official_activlev}
DPCL_CORPUS = (
    {"corpus": "data/corpus"} if MIX_FROM_CORPUS or PARAMS.dpcl.training.dynamic_mixing.enabled else {}
)
BASELINE_RUNS = PARAMS.baselines.runs
ORACLES = ["ibm", "irm"]
# spectral: classical spectral clustering, no model; dpcl-spectral: the DPCL embeddings clustered
# spectrally (src/dpcl/spectral.py).
METHODS = ["dpcl", "dpcl-spectral", "spectral", *ORACLES, *(f"baseline-{run}" for run in BASELINE_RUNS)]
# Every method is scored on the test split of the mixture mode the features use.
TEST_SPLIT = f"data/mix/{PARAMS.features.mode}/tt"


def corpus_flag(wildcards, input):
    """`--corpus data/corpus` for a rule whose inputs hold the corpus stage's output, else nothing."""
    return f"--corpus {input.corpus}" if "corpus" in input.keys() else ""
