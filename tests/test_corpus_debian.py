"""Debian sources with the real apt-get and dpkg-deb: a failed download, and a real klettres build."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dpcl.config import CorpusConfig
from dpcl.corpus import CorpusError, build_corpus
from dpcl.corpus.debian import PACKAGES, DebPackage, deb_file_name, fetch_deb, sha256_of

ROOT = Path(__file__).resolve().parents[1]
# The pipeline's own download folder (params.yaml corpus.download_dir): reused between runs.
DOWNLOADS = ROOT / "data" / "external"

needs_apt = pytest.mark.skipif(shutil.which("apt-get") is None, reason="apt-get not available (not Debian-based)")


@needs_apt
def test_failed_download_says_what_to_do(tmp_path: Path) -> None:
    missing = DebPackage("dpcl-no-such-package", "1.0-1", "0" * 64)
    with pytest.raises(CorpusError, match=r"apt-get download dpcl-no-such-package=1.0-1.*failed.*apt-get update"):
        fetch_deb(missing, tmp_path)


def test_deb_file_names_match_apt_get() -> None:
    assert deb_file_name(PACKAGES["klettres-data"]) == "klettres-data_4%3a22.12.3-1_all.deb"


@pytest.mark.slow
@needs_apt
def test_klettres_build_from_the_pinned_package(tmp_path: Path) -> None:
    """Downloads klettres-data (about 40 MB) into data/external unless it is already there."""
    cfg = CorpusConfig(sources=("klettres",), download_dir=str(DOWNLOADS), test_speakers=("klettres-fr", "klettres-de"),
                       min_utterances_per_speaker=4)
    frame = build_corpus(cfg, tmp_path / "corpus")
    assert (DOWNLOADS / deb_file_name(PACKAGES["klettres-data"])).is_file()
    speakers = set(frame["speaker"])
    assert {"klettres-fr", "klettres-de", "klettres-en", "klettres-en-GB", "klettres-pt-BR"} <= speakers
    assert len(speakers) >= 15
    assert set(frame.loc[frame["split"] == "tt", "speaker"]) == {"klettres-fr", "klettres-de"}
    assert set(frame["kind"]) == {"real"} and set(frame["sex"]) == {"unknown"}
    assert frame["duration"].between(2.0, 6.0).all()
    assert frame.groupby("speaker").size().min() >= 4


@pytest.mark.slow
@needs_apt
def test_a_corrupt_cached_deb_is_downloaded_again(tmp_path: Path) -> None:
    """A truncated .deb in the download folder fails its checksum and is fetched anew (about 40 MB)."""
    package = PACKAGES["klettres-data"]
    cached = tmp_path / deb_file_name(package)
    cached.write_bytes(b"!<arch>\ntruncated")
    assert fetch_deb(package, tmp_path) == cached
    assert sha256_of(cached) == package.sha256
