"""User errors and credential redaction, shared by every stage and the command line.

- :class:`UserError`: a problem the user can fix (a bad setting, a missing or unusable input, an unwritable
  folder). The CLI prints its message as one line on stderr and exits 2; anything else is a bug and keeps its
  traceback.
- :func:`redact`: a URL's ``user:password@`` part replaced by ``***@`` in any text. Everything that shows or
  stores a URL (log lines, including the HTTP client's; judge cache files; a config's ``repr`` and its saved
  ``config.json``; error messages) goes through it, so a credential written into a URL never leaves it.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

__all__ = ["UserError", "redact", "redact_obj", "redacted_repr", "RedactingFilter", "install_log_redaction"]


class UserError(Exception):
    """An error the user can fix; the CLI shows its message as one line (exit status 2), with no traceback."""


#: ``scheme://user:pass@`` (or ``scheme://token@``): the userinfo part of a URL.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@'\"]+)@")


def redact(text: Any) -> Any:
    """``text`` with the credentials of every URL in it replaced by ``***`` (non-strings are returned as given)."""
    if not isinstance(text, str):
        return text
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)


def redact_obj(obj: Any) -> Any:
    """:func:`redact` applied to every string inside nested dicts, lists and tuples."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_obj(v) for v in obj)
    return obj


def redacted_repr(obj: Any) -> str:
    """A dataclass's usual ``Name(field=value, ...)`` repr, with URL credentials redacted."""
    fields = ", ".join(f"{f.name}={getattr(obj, f.name)!r}" for f in dataclasses.fields(obj) if f.repr)
    return redact(f"{type(obj).__name__}({fields})")


class RedactingFilter(logging.Filter):
    """Redacts URL credentials in a log record's message and arguments (installed on the HTTP client loggers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(str(a)) if _has_userinfo(a) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(str(v)) if _has_userinfo(v) else v for k, v in record.args.items()}
        return True


def _has_userinfo(value: Any) -> bool:
    try:
        return bool(_USERINFO.search(str(value)))
    except Exception:  # noqa: BLE001 - an object whose str() fails is left alone
        return False


_FILTER = RedactingFilter()


def install_log_redaction(names: tuple[str, ...] = ("httpx", "httpcore", "openai", "openai._base_client")) -> None:
    """Add :class:`RedactingFilter` to the named loggers (the HTTP client's, which log request URLs) and to the
    root logger's handlers (idempotent)."""
    for lg in [logging.getLogger(n) for n in names]:
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)
    for h in logging.getLogger().handlers:
        if _FILTER not in h.filters:
            h.addFilter(_FILTER)
