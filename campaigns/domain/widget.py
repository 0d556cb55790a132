"""The web widget's settings (section 2 of the specification), validated, and the
rules the public endpoints apply to them: which origins may use a widget, and which
pages it shows on. Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator

from campaigns.domain.base import ApiModel

# --- Single values -------------------------------------------------------------------

_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def hex_colour(value: str) -> str:
    """'#abc' or '#AABBCC', returned as '#aabbcc' (one spelling, so equal colours compare equal)."""
    if not _HEX.fullmatch(value):
        raise ValueError(f"{value!r} is not a hex colour like '#4f46e5' or '#fff'")
    digits = value[1:].lower()
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return "#" + digits


def image_url(value: str) -> str:
    """An absolute https URL (http only for a local host), with no credentials in it."""
    parts = urlsplit(value)
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ValueError("must be an https:// URL")
    if not parts.hostname or parts.username or parts.password:
        raise ValueError("must be an absolute URL with a host and no user name or password")
    if any(c.isspace() or ord(c) < 0x20 for c in value):
        raise ValueError("must not contain spaces or control characters")
    return value


_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _valid_host(host: str) -> bool:
    if host == "localhost":
        return True
    if re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", host):
        return all(int(p) <= 255 for p in host.split("."))
    labels = host.split(".")
    return len(host) <= 253 and len(labels) >= 2 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def normalize_origin(value: str) -> str:
    """An allowed origin as the browser sends it: 'https://shop.example.com' (lower case, no
    default port, no path). A leading '*.' label allows every subdomain: 'https://*.example.com'."""
    text = value.strip()
    if text == "*":
        raise ValueError("'*' would let any site send events with this widget's key; list each origin")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{value!r} is not an origin like 'https://www.example.com'")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{value!r}: an origin is scheme://host[:port], without path, query or user")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} has an invalid port") from None
    raw_host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    host = raw_host.lower()
    wildcard = host.startswith("*.")
    bare = host[2:] if wildcard else host
    if not bare.isascii():
        raise ValueError(f"{value!r}: write an internationalized host in its punycode form (xn--…)")
    if not _valid_host(bare) or (wildcard and bare in ("localhost",)):
        raise ValueError(f"{value!r} does not name a valid host")
    if wildcard and bare.count(".") < 1:
        raise ValueError(f"{value!r}: a wildcard needs a registrable domain after it ('https://*.example.com')")
    netloc = host if port is None or port == _DEFAULT_PORTS[parts.scheme] else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}"


def _split(origin: str) -> tuple[str, str, str]:
    """'https://a.example.com:8443' → ('https', 'a.example.com', '8443'); the port may be ''."""
    scheme, _, netloc = origin.partition("://")
    host, _, port = netloc.partition(":")
    return scheme, host, port


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """Whether a browser's Origin header matches one of the (normalized) allowed origins."""
    if not origin or origin == "null":
        return False
    try:
        candidate = normalize_origin(origin)
    except ValueError:
        return False
    if "*" in candidate:
        return False  # a browser never sends a wildcard
    if candidate in allowed:
        return True
    scheme, host, port = _split(candidate)
    for entry in allowed:
        entry_scheme, entry_host, entry_port = _split(entry)
        if entry_host.startswith("*.") and (entry_scheme, entry_port) == (scheme, port):
            # Any proper subdomain, at any depth; never the bare domain itself.
            if host.endswith(entry_host[1:]):
                return True
    return False


_PATTERN = re.compile(r"/[A-Za-z0-9._~!$&'()+,;=:@%*/-]*")


def page_pattern(value: str) -> str:
    """A path pattern: '/pricing', '/blog/*' (one segment), '/docs/**' (anything below)."""
    if not _PATTERN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a path pattern: start with '/', use '*' for one path segment and '**' for any depth"
        )
    if "***" in value:
        raise ValueError(f"{value!r}: use '*' or '**', not more")
    return value


def page_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression a page pattern means (widget.js builds the same one)."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def shows_on_page(path: str, show_on: list[str], hide_on: list[str]) -> bool:
    """Hidden on any `hide_on` page; otherwise shown on `show_on` pages (all pages when empty)."""
    if any(page_regex(p).fullmatch(path) for p in hide_on):
        return False
    return not show_on or any(page_regex(p).fullmatch(path) for p in show_on)


# --- The settings ---------------------------------------------------------------------

Colour = Annotated[str, AfterValidator(hex_colour)]
Origin = Annotated[str, AfterValidator(normalize_origin)]
ImageUrl = Annotated[str, Field(max_length=2000), AfterValidator(image_url)]
PagePattern = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(page_pattern)]


class WidgetStyling(ApiModel):
    primary_color: Colour = "#4f46e5"
    text_color: Colour = "#ffffff"
    background_color: Colour = "#ffffff"
    position: Literal["bottom-right", "bottom-left", "top-right", "top-left"] = "bottom-right"
    size: Literal["small", "medium", "large"] = "medium"
    theme: Literal["light", "dark", "auto"] = "light"
    launcher_text: Annotated[str, Field(min_length=1, max_length=40)] = "Talk to us"
    title: Annotated[str, Field(min_length=1, max_length=80)] = "Questions? Talk to our assistant"
    avatar_url: ImageUrl | None = None


class WidgetBehavior(ApiModel):
    auto_open_delay: int | None = Field(
        default=None, ge=0, le=3600, description="Seconds after the page loads before the panel opens; null: never"
    )
    show_on_pages: list[PagePattern] = Field(default_factory=list, max_length=100)
    hide_on_pages: list[PagePattern] = Field(default_factory=list, max_length=100)
    show_only_during_window: bool = Field(
        default=False, description="Show the launcher only while the campaign's calling window is open"
    )
    greeting: Annotated[str, Field(max_length=300)] | None = None


class WidgetIntegration(ApiModel):
    allowed_origins: list[Origin] = Field(
        default_factory=list,
        max_length=50,
        description="Sites that may show the widget and send its events, e.g. 'https://www.example.com' "
        "or 'https://*.example.com'. The platform's own preview page is always allowed.",
    )

    @field_validator("allowed_origins")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class WidgetSettings(ApiModel):
    """Everything `PUT /api/campaigns/{id}/widget` may set. Stored as one JSON document."""

    enabled: bool = True
    styling: WidgetStyling = Field(default_factory=WidgetStyling)
    behavior: WidgetBehavior = Field(default_factory=WidgetBehavior)
    integration: WidgetIntegration = Field(default_factory=WidgetIntegration)


WIDGET_EVENT_TYPES = ("widget.impression", "widget.click", "widget.display")
