"""Secrets used by the test suite, which must never appear in any log record (RELIABILITY S9).

Tests that send credentials or configure secrets should take them from here
(or add theirs to these lists), so that the session-wide scan installed by
``tests/conftest.py`` checks them: at the end of the run it fails if any log
record of the whole suite, at any level, contains one of :data:`SECRETS`.
Choose values distinctive enough not to appear by chance in a log line.
"""
from __future__ import annotations

import base64
import logging
import traceback

#: ``userid_hmac_secret`` values and other server-side keys.
HMAC_SECRETS = ["my-hmac-secret", "hmac-secret-4c1e7b", "s3cret&"]

#: Basic Auth (user, password) pairs.
BASIC_AUTH_USERS = [("alice", "alice-pa55word-9f2"), ("bob", "bob-pa55word-7e1")]

#: Bearer tokens sent by tests.
TOKENS = ["secret-token-value", "tok-secret-1", "bearer-tok-51de"]


def basic_header(user: str, password: str) -> str:
    """The ``Authorization`` value for Basic Auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")


#: Everything that must never be logged, including the encoded forms of the credentials.
SECRETS = [
    *HMAC_SECRETS,
    *(password for _, password in BASIC_AUTH_USERS),
    *(basic_header(user, password).split(" ", 1)[1] for user, password in BASIC_AUTH_USERS),
    *TOKENS,
]


def record_text(record: logging.LogRecord) -> str:
    """All the text a record can carry: message, arguments, extras, exception and stack."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string must not hide the rest
        message = repr(record.msg)
    parts = [message, repr(vars(record))]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


class SecretScanHandler(logging.Handler):
    """Looks at every record it gets and remembers those that contain a secret."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.secrets = list(secrets)
        self.count = 0
        self.offences: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        text = record_text(record)
        for secret in self.secrets:
            if secret in text:
                where = f"{record.name}:{record.levelname} at {record.pathname}:{record.lineno}"
                self.offences.append(f"{where}: contains secret {secret[:3]}… in {record.msg!r}")
