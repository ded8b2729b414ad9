"""File plumbing: atomic writes with the umask's mode, nothing left on failure, directory replace, cache dir,
and the bundle manifest's locked read-modify-write (two processes editing at once keep both edits)."""
from __future__ import annotations

import multiprocessing
import os
import stat

import pytest

from mmfir.runtime.files import (atomic_path, atomic_write, cache_dir, make_staging_dir, replace_dir,
                                 write_json_atomic)


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)

    saved = os.umask(0o022)
    yield set_mask
    os.umask(saved)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_new_files_get_the_umask_mode_not_0600(tmp_path, umask, mask, expected):
    umask(mask)
    assert mode(write_json_atomic(tmp_path / "a.json", {"x": 1})) == expected
    assert mode(atomic_write(tmp_path / "b.bin", lambda f: f.write(b"x"))) == expected
    assert mode(make_staging_dir(tmp_path / "bundle")) == 0o777 & ~mask


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, error):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def fail(f):
        f.write(b"half")
        raise error

    with pytest.raises(type(error)):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "new.bin") as tmp:
        tmp.write_bytes(b"x")
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_replace_dir_swaps_whole_folders(tmp_path):
    old, new = tmp_path / "bundle", make_staging_dir(tmp_path / "bundle")
    old.mkdir()
    (old / "stale.plan").write_text("old")
    (new / "manifest.json").write_text("{}")
    replace_dir(new, old)
    assert [p.name for p in old.iterdir()] == ["manifest.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no .old or .tmp siblings


def test_cache_dir_treats_an_empty_variable_as_unset(monkeypatch, tmp_path):
    monkeypatch.setenv("MMFIR_CACHE", str(tmp_path))
    assert cache_dir("bundles") == tmp_path / "bundles"
    monkeypatch.setenv("MMFIR_CACHE", "")
    assert cache_dir() == cache_dir.__globals__["Path"].home() / ".cache" / "mmfir"


def test_the_suite_runs_with_its_own_cache():
    assert os.environ["MMFIR_CACHE"] and "mmfir-test-cache-" in os.environ["MMFIR_CACHE"]


def _add_keys(root: str, prefix: str, count: int) -> None:
    from mmfir.runtime.bundle import Bundle

    bundle = Bundle(root, {})
    for i in range(count):
        bundle.edit_manifest(lambda m, i=i: m.setdefault("engines", {}).__setitem__(f"{prefix}{i}", i))


def test_concurrent_manifest_edits_keep_every_record(tmp_path):
    from pathlib import Path

    from mmfir.runtime.bundle import MANIFEST, read_manifest

    write_json_atomic(tmp_path / MANIFEST, {"format": "x"})
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_add_keys, args=(Path(tmp_path), p, 40)) for p in ("a", "b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert all(w.exitcode == 0 for w in workers)
    engines = read_manifest(tmp_path / MANIFEST)["engines"]
    assert len(engines) == 80 and {f"a{i}" for i in range(40)} | {f"b{i}" for i in range(40)} == set(engines)
