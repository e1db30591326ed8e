"""``If-Match`` / ``If-None-Match`` parsing and evaluation (PROTOCOL §10.4, §15 #6 #7).

Cliquet compares by **order** ("changed" = current > given). With the
``strict_preconditions`` setting the comparison is RFC-like equality, as in
Kinto 1.15+: 412 when ``If-Match`` differs, 304 when ``If-None-Match`` equals,
``If-Match: *`` accepted, and ``If-Match`` on an unknown record is a 412.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from cliquet_wsgi.errors import invalid_parameter

_ETAG = re.compile(r'"([0-9]+)"')

ANY = "*"


@dataclass(frozen=True)
class Preconditions:
    """Parsed headers: ``None`` (absent), an int, or ``"*"``."""

    if_match: int | str | None
    if_none_match: int | str | None
    strict: bool

    @property
    def empty(self) -> bool:
        return self.if_match is None and self.if_none_match is None

    def match_fails(self, current: int | None) -> bool:
        """``If-Match`` says the target changed. ``current`` None = the target does not exist."""
        given = self.if_match
        if given is None:
            return False
        if current is None:
            # §10.4 note 2: order mode does not evaluate If-Match on unknown targets.
            return self.strict
        if given == ANY:
            return False
        return current != given if self.strict else current > given

    def none_match_hits(self, current: int | None) -> bool:
        """``If-None-Match`` matches the current state (304 on reads, 412 on writes)."""
        given = self.if_none_match
        if given is None or current is None:
            return False
        if given == ANY:
            return True
        return current == given if self.strict else current <= given


def parse(if_match: str | None, if_none_match: str | None, *, strict: bool) -> Preconditions:
    """Parse both headers or raise 400/107 (location ``headers``)."""
    match = _parse_one(
        if_match,
        allow_any=strict,
        description="Invalid value for If-Match. The value should be integer between double quotes.",
    )
    none_match = _parse_one(if_none_match, allow_any=True, description="Invalid value for If-None-Match")
    return Preconditions(match, none_match, strict)


def _parse_one(value: str | None, *, allow_any: bool, description: str) -> int | str | None:
    if value is None:
        return None
    text = value.strip()
    if text == ANY and allow_any:
        return ANY
    found = _ETAG.fullmatch(text)
    if found is None:
        raise invalid_parameter("headers", None, description)
    return int(found.group(1))
