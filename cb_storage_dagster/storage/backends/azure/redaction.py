"""Secrets out of text: the one redaction rule for Azure error messages and log records.

:func:`redact` removes the known secret values of a backend and every secret-looking
fragment (SAS query parameters, connection-string fields, form-encoded OAuth secrets,
authorization headers) that SDK and delta-rs messages may quote. :func:`install_log_redaction`
applies it to the loggers that print request lines (urllib3 logs every request at DEBUG,
query string included, and a SAS token *is* a query string).

Example:
    >>> redact("GET /c/b?sv=2024&sig=abc123 failed")
    'GET /c/b?sv=***&sig=*** failed'
    >>> redact("AccountName=a;AccountKey=c2VjcmV0", secrets=["c2VjcmV0"])
    'AccountName=a;AccountKey=***'
    >>> redact("a   long\\n message", limit=10)
    'a long ...'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

__all__ = ["install_log_redaction", "redact"]

_SECRET_PATTERNS = (
    re.compile(r"(?i)\b(sig|se|sp|sv|ss|srt|spr|st|skoid|sktid|skt|ske|sks|skv)=[^&\s'\"]+"),
    re.compile(r"(?i)(AccountKey|SharedAccessSignature|client_secret|password)=[^;&\s'\"]+"),
    re.compile(r"(?i)(Authorization|x-ms-copy-source-authorization)\s*[:=]\s*[^\r\n,'\"]+"),
)


def _masked(match: re.Match[str]) -> str:
    return match.group(0).split("=", 1)[0].split(":", 1)[0] + "=***"


def redact(text: str, secrets: Iterable[str] = (), *, limit: int | None = None) -> str:
    """``text`` without the values in ``secrets`` and without secret-looking fragments.

    With ``limit``, white space is folded too and the result cut to ``limit`` characters
    (for one-line error messages).
    """
    for secret in secrets:
        text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(_masked, text)
    if limit is None:
        return text
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _RedactSecretsFilter(logging.Filter):
    """Applies :func:`redact` to every record of the loggers it is installed on."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        redacted = redact(text)
        if redacted != text:
            record.msg, record.args = redacted, None
        return True


_REDACT_FILTER = _RedactSecretsFilter()
_REDACTED_LOGGERS = (
    "urllib3.connectionpool",
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.identity",
)


def install_log_redaction() -> None:
    """Install the redaction filter on the SDK's and urllib3's loggers (idempotent)."""
    for name in _REDACTED_LOGGERS:
        target = logging.getLogger(name)
        if _REDACT_FILTER not in target.filters:
            target.addFilter(_REDACT_FILTER)
