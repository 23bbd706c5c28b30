"""`dpcl <stage>`: parse arguments, load params once, call one stage function. Nothing else.

Paths of inputs and outputs are arguments, never read from params.yaml: the Snakefile and
dvc.yaml own the layout, the stages only do the work.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import yaml

from dpcl.config import Params, load_params, params_to_dict
from dpcl.errors import DpclError


def _corpus(params: Params, args: argparse.Namespace) -> None:
    from dpcl.corpus import build_corpus
    from dpcl.corpus.manifest import summary_table

    print(summary_table(build_corpus(params.corpus, args.out)), flush=True)


def _mix(params: Params, args: argparse.Namespace) -> None:
    from dpcl.mixing import run_mix

    run_mix(params, args.corpus, args.out)


def _features(params: Params, args: argparse.Namespace) -> None:
    from dpcl.features import run_features

    run_features(params, args.mix, args.out)


def _train_dpcl(params: Params, args: argparse.Namespace) -> None:
    from dpcl.train_stages import train_dpcl

    _set_threads(args.threads)
    train_dpcl(params, args.features, args.out, args.checkpoints, corpus_dir=args.corpus, mix_dir=args.mix)


def _train_baseline(params: Params, args: argparse.Namespace) -> None:
    from dpcl.train_stages import train_baseline

    _set_threads(args.threads)
    train_baseline(params, args.run, args.features, args.out, args.checkpoints)


def _separate_split(params: Params, args: argparse.Namespace) -> None:
    from dpcl.separate import run_separate

    _set_threads(args.threads)
    run_separate(params, args.method, args.mixtures, args.model, args.stats, args.out)


def _separate_file(params: Params | None, args: argparse.Namespace) -> None:
    from dpcl.separate import separate_file, separate_folder

    _set_threads(args.threads)
    config = params.separate if params is not None else None  # None: the model's own settings
    if not Path(args.input).is_dir():
        for path in separate_file(args.input, args.model, args.stats, args.out, config):
            print(path)
        return
    result = separate_folder(args.input, args.model, args.stats, args.out, config)
    refused = f"; {len(result.refused)} refused (see the warnings above)" if result.refused else ""
    print(f"separated {result.files - len(result.refused)} of {result.files} files in {args.input} "
          f"into {args.out} ({len(result.written)} estimates){refused}")
    if result.refused:
        raise DpclError(f"{len(result.refused)} of {result.files} files could not be separated: "
                        + ", ".join(path.name for path, _ in result.refused))


def _evaluate(params: Params, args: argparse.Namespace) -> None:
    from dpcl.evaluate import run_evaluate

    csv = args.csv or args.estimates / "scores.csv"
    json_path = args.json or args.estimates / "scores.json"
    summary = run_evaluate(args.mixtures, args.estimates, csv, json_path, args.sources or params.mix.n_speakers,
                           params.evaluate.backend, args.threads or None, args.limit or None)
    def mean(metric: str) -> str:
        value = summary[metric]["mean"]
        return "n/a" if value is None else f"{value:.2f} dB"

    print(f"SDRi {mean('sdri')}, SI-SDRi {mean('si_sdri')} over {summary['sdri']['count']} mixtures; "
          f"per mixture: {csv}")
    perfect = summary["sdri"]["not_finite"]
    if perfect:
        print(f"note: {perfect} mixture(s) scored an infinite SDR (estimates equal to the references): "
              "the means are over the others; scores.json holds null where no finite value exists")


def _cost(params: Params, args: argparse.Namespace) -> None:
    from dpcl.cost_growth import run_cost

    _set_threads(args.threads)
    summary = run_cost(params, args.mixtures, args.model, args.out)
    for method, slopes in summary["exponents"].items():
        print(f"{method}: time ~ length^{slopes['time']:.2f}")


def _report(params: Params, args: argparse.Namespace) -> None:
    from dpcl.report import ReportInputs, run_report

    run_report(ReportInputs(scores_dir=args.scores, mixtures_dir=args.mixtures, separated_dir=args.separated,
                            models_dir=args.models, cost_dir=args.cost),
               args.site, args.metrics, args.plots, params.tracking)


def _ui(params: Params, args: argparse.Namespace) -> None:
    from dpcl.ui import serve

    serve(params.tracking, args.port, Path.cwd())


def _set_threads(threads: int) -> None:
    """torch's CPU threads, and denormals flushed to zero: tiny LSTM activations otherwise take
    the slow microcode path on x86 (oneDNN#561), a slowdown that changes no result worth keeping."""
    import torch

    torch.set_flush_denormal(True)
    if threads > 0:
        torch.set_num_threads(threads)


def _sync(params: Params, args: argparse.Namespace) -> None:
    from dpcl.sync import after_snakemake, before_snakemake

    if args.to == "dvc":
        after_snakemake(Path.cwd(), args.cores)
    else:
        before_snakemake(Path.cwd(), args.cores, force=True)


def _show_params(params: Params, args: argparse.Namespace) -> None:
    yaml.safe_dump(params_to_dict(params), sys.stdout, sort_keys=False)


PATH = {"type": Path, "required": True}
TRAINING = [("--features", PATH, "feature folder from `dpcl features`"), ("--out", PATH, "output folder of the model"),
            ("--checkpoints", PATH, "folder of resumable checkpoints (kept outside the output)"),
            ("--threads", {"type": int, "default": 0}, "CPU threads for torch (0: torch's default)")]

# stage name -> (function, help, [(flag, argparse options, help)])
STAGES: dict[str, tuple[Callable[[Params, argparse.Namespace], None], str, list[tuple[str, dict, str]]]] = {
    "corpus": (_corpus, "build speech-by-speaker wavs and a manifest from the configured sources",
               [("--out", PATH, "output folder (data/corpus)")]),
    "mix": (_mix, "mix utterances with the WSJ0-2mix or LibriMix recipe (mix.recipe)",
            [("--corpus", {"type": Path, "default": None}, "corpus folder from `dpcl corpus` (not read by recipe "
              "librimix, nor with mix.official_lists)"), ("--out", PATH, "output folder (data/mix)")]),
    "features": (_features, "STFT features, ideal-binary-mask targets and silence weights to HDF5",
                 [("--mix", PATH, "mixture folder from `dpcl mix`"), ("--out", PATH, "output folder (data/features)")]),
    "train-dpcl": (_train_dpcl, "train the Deep Clustering network (params section dpcl)",
                   [*TRAINING,
                    ("--corpus", {"type": Path, "default": None}, "corpus folder (dynamic mixing reads its tr utterances)"),
                    ("--mix", {"type": Path, "default": None}, "mixture folder (selection by validation SDRi reads cv)")]),
    "train-baseline": (_train_baseline, "train one neuron-model baseline (params section baselines)",
                       [("--run", {"required": True}, "<transfer function>-<objective>, e.g. threshold-pit"),
                        *TRAINING]),
    "separate": (_separate_file, "separate a recording of your own: any rate or channel count in",
                 [("input", {"type": Path}, "the recording (wav, flac, ogg), or a folder of them"),
                  ("--model", PATH, "a training's folder (data/models/dpcl) or its model.pt"),
                  ("--out", PATH, "folder for <name>_s1.wav, <name>_s2.wav"),
                  ("--stats", {"type": Path, "default": None}, "features stats.json (default: the model's own copy)"),
                  ("--threads", {"type": int, "default": 1}, "CPU threads for torch")]),
    "separate-split": (_separate_split, "separate every mixture of a split with a model or an oracle mask",
                       [("--method", {"required": True}, "dpcl, dpcl-spectral, spectral, baseline-<run>, ibm or irm"),
                        ("--mixtures", PATH, "one split of the mixture tree (data/mix/min/tt)"),
                        ("--model", {"type": Path, "default": None}, "model.pt (not for ibm/irm)"),
                        ("--stats", {"type": Path, "default": None}, "features stats.json (default: the model's)"),
                        ("--out", PATH, "output folder: s1/, s2/ with the mixtures' file names"),
                        ("--threads", {"type": int, "default": 1}, "CPU threads for torch (1 is fastest here)")]),
    "evaluate": (_evaluate, "score estimates against references: SDR, SIR, SAR, SI-SDR and improvements",
                 [("--mixtures", PATH, "folder with mix/, s1/, s2/ (a split of the mixture tree, or your own)"),
                  ("--estimates", PATH, "folder with s1/, s2/ holding estimates under the mixtures' names"),
                  ("--csv", {"type": Path, "default": None}, "per-mixture scores (default: ESTIMATES/scores.csv)"),
                  ("--json", {"type": Path, "default": None}, "summary (default: ESTIMATES/scores.json)"),
                  ("--sources", {"type": int, "default": 0}, "sources per mixture (default: mix.n_speakers)"),
                  ("--threads", {"type": int, "default": 0}, "worker processes (0: all cores)"),
                  ("--limit", {"type": int, "default": 0}, "score only N mixtures spread over the names, as separate picks them (0: all)")]),
    "cost": (_cost, "seconds, peak memory and SDRi of the clustering methods against mixture length",
             [("--mixtures", PATH, "the test split (data/mix/min/tt), concatenated and cut to each length"),
              ("--model", {"type": Path, "default": None}, "DPCL model.pt (without: the spectral methods only)"),
              ("--out", PATH, "output folder: growth.csv, growth.json, growth.png"),
              ("--threads", {"type": int, "default": 1}, "CPU threads for torch")]),
    "report": (_report, "tables, figures and audio of every method in reports/",
               [("--scores", PATH, "folder of <method>.csv score tables"),
                ("--mixtures", PATH, "the scored split (data/mix/min/tt)"),
                ("--separated", PATH, "folder of <method>/ estimates"),
                ("--models", PATH, "folder of trained models (histories)"),
                ("--cost", PATH, "output folder of `dpcl cost` (growth.json, growth.png)"),
                ("--site", PATH, "output folder of the readable report"),
                ("--metrics", PATH, "metrics JSON for `dvc metrics show`"),
                ("--plots", PATH, "per-mixture SDRi CSV for `dvc plots show`")]),
    "ui": (_ui, "the MLflow UI on the project's store (tracking.uri), at http://127.0.0.1:PORT until Ctrl-C",
           [("--port", {"type": int, "default": 5000}, "port on 127.0.0.1")]),
    "sync": (_sync, "bring one orchestrator's record up to date with the other's (the Snakefile does this itself)",
             [("--to", {"choices": ["dvc", "snakemake"], "required": True},
               "dvc: dvc commit what Snakemake made; snakemake: snakemake --touch what DVC made"),
              ("--cores", {"type": int, "default": os.cpu_count() or 1}, "cores Snakemake plans with")]),
    "params": (_show_params, "validate the params files and print the resolved values", []),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpcl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (_, help_text, paths) in STAGES.items():
        stage = sub.add_parser(name, help=help_text, description=help_text)
        stage.add_argument("--params", action="append", type=Path, metavar="FILE",
                           help="params file; repeat to merge profiles over it (default: params.yaml)")
        for flag, options, flag_help in paths:
            stage.add_argument(flag, help=flag_help, **options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s dpcl {args.stage}: %(message)s", datefmt="%H:%M:%S")
    try:
        if args.stage == "separate" and not args.params and not Path("params.yaml").is_file():
            params = None  # outside a project: the model file carries its params and separate settings
        else:
            params = load_params(args.params or [Path("params.yaml")])
        STAGES[args.stage][0](params, args)
    except DpclError as error:
        print(f"dpcl {args.stage}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dpcl {args.stage}: interrupted; completed outputs are intact", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`dpcl params | head`): stop quietly, as a Unix filter does. The
        # interpreter's final flush would fail again, so stdout goes to /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
