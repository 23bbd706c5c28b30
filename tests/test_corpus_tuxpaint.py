"""Tux Paint planner on a tiny synthetic package tree (no download, no real recordings)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dpcl.corpus.plan import CorpusError
from dpcl.corpus.tuxpaint import STAMPS_DIR, ClipTag, parse_clip, plan_tuxpaint_tree


def _write(path: Path, seed: int, fmt: str) -> Path:
    """A short distinct noise clip, so that only deliberate copies are byte-identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.random.default_rng(seed).uniform(-0.3, 0.3, 1600)
    sf.write(path, samples, 16000, format=fmt)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    stamps = tmp_path / STAMPS_DIR
    _write(stamps / "animals/birds/owl_desc_es.ogg", 1, "OGG")
    _write(stamps / "animals/birds/duck_desc_es.ogg", 2, "OGG")
    _write(stamps / "food/vegetables/leek_desc_pt_BR.wav", 3, "WAV")
    _write(stamps / "symbols/math/3_es.ogg", 4, "OGG")
    _write(stamps / "animals/birds/owl.ogg", 5, "OGG")  # the owl's call: an effect
    _write(stamps / "symbols/alphabets/english/filled/A_filled_desc_es.ogg", 6, "OGG")
    outlined = stamps / "symbols/alphabets/english/outlined/A_outline_desc_es.ogg"
    outlined.parent.mkdir(parents=True)
    shutil.copyfile(stamps / "symbols/alphabets/english/filled/A_filled_desc_es.ogg", outlined)
    return tmp_path


@pytest.mark.parametrize(("relative", "expected"), [
    ("animals/birds/owl_desc_fr.ogg", ClipTag("fr", "description")),
    ("food/vegetables/leek_desc_pt_BR.wav", ClipTag("pt_BR", "description")),
    ("town/monuments/inukshuk-photo_desc_da.ogg.ogg", ClipTag("da", "description")),
    ("animals/birds/owl_desc.ogg", ClipTag("en", "description")),
    ("symbols/math/3_zh_tw.ogg", ClipTag("zh_tw", "symbols")),
    ("symbols/alphabets/english/filled/uppercase/A_filled_en_GB.ogg", ClipTag("en_GB", "symbols")),
    ("animals/birds/owl.ogg", None),
    ("symbols/math/3.ogg", None),
    ("food/fruit/apple_red.ogg", None),
    ("household/tools/saw_xx.ogg", None),  # a locale-like ending outside the symbol folders
    ("animals/birds/owl_desc_fr.txt", None),
])
def test_parse_clip(relative: str, expected: ClipTag | None) -> None:
    assert parse_clip(relative) == expected


def test_plan_speakers_groups_and_identity(tree: Path) -> None:
    plans = {plan.speaker: plan for plan in plan_tuxpaint_tree(tree)}
    assert set(plans) == {"tuxpaint-es", "tuxpaint-es-symbols", "tuxpaint-pt-BR"}
    spanish, digits, brazil = plans["tuxpaint-es"], plans["tuxpaint-es-symbols"], plans["tuxpaint-pt-BR"]
    assert (spanish.language, spanish.identity, spanish.group) == ("es", "known", "volunteers-es")
    assert (digits.identity, digits.sex, digits.group) == ("known", "M", "volunteers-es")
    assert (brazil.language, brazil.identity, brazil.group) == ("pt-BR", "uncertain", "volunteers-pt")
    assert all(plan.source == "tuxpaint" and plan.kind == "real" for plan in plans.values())


def test_duplicate_counted_once_and_effect_excluded(tree: Path) -> None:
    paths = [path for plan in plan_tuxpaint_tree(tree) for path in plan.audio.paths]
    names = sorted(Path(path).name for path in paths)
    assert names == ["3_es.ogg", "A_filled_desc_es.ogg", "duck_desc_es.ogg", "leek_desc_pt_BR.wav",
                     "owl_desc_es.ogg"]
    clips = plan_tuxpaint_tree(tree)[0].audio.clips(np.random.default_rng(0))
    samples, rate = next(clips)
    assert rate == 16000 and samples.ndim == 1


def test_tree_without_speech_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / STAMPS_DIR / "animals/birds/owl.ogg", 1, "OGG")
    with pytest.raises(CorpusError, match="no spoken stamp descriptions"):
        plan_tuxpaint_tree(tmp_path)
