"""Checks of single values that several models share. Each raises ValueError with
a message that says what was expected, so the API can name the field and the reason."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache

import langcodes

_BCP47_SHAPE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
_NOT_REAL_ZONES = {"Factory", "localtime"}


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones() - _NOT_REAL_ZONES)


def iana_timezone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"{value!r} is not an IANA timezone name (e.g. 'Europe/Paris', 'America/New_York')")
    return value


def bcp47_language(value: str) -> str:
    if not _BCP47_SHAPE.fullmatch(value) or not langcodes.tag_is_valid(value):
        raise ValueError(f"{value!r} is not a BCP-47 language tag (e.g. 'en-US', 'es-ES')")
    if langcodes.Language.get(value).language in (None, "und"):
        raise ValueError(f"{value!r} does not name a language")
    return value


@lru_cache(maxsize=1)
def _regions() -> frozenset[str]:
    import phonenumbers

    return frozenset(phonenumbers.SUPPORTED_REGIONS)


def country_code(value: str) -> str:
    code = value.upper()
    if code not in _regions():
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. 'US', 'DE')")
    return code


_CURRENCY = re.compile(r"[A-Z]{3}")


def currency_code(value: str) -> str:
    code = value.upper()
    if not _CURRENCY.fullmatch(code):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. 'USD', 'EUR')")
    return code
