"""Delta tables as other engines leave them, and a filesystem that counts what a read opens.

delta-rs 1.6 can switch deletion vectors on but never writes one (its DELETE rewrites the
file), so :func:`delete_rows_with_deletion_vector` commits what Spark/Databricks commit: the
file removed and re-added with an inline deletion vector (the Delta protocol's
``RoaringBitmapArray``: magic 1681511377, a 64-bit bitmap count, then per bitmap its 32-bit
key and a portable Roaring bitmap; Z85-encoded in the log). delta-rs reads it back through
``deletion_vectors()``, which the tests use to prove the vector is really there.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pa_fs

_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_DV_MAGIC = 1681511377
_ROARING_NO_RUN_COOKIE = 12346


def z85(data: bytes) -> str:
    """Z85 (ZeroMQ base85) of ``data``, whose length must be a multiple of 4."""
    assert len(data) % 4 == 0
    out = []
    for i in range(0, len(data), 4):
        value = int.from_bytes(data[i:i + 4], "big")
        chunk = []
        for _ in range(5):
            value, digit = divmod(value, 85)
            chunk.append(_Z85[digit])
        out.append("".join(reversed(chunk)))
    return "".join(out)


def deletion_vector_bytes(rows: list[int]) -> bytes:
    """The serialized ``RoaringBitmapArray`` of ``rows`` (row indexes < 65536)."""
    rows = sorted(set(rows))
    assert rows and rows[-1] < 65536
    header = struct.pack("<II", _ROARING_NO_RUN_COOKIE, 1) + struct.pack("<HH", 0, len(rows) - 1)
    bitmap = header + struct.pack("<I", len(header) + 4) + b"".join(struct.pack("<H", r) for r in rows)
    return struct.pack("<I", _DV_MAGIC) + struct.pack("<Q", 1) + struct.pack("<I", 0) + bitmap


def _log_dir(table_path: Path) -> Path:
    return Path(table_path) / "_delta_log"


def _next_version(table_path: Path) -> int:
    return max(int(p.stem) for p in _log_dir(table_path).glob("*.json")) + 1


def _add_actions(table_path: Path) -> dict[str, dict[str, Any]]:
    """The live add actions by path (replaying the JSON log; no checkpoint expected)."""
    live: dict[str, dict[str, Any]] = {}
    for log in sorted(_log_dir(table_path).glob("*.json")):
        for line in log.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                live[action["add"]["path"]] = action["add"]
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
    return live


def _commit(table_path: Path, operation: str, actions: list[dict[str, Any]]) -> int:
    version = _next_version(table_path)
    now = int(time.time() * 1000)
    lines = [{"commitInfo": {"timestamp": now, "operation": operation, "engineInfo": "test-foreign-engine"}}]
    lines += actions
    target = _log_dir(table_path) / f"{version:020d}.json"
    with open(target, "x") as handle:  # "x": never overwrite a version
        handle.write("\n".join(json.dumps(line) for line in lines) + "\n")
    return version


def delete_rows_with_deletion_vector(table_path: Path, file_path: str, rows: list[int]) -> int:
    """Hide ``rows`` (0-based row indexes) of the data file ``file_path`` with an inline
    deletion vector, as one commit. Returns the new version."""
    add = dict(_add_actions(table_path)[file_path])
    body = deletion_vector_bytes(rows)
    padded = body + b"\0" * (-len(body) % 4)
    add["deletionVector"] = {
        "storageType": "i", "pathOrInlineDv": z85(padded), "sizeInBytes": len(body),
        "cardinality": len(set(rows)),
    }
    add["dataChange"] = True
    remove = {
        "path": file_path, "deletionTimestamp": int(time.time() * 1000), "dataChange": True,
        "extendedFileMetadata": True, "partitionValues": add["partitionValues"], "size": add["size"],
    }
    return _commit(table_path, "DELETE", [{"remove": remove}, {"add": add}])


def require_unknown_reader_feature(table_path: Path, feature: str = "futureEngineFeature") -> int:
    """Commit a protocol that requires a reader feature no engine here knows (a table written
    by a newer engine). Returns the new version."""
    protocol = {"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": [feature], "writerFeatures": [feature]}
    return _commit(table_path, "SET TBLPROPERTIES", [{"protocol": protocol}])


class CountingHandler(pa_fs.FileSystemHandler):
    """A pyarrow filesystem handler that delegates to ``inner`` and records every file opened
    for reading (``opened``: paths, in order, repeats included)."""

    def __init__(self, inner: pa_fs.FileSystem) -> None:
        self.inner = inner
        self.opened: list[str] = []

    def get_type_name(self) -> str:
        return f"counting+{self.inner.type_name}"

    def normalize_path(self, path: str) -> str:
        return self.inner.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pa_fs.FileInfo]:
        return self.inner.get_file_info(paths)

    def get_file_info_selector(self, selector: pa_fs.FileSelector) -> list[pa_fs.FileInfo]:
        return self.inner.get_file_info(selector)

    def open_input_file(self, path: str) -> Any:
        self.opened.append(path)
        return self.inner.open_input_file(path)

    def open_input_stream(self, path: str) -> Any:
        self.opened.append(path)
        return self.inner.open_input_stream(path)

    def equals(self, other: Any) -> bool:
        return self is other

    # -- a read never writes: anything else is refused loudly -------------------------
    def _refuse(self, *args: Any) -> Any:
        raise AssertionError("a read must not modify storage")

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = _refuse
    delete_file = move = copy_file = open_output_stream = open_append_stream = _refuse
