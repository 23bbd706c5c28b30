"""Fetch a Debian data package by exact version, check it, and unpack it (never install it).

Debian's `main` archive is the one open, versioned, checksummed home of multi-speaker
recordings reachable here (DESIGN.md section 5). Pinning name, version and sha256 makes the
corpus reproducible: a mirror that serves different bytes is an error, not a new corpus.
The .deb and its unpacked tree stay in `download_dir` between runs, outside the pipeline's
outputs, so a rebuild costs no download.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
from pathlib import Path

from dpcl.atomic import atomic_dir
from dpcl.corpus.plan import CorpusError


@dataclasses.dataclass(frozen=True)
class DebPackage:
    name: str
    version: str
    sha256: str


PACKAGES = {
    package.name: package
    for package in (
        DebPackage("fillets-ng-data-cs", "1.0.1-1.1",
                   "3ecef99b9456f1c80c9625c6f2418642b52d58e7167a46bad7a412db17991b14"),
        DebPackage("fillets-ng-data-nl", "1.0.1-1.1",
                   "afb4443fda9ab507dee578b75be857d121718a1cd6017a474f30e0eb13dc9d10"),
        DebPackage("klettres-data", "4:22.12.3-1",
                   "1186d257a19e84230856baea0b0b1ded8be9195080fcdb2588970b5cd937f5a8"),
        DebPackage("ktuberling-data", "4:22.12.3-1",
                   "fba44c875bfa31ea488dadd9263e87a4dcaea0bd47d28817f6c0dc6d2af970ed"),
        DebPackage("tuxpaint-stamps-default", "2022.06.04-1",
                   "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34"),
        DebPackage("flight-of-the-amazon-queen", "1.0.0-9",
                   "40c08fd258d6fe95c46c1eaf5e9137f84ba330657995a281bd887c94a560a0f1"),
        DebPackage("drascula", "1.0+ds4-2",
                   "ed4af8e2d41ad446e2f3b73533daa1804e2f13f62f596c0b02b8dc39544f22b4"),
        DebPackage("drascula-spanish", "1.0+ds4-2",
                   "87b5f12df3fcd7ca16097c802dff1ab55e40c9ebc21209fa3f031e1661b4b8e5"),
        DebPackage("codec2-examples", "1.0.5-1",
                   "7af8cd128f269a1d8116993c9d2bd7d4d452fc17da46a09899aaca2b9bd993d4"),
        DebPackage("beneath-a-steel-sky", "0.0372-8",
                   "e2a25c880220c26a4dfd42904b878cc655afa1c72895f9c932befbd078622934"),
    )
}

# Written into an unpacked tree last, holding the .deb's sha256: a tree without it is partial.
_MARKER = ".dpcl-unpacked"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def deb_file_name(package: DebPackage) -> str:
    """The name `apt-get download` gives the file (the epoch colon is URL-quoted)."""
    return f"{package.name}_{package.version.replace(':', '%3a')}_all.deb"


def fetch_deb(package: DebPackage, download_dir: Path) -> Path:
    """Return the path of the verified .deb, downloading it with apt-get when not already there."""
    download_dir.mkdir(parents=True, exist_ok=True)
    path = download_dir / deb_file_name(package)
    if path.is_file() and sha256_of(path) == package.sha256:
        return path
    spec = f"{package.name}={package.version}"
    if shutil.which("apt-get") is None:
        raise CorpusError(
            f"cannot download {spec}: apt-get not found (the open corpus sources need a Debian-based "
            f"system). Alternatively place {path.name} (sha256 {package.sha256}) in {download_dir}.")
    try:
        # cwd: apt-get download writes into the current folder. As root it warns that the
        # download runs unsandboxed; that warning is harmless.
        result = subprocess.run(["apt-get", "download", spec], cwd=download_dir,
                                capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        raise CorpusError(f"downloading {spec} took over 30 minutes; check the network and apt sources") from None
    if result.returncode != 0 or not path.is_file():
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise CorpusError(
            f"`apt-get download {spec}` failed in {download_dir}: {' | '.join(detail)}. "
            f"Run `apt-get update` (as root) so apt knows this version; if the mirror no longer "
            f"has it, fetch {path.name} from snapshot.debian.org into {download_dir}.")
    actual = sha256_of(path)
    if actual != package.sha256:
        raise CorpusError(
            f"{path} has sha256 {actual}, expected {package.sha256} for {spec}: the mirror served "
            f"different bytes. Delete the file and run again; if it persists, check your apt sources.")
    return path


def unpack_deb(deb: Path, package: DebPackage) -> Path:
    """Unpack with `dpkg-deb -x` into a folder beside the .deb (once); return that folder."""
    target = deb.with_suffix(".unpacked")
    marker = target / _MARKER
    if marker.is_file() and marker.read_text().strip() == package.sha256:
        return target
    if shutil.which("dpkg-deb") is None:
        raise CorpusError(f"cannot unpack {deb}: dpkg-deb not found (Debian package `dpkg`)")
    with atomic_dir(target) as staging:
        result = subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], capture_output=True, text=True)
        if result.returncode != 0:
            raise CorpusError(f"`dpkg-deb -x {deb}` failed: {result.stderr.strip()}. Delete the file and run again.")
        (staging / _MARKER).write_text(package.sha256 + "\n")
    return target


def debian_package_root(name: str, download_dir: str | Path) -> Path:
    """The unpacked tree of a pinned package (its `usr/` inside), fetching it if needed."""
    package = PACKAGES[name]
    return unpack_deb(fetch_deb(package, Path(download_dir)), package)
