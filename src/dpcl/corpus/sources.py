"""Source name (as in `corpus.sources`) -> the function that plans its speakers.

One table, so that the config's list of sources and the code that serves them cannot drift
apart silently: a name in `dpcl.config.CORPUS_SOURCES` without a planner fails a test.
"""

from __future__ import annotations

from typing import Callable

from dpcl.config import CorpusConfig
from dpcl.corpus.bass import plan_bass
from dpcl.corpus.codec2 import plan_codec2
from dpcl.corpus.drascula import plan_drascula
from dpcl.corpus.espeak import plan_espeak
from dpcl.corpus.fillets import plan_fillets
from dpcl.corpus.flite import plan_flite
from dpcl.corpus.folder import plan_folder
from dpcl.corpus.fotaq import plan_fotaq
from dpcl.corpus.kde import plan_kde_game
from dpcl.corpus.plan import SpeakerPlan
from dpcl.corpus.tuxpaint import plan_tuxpaint
from dpcl.corpus.wsj0 import plan_wsj0

Planner = Callable[[CorpusConfig], list[SpeakerPlan]]

PLANNERS: dict[str, Planner] = {
    "fillets_cs": lambda cfg: plan_fillets("cs", cfg.download_dir, cfg.fillets_minor_roles),
    "fillets_nl": lambda cfg: plan_fillets("nl", cfg.download_dir, cfg.fillets_minor_roles),
    "klettres": lambda cfg: plan_kde_game("klettres", cfg.download_dir),
    "ktuberling": lambda cfg: plan_kde_game("ktuberling", cfg.download_dir),
    "tuxpaint": lambda cfg: plan_tuxpaint(cfg.download_dir),
    "fotaq": lambda cfg: plan_fotaq(cfg.download_dir),
    "drascula": lambda cfg: plan_drascula("en", cfg.download_dir),
    "drascula_es": lambda cfg: plan_drascula("es", cfg.download_dir),
    "codec2": lambda cfg: plan_codec2(cfg.download_dir),
    "bass": lambda cfg: plan_bass(cfg.download_dir),
    "espeak": lambda cfg: plan_espeak(cfg.synthesis),
    "flite": lambda cfg: plan_flite(cfg.synthesis, cfg.sample_rate),
    "folder": lambda cfg: plan_folder(str(cfg.folder_root)),
    "wsj0": lambda cfg: plan_wsj0(str(cfg.wsj0_root)),
}
