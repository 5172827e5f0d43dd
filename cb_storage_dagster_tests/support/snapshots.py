"""Byte-for-byte snapshots of everything a backend stores, to prove a refused write changed nothing."""

from __future__ import annotations

from cb_storage_dagster.storage.interfaces import IStorageBackend


def snapshot(backend: IStorageBackend) -> dict[str, bytes]:
    return {identifier: backend.load_bytes(identifier) for identifier in backend.list_items("")}
