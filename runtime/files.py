"""File-system plumbing shared by every writer: atomic files, atomic folder replacement, the cache folder.

- ``atomic_write`` writes into a temporary file beside the target and renames it into place, so a
  reader never sees half a file and an interrupted write leaves the old file (or nothing). The new
  file gets the mode a plain ``open()`` would give it (0666 minus the umask), never mkstemp's 0600:
  outputs are meant to be read by other users, web servers and containers.
- ``replace_dir`` moves a finished staging folder onto its target; the old target is removed only
  after the new one is in place.
- ``cache_dir`` is ``$MMFIR_CACHE`` (an empty value counts as unset), else ``~/.cache/mmfir``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

CACHE_ENV = "MMFIR_CACHE"


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0666 minus the umask."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    return 0o777 & ~current_umask()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def temporary_path(path: Path) -> Path:
    """A fresh hidden name beside ``path`` (same file system, so the final rename is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path`` through (by any library); renamed into place on success.

    On any exception (KeyboardInterrupt and SystemExit included) the temporary file is deleted and
    the target is untouched.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """``write(binary_file)`` into a temporary file, then rename it onto ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def write_json_atomic(path: str | Path, data: dict) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def make_staging_dir(target: Path) -> Path:
    """A temporary sibling folder of ``target`` with the mode a plain ``mkdir`` would give it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staging.chmod(dir_mode())  # mkdtemp makes it private; bundles and repositories are shared
    return staging


def replace_dir(staging: Path, target: Path) -> Path:
    """Move ``staging`` onto ``target``; an existing ``target`` is removed only after the move."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        old.rmdir()
        target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        if old is not None:
            old.rename(target)  # put the previous one back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def cache_dir(*parts: str) -> Path:
    """``$MMFIR_CACHE/parts...`` (default ``~/.cache/mmfir``); not created here."""
    root = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache" / "mmfir")
    return Path(root).joinpath(*parts)


def local_or_cache(folder: Path, name: str, *cache_parts: str) -> Path:
    """``folder/name`` when ``folder`` is writable (e.g. a bundle), else ``cache_dir(*cache_parts)``."""
    return folder / name if os.access(folder, os.W_OK) else cache_dir(*cache_parts)
