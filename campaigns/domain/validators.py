"""Checks of single values that several models share. Each raises ValueError with
a message that says what was expected, so the API can name the field and the reason."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache
from typing import Annotated

import annotated_types
import langcodes
from pydantic import AfterValidator, AllowInfNan

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


# --- Numbers ---------------------------------------------------------------------------
# Every number a client sends is bounded: an integer fits Postgres' bigint, a float is finite
# and of a sane magnitude, so no input overflows the driver, a computation or a cast.

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_MAGNITUDE = 1e12  # larger than any money, count or score the platform keeps
MIN_MAGNITUDE = 1e-9  # closer to 0 than that (but not 0) is a unit mistake or an attack


def _sane(value: float) -> float:
    if value != 0 and abs(value) < MIN_MAGNITUDE:
        raise ValueError(f"must be 0 or at least {MIN_MAGNITUDE:g} in magnitude")
    return value


Int64 = Annotated[int, annotated_types.Ge(INT64_MIN), annotated_types.Le(INT64_MAX)]
Count = Annotated[int, annotated_types.Ge(0), annotated_types.Le(INT64_MAX)]
Real = Annotated[
    float,
    AllowInfNan(False),
    annotated_types.Ge(-MAX_MAGNITUDE),
    annotated_types.Le(MAX_MAGNITUDE),
    AfterValidator(_sane),
]
Rate = Annotated[float, AllowInfNan(False), annotated_types.Ge(0), annotated_types.Le(1), AfterValidator(_sane)]
NonNegativeReal = Annotated[
    float, AllowInfNan(False), annotated_types.Ge(0), annotated_types.Le(MAX_MAGNITUDE), AfterValidator(_sane)
]
