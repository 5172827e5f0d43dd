"""Relative object identifiers (``ohlcv/exchange=binance/...``) that cannot escape a root."""

from __future__ import annotations

from cb_storage_dagster.domain.errors import InvalidKeyError

_FORBIDDEN_CHARS = set('\\:*?"<>|\'')


def normalize_identifier(identifier: str, *, allow_empty: bool = False) -> str:
    """Return a clean ``a/b/c`` identifier or raise :class:`InvalidKeyError`.

    Rejected: absolute paths, ``..`` or ``.`` segments, backslashes, drive letters,
    quotes, control characters and empty segments. A trailing ``/`` is dropped.

    >>> normalize_identifier("ohlcv/exchange=binance/")
    'ohlcv/exchange=binance'
    """
    if not isinstance(identifier, str):
        raise InvalidKeyError(f"Identifier must be a string, got {type(identifier).__name__}.")
    if identifier == "" and allow_empty:
        return ""
    if identifier.startswith("/"):
        raise InvalidKeyError(
            f"Identifier {identifier!r} is absolute; use a path relative to the storage root."
        )
    stripped = identifier[:-1] if identifier.endswith("/") else identifier
    if stripped == "":
        if allow_empty:
            return ""
        raise InvalidKeyError("Identifier is empty.")
    bad = sorted({c for c in stripped if c in _FORBIDDEN_CHARS or ord(c) < 32 or ord(c) == 127})
    if bad:
        raise InvalidKeyError(
            f"Identifier {identifier!r} contains forbidden characters {bad!r}; "
            "use letters, digits and '/', '=', '.', '_', '-'."
        )
    for segment in stripped.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKeyError(
                f"Identifier {identifier!r} has an empty, '.' or '..' segment; "
                "identifiers cannot leave the storage root."
            )
    return stripped


def join_identifier(*parts: str) -> str:
    return normalize_identifier("/".join(p.strip("/") for p in parts if p))
