# Validates params once (a typo stops here, with the key named) and names what rules share.
import glob

from dpcl.config import params_from_dict

PARAMS = params_from_dict(config)
# Stages read the same files Snakemake merged: params.yaml, then any --configfile overlays.
PARAMS_ARGS = " ".join(
    f"--params {path}" for path in ["params.yaml", *workflow.overwrite_configfiles]
)
CODE = "src/dpcl"
