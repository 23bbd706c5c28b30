"""Write outputs so that an interrupted or failed stage never leaves a half-written result.

Snakemake and DVC both take an existing output path as done. Every stage therefore builds
its output beside the final path and renames it into place only when it is complete: a
crash leaves the previous output (or nothing) and a `.partial` folder that the next run
removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a fresh staging folder; on success it replaces `final` in one rename."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(final.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if final.exists():
        old = final.with_name(final.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old)
    else:
        os.replace(staging, final)


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary file path in the same folder; renamed onto `final` on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file 0600 whatever the umask; the result should read as any file the
        # user writes (0644 under the usual umask 022), so a team's other accounts can read it.
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def current_umask() -> int:
    """The process's umask (reading it means setting it: it is put straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    """Atomically write a text file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    """Atomically write pretty, key-sorted JSON (stable diffs for DVC metrics)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def writable_problem(path: str | Path, kind: str) -> str | None:
    """Why `path` could not be written as a `kind` ("file" or "folder"), or None if it can.

    Checked before a stage spends minutes on work whose result it then cannot save: the nearest
    existing ancestor must be a writable folder, and `path` itself, if present, of the right
    kind and writable. One check for every stage that takes a user's output path.
    """
    path = Path(path)
    if path.exists():
        if kind == "file" and path.is_dir():
            return f"{path} is a folder: give a file path"
        if kind == "folder" and not path.is_dir():
            return f"{path} is a file: give a folder"
        if not os.access(path, os.W_OK | (os.X_OK if kind == "folder" else 0)):
            return f"cannot write {path}: permission denied"
        if kind == "folder":
            return None
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot write {path}: {existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write {path}: {existing} is not writable (permission denied)"
    return None
