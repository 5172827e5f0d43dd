"""Where a Delta table's files are, and whether its log moved past a version.

* :func:`local_root`: the folder of a table on local disk (``None`` for an object store),
  so local reads use pyarrow's native filesystem;
* :func:`filesystem_for`: a pyarrow filesystem for a table's data files (pyarrow's native
  one on disk, delta-rs' object-store handler with the log's file sizes elsewhere);
* :class:`CommitProbe`: whether the commit after a loaded version exists, with one
  existence check (a ``stat`` on disk, one ``HEAD`` on an object store, through delta-rs'
  object store and the backend's credentials). A reader that finds no next commit knows its
  cached snapshot is the latest without listing the log (delta-rs' ``update_incremental``
  lists ``_delta_log/`` and reads ``_last_checkpoint``: two round trips on Azure). Every
  commit, ours or a foreign writer's, creates exactly that file, so the next read after any
  write sees it.

>>> local_root("file:///tmp/t"), local_root("az://container/t")
('/tmp/t', None)
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

READER_FULL_REFRESH_SECONDS = 600.0
"""A reader's cached table state is refreshed by listing the log at least this often, even
when its next commit file is absent: that file may be gone (log cleanup after a checkpoint)
only if the cached version is older than the log retention (days), so this bounds that case."""


def local_root(table_uri: str) -> str | None:
    """The local folder of ``table_uri`` (no trailing slash), or ``None`` for a remote store."""
    parts = urlsplit(table_uri)
    if parts.scheme not in ("", "file"):
        return None
    root = url2pathname(parts.path) if parts.scheme else table_uri
    return root.rstrip("/")


def filesystem_for(
    table_uri: str, paths: list[str], sizes: list[int], storage_options: dict[str, str]
) -> tuple[Any, list[str]]:
    """A pyarrow filesystem and the paths of the given data files on it.

    Local tables use pyarrow's native filesystem (no Python in the read loop); other
    stores use delta-rs' object-store handler with the sizes from the log (no HEAD calls).
    """
    import pyarrow.fs as pa_fs

    root = local_root(table_uri)
    if root is not None:
        return pa_fs.LocalFileSystem(), [f"{root}/{p}" for p in paths]
    from deltalake.fs import DeltaStorageHandler

    handler = DeltaStorageHandler(table_uri, storage_options or None, dict(zip(paths, sizes)))
    return pa_fs.PyFileSystem(handler), list(paths)


def commit_file(version: int) -> str:
    """The log entry of ``version``, relative to the table root."""
    return f"_delta_log/{version:020d}.json"


class CommitProbe:
    """Checks for a table's next commit file; keeps one object-store handler per table."""

    def __init__(self) -> None:
        self._handlers: dict[str, Any] = {}
        self._lock = threading.Lock()

    def exists(self, table_uri: str, version: int, storage_options: dict[str, str]) -> bool:
        """Whether the commit of ``version`` exists. Errors propagate (the caller then
        refreshes the usual way, which reports them as the project's errors)."""
        root = local_root(table_uri)
        if root is not None:
            return os.path.exists(os.path.join(root, commit_file(version)))
        handler = self._handler(table_uri, storage_options)
        try:  # one HEAD (the handler's get_file_info lists the "folder" first: two requests)
            handler.open_input_file(commit_file(version))
        except FileNotFoundError:
            return False
        return True

    def _handler(self, table_uri: str, storage_options: dict[str, str]) -> Any:
        from deltalake.fs import DeltaStorageHandler

        key = table_uri + "\0" + repr(sorted(storage_options.items()))
        with self._lock:
            handler = self._handlers.get(key)
            if handler is None:
                handler = DeltaStorageHandler(table_uri, storage_options or None)
                self._handlers[key] = handler
            return handler


__all__ = ["READER_FULL_REFRESH_SECONDS", "CommitProbe", "commit_file", "filesystem_for", "local_root"]
