"""The IStorageBackend contract, proven on local disk and on Azurite."""

from __future__ import annotations

import pytest

from cb_storage_dagster.storage import InvalidKeyError, LocalFileBackend, NotFoundError

TRAVERSALS = ["../x", "a/../../x", "/etc/passwd", "a\\b", "a//b", "./a", "a/./b", "", "C:\\x", "a\x00b"]


def test_bytes_round_trip_and_overwrite(backend):
    backend.save_bytes("ohlcv/a.bin", b"one")
    backend.save_bytes("ohlcv/a.bin", b"two")
    assert backend.load_bytes("ohlcv/a.bin") == b"two"


def test_loading_a_missing_object_is_not_found(backend):
    with pytest.raises(NotFoundError):
        backend.load_bytes("nothing/here.bin")
    with pytest.raises(NotFoundError):
        backend.load_head("nothing/here.bin", 10)


def test_the_head_of_an_object_is_its_first_bytes_or_all_of_a_smaller_one(backend):
    backend.save_bytes("ohlcv/a.bin", b"0123456789")
    assert backend.load_head("ohlcv/a.bin", 4) == b"0123"
    assert backend.load_head("ohlcv/a.bin", 64 * 1024) == b"0123456789"


def test_listing_is_recursive_relative_and_sorted(backend):
    for name in ("t/b/2.bin", "t/a/1.bin", "t/c.bin", "u/d.bin"):
        backend.save_bytes(name, b"x")
    assert backend.list_items("t") == ["t/a/1.bin", "t/b/2.bin", "t/c.bin"]
    assert backend.list_items("t/") == ["t/a/1.bin", "t/b/2.bin", "t/c.bin"]
    assert backend.list_items("missing") == []
    assert backend.list_items("") == ["t/a/1.bin", "t/b/2.bin", "t/c.bin", "u/d.bin"]


def test_exists_for_objects_and_folders(backend):
    backend.save_bytes("t/a/1.bin", b"x")
    assert backend.exists("t/a/1.bin") and backend.exists("t/a") and not backend.exists("t/z")


def test_delete_is_idempotent(backend):
    backend.save_bytes("t/1.bin", b"x")
    backend.delete("t/1.bin")
    backend.delete("t/1.bin")
    assert not backend.exists("t/1.bin")


@pytest.mark.parametrize("identifier", TRAVERSALS)
def test_identifiers_cannot_escape_the_root(backend, identifier):
    with pytest.raises(InvalidKeyError):
        backend.save_bytes(identifier, b"x")
    with pytest.raises(InvalidKeyError):
        backend.load_bytes(identifier)


def test_storage_options_and_uri_are_for_delta_rs(backend, backend_kind):
    uri = backend.get_uri_for_identifier("ohlcv")
    assert uri.endswith("/ohlcv")
    assert uri.startswith("file://" if backend_kind == "local" else "abfss://")
    assert isinstance(backend.get_storage_options(), dict)


def test_local_writes_leave_no_temporary_files(tmp_path):
    backend = LocalFileBackend(tmp_path)
    for i in range(20):
        backend.save_bytes("t/x.bin", bytes([i]) * 1000)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["x.bin"]


def test_local_symlinks_cannot_lead_outside_the_root(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(InvalidKeyError, match="outside the storage root"):
        LocalFileBackend(root).save_bytes("link/x.bin", b"x")
    assert list(outside.iterdir()) == []


def test_local_symlinks_deeper_in_the_root_are_checked_too(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    (root / "ohlcv" / "exchange=binance").mkdir(parents=True)
    (root / "ohlcv" / "exchange=binance" / "away").symlink_to(outside)
    (root / "ohlcv" / "dangling").symlink_to(tmp_path / "nowhere")
    backend = LocalFileBackend(root)
    for identifier in ("ohlcv/exchange=binance/away/x.bin", "ohlcv/dangling/x.bin"):
        with pytest.raises(InvalidKeyError, match="outside the storage root"):
            backend.save_bytes(identifier, b"x")
        with pytest.raises(InvalidKeyError, match="outside the storage root"):
            backend.get_uri_for_identifier(identifier)
    assert list(outside.iterdir()) == []


def test_local_symlinks_that_stay_inside_the_root_are_allowed(tmp_path):
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real")
    backend = LocalFileBackend(root)
    backend.save_bytes("alias/x.bin", b"x")
    assert backend.load_bytes("real/x.bin") == b"x"
