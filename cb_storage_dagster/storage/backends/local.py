"""Local-disk backend: a root directory, atomic writes, ``file://`` URIs for delta-rs."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from cb_storage_dagster.domain.errors import BackendUnavailableError, NotFoundError, StorageError
from cb_storage_dagster.domain.identifiers import normalize_identifier
from cb_storage_dagster.storage.interfaces import IStorageBackend


class LocalFileBackend(IStorageBackend):
    """Stores objects as files under ``root_path``.

    Writes go to a temporary file in the target directory, are fsynced and then renamed
    over the target, so a reader sees the old file or the new one, never half of one; the
    directory is fsynced after the rename so that the new name survives a power loss. A
    writer killed mid-write leaves at most a hidden ``.name.*.tmp`` file, which listings skip.
    Identifiers are relative and cannot leave the root.

    Example:
        >>> import tempfile
        >>> backend = LocalFileBackend(tempfile.mkdtemp())
        >>> backend.save_bytes("ohlcv/a.json", b"{}")
        >>> backend.load_bytes("ohlcv/a.json"), backend.list_items("ohlcv")
        (b'{}', ['ohlcv/a.json'])
    """

    def __init__(self, root_path: str | os.PathLike[str], *, create: bool = True) -> None:
        root = Path(root_path).expanduser()
        if create:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BackendUnavailableError(
                    f"Cannot create the storage root {str(root)!r}: {exc.strerror}. "
                    "Check CB_STORAGE_LOCAL_ROOT_PATH and its permissions."
                ) from None
        if not root.is_dir():
            raise NotFoundError(
                f"Storage root {str(root)!r} is not a directory; set CB_STORAGE_LOCAL_ROOT_PATH "
                "to an existing folder."
            )
        self._root = root.resolve()

    @property
    def root_path(self) -> Path:
        return self._root

    def __repr__(self) -> str:
        return f"LocalFileBackend(root_path={str(self._root)!r})"

    def describe(self) -> str:
        return f"local:{self._root}"

    def _path(self, identifier: str, *, allow_empty: bool = False) -> Path:
        clean = normalize_identifier(identifier, allow_empty=allow_empty)
        path = (self._root / clean) if clean else self._root
        # Defence in depth: symlinks inside the root must not lead outside it. The root is
        # resolved and a clean identifier has no '..', so only a link below the root can.
        if _has_link_below(str(self._root), clean):
            resolved = path.resolve()
            if resolved != self._root and self._root not in resolved.parents:
                from cb_storage_dagster.domain.errors import InvalidKeyError

                raise InvalidKeyError(f"Identifier {identifier!r} resolves outside the storage root.")
        return path

    def get_uri_for_identifier(self, identifier: str) -> str:
        return self._path(identifier, allow_empty=True).as_uri()

    def get_storage_options(self) -> dict[str, str]:
        return {}

    def save_bytes(self, identifier: str, data: bytes) -> None:
        path = self._path(identifier)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _fsync_directory(path.parent)  # make the rename itself survive a power loss
        except OSError as exc:
            raise self._os_error(exc, identifier) from None

    def load_bytes(self, identifier: str) -> bytes:
        return self._read(identifier, None)

    def load_head(self, identifier: str, size: int) -> bytes:
        return self._read(identifier, size)

    def _read(self, identifier: str, size: int | None) -> bytes:
        path = self._path(identifier)
        try:
            if size is None:
                return path.read_bytes()
            with path.open("rb") as handle:
                return handle.read(size)
        except FileNotFoundError:
            raise NotFoundError(f"No object at {identifier!r} in {self.describe()}.") from None
        except IsADirectoryError:
            raise NotFoundError(f"{identifier!r} is a folder, not an object.") from None
        except OSError as exc:
            raise self._os_error(exc, identifier) from None

    def list_items(self, prefix: str = "") -> list[str]:
        base = self._path(prefix, allow_empty=True)
        if base.is_file():
            return [normalize_identifier(prefix)]
        if not base.is_dir():
            return []
        items: list[str] = []
        for dirpath, _dirnames, filenames in os.walk(base):
            for name in filenames:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue  # an in-flight atomic write
                full = Path(dirpath) / name
                items.append(full.relative_to(self._root).as_posix())
        return sorted(items)

    def exists(self, identifier: str) -> bool:
        return self._path(identifier, allow_empty=True).exists()

    def delete(self, identifier: str) -> None:
        path = self._path(identifier)
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            raise StorageError(f"{identifier!r} is a folder; delete objects one by one.") from None
        except OSError as exc:
            raise self._os_error(exc, identifier) from None

    def _os_error(self, exc: OSError, identifier: str) -> StorageError:
        if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO):
            return BackendUnavailableError(
                f"Local storage cannot access {identifier!r}: {exc.strerror}."
            )
        return StorageError(f"Local storage error on {identifier!r}: {exc.strerror}.")


def _has_link_below(root: str, clean: str) -> bool:
    """Whether a prefix of ``root/clean`` below ``root`` is a symbolic link (one ``lstat`` per
    existing segment: a read's path check costs a few microseconds, not a full ``realpath``)."""
    current = root
    for segment in clean.split("/") if clean else ():
        current = os.path.join(current, segment)
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return True
        except FileNotFoundError:
            return False  # nothing below a missing segment exists, links included
        except OSError:
            return True  # let resolve() decide (or fail) as before
    return False


def _fsync_directory(directory: Path) -> None:
    """fsync a directory so that a rename into it is durable (POSIX; a no-op elsewhere)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
