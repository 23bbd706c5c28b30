"""The `corpus` stage: speech by speaker from open sources (or WSJ0, or a folder corpus).

`build_corpus(cfg, out_dir)` writes `<out_dir>/<speaker>/<utterance>.wav`, `manifest.csv`
and `summary.json`; see `build.py` for the order of work and DESIGN.md section 5 for the
sources.
"""

from dpcl.corpus.build import build_corpus, plan_corpus
from dpcl.corpus.manifest import COLUMNS
from dpcl.corpus.plan import CorpusError

__all__ = ["COLUMNS", "CorpusError", "build_corpus", "plan_corpus"]
