"""A commit's fingerprint ties the file index and the instrument list to their log."""

from __future__ import annotations

import hashlib

from cb_storage_dagster.storage import LocalFileBackend
from cb_storage_dagster.storage.delta.commit_stamp import FINGERPRINT_BYTES, commit_stamp, matches

COMMIT = "t/_delta_log/00000000000000000003.json"


class CountingBackend(LocalFileBackend):
    """Counts the bytes read (whole objects and heads)."""

    read = 0

    def load_bytes(self, identifier: str) -> bytes:
        data = super().load_bytes(identifier)
        self.read += len(data)
        return data

    def load_head(self, identifier: str, size: int) -> bytes:
        data = super().load_head(identifier, size)
        self.read += len(data)
        return data


def as_metadata(stamp: dict[str, str]) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in stamp.items()}


def test_checking_a_stamp_reads_the_head_of_a_large_commit_only(tmp_path):
    backend = CountingBackend(tmp_path)
    backend.save_bytes(COMMIT, b'{"commitInfo": {"timestamp": 1}}\n' + b'{"remove": {}}\n' * 1_000_000)
    stamp = as_metadata(commit_stamp(backend, "t", 3))
    backend.read = 0
    assert matches(backend, "t", 3, stamp)
    assert backend.read == FINGERPRINT_BYTES


def test_a_recreated_table_with_other_commit_bytes_does_not_match(tmp_path):
    backend = LocalFileBackend(tmp_path)
    backend.save_bytes(COMMIT, b'{"commitInfo": {"timestamp": 1}}')
    stamp = as_metadata(commit_stamp(backend, "t", 3))
    backend.save_bytes(COMMIT, b'{"commitInfo": {"timestamp": 2}}')
    assert not matches(backend, "t", 3, stamp)


def test_a_cleaned_up_commit_matches_nothing_and_stamps_nothing(tmp_path):
    backend = LocalFileBackend(tmp_path)
    backend.save_bytes(COMMIT, b"{}")
    stamp = as_metadata(commit_stamp(backend, "t", 3))
    backend.delete(COMMIT)
    assert not matches(backend, "t", 3, stamp)
    assert commit_stamp(backend, "t", 3) is None
    assert not matches(backend, "t", 3, {})


def test_stamps_of_earlier_releases_digest_the_whole_commit(tmp_path):
    backend = LocalFileBackend(tmp_path)
    backend.save_bytes(COMMIT, b'{"commitInfo": {"timestamp": 1}}')
    legacy = {b"cb.commit_sha256": hashlib.sha256(b'{"commitInfo": {"timestamp": 1}}').hexdigest().encode()}
    assert matches(backend, "t", 3, legacy)
    backend.save_bytes(COMMIT, b'{"commitInfo": {"timestamp": 2}}')
    assert not matches(backend, "t", 3, legacy)
