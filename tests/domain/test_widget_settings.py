"""Widget settings: colours, origins, page rules, validated as pure functions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from campaigns.domain.widget import (
    WidgetSettings,
    hex_colour,
    normalize_origin,
    origin_allowed,
    page_pattern,
    shows_on_page,
)


def test_defaults_are_valid():
    s = WidgetSettings()
    assert s.styling.position == "bottom-right" and s.integration.allowed_origins == []


@pytest.mark.parametrize(("given", "kept"), [("#ABC", "#aabbcc"), ("#4F46E5", "#4f46e5"), ("#000", "#000000")])
def test_colours_are_kept_in_one_spelling(given, kept):
    assert hex_colour(given) == kept


@pytest.mark.parametrize("bad", ["red", "#12", "#12345", "#1234567", "4f46e5", "#ggg", "rgb(0,0,0)", "#fff;x"])
def test_colours_must_be_hex(bad):
    with pytest.raises(ValueError):
        hex_colour(bad)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://Shop.Example.com", "https://shop.example.com"),
        ("https://shop.example.com/", "https://shop.example.com"),
        ("https://shop.example.com:443", "https://shop.example.com"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("https://*.example.com", "https://*.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_origins_are_normalized(given, kept):
    assert normalize_origin(given) == kept


@pytest.mark.parametrize(
    "bad",
    ["*", "example.com", "ftp://example.com", "https://example.com/path", "https://example.com?q=1",
     "https://user:pw@example.com", "https://exa mple.com", "https://*.com", "https://müller.de",
     "https://example.com:99999", "javascript:alert(1)", "https://"],
)
def test_bad_origins_are_refused(bad):
    with pytest.raises(ValueError):
        normalize_origin(bad)


@pytest.mark.parametrize(
    ("origin", "allowed", "ok"),
    [
        ("https://shop.example.com", ["https://shop.example.com"], True),
        ("https://SHOP.example.com:443", ["https://shop.example.com"], True),
        ("http://shop.example.com", ["https://shop.example.com"], False),
        ("https://shop.example.com:8443", ["https://shop.example.com"], False),
        ("https://a.example.com", ["https://*.example.com"], True),
        ("https://a.b.example.com", ["https://*.example.com"], True),
        ("https://example.com", ["https://*.example.com"], False),
        ("https://evilexample.com", ["https://*.example.com"], False),
        ("https://example.com.evil.io", ["https://*.example.com"], False),
        ("http://a.example.com", ["https://*.example.com"], False),
        ("https://a.example.com:8443", ["https://*.example.com"], False),
        ("https://a.example.com:8443", ["https://*.example.com:8443"], True),
        ("null", ["https://shop.example.com"], False),
        (None, ["https://shop.example.com"], False),
        ("https://*.example.com", ["https://*.example.com"], False),
    ],
)
def test_origin_matching(origin, allowed, ok):
    assert origin_allowed(origin, allowed) is ok


@pytest.mark.parametrize(
    ("path", "show", "hide", "shown"),
    [
        ("/pricing", [], [], True),
        ("/pricing", ["/pricing"], [], True),
        ("/about", ["/pricing"], [], False),
        ("/blog/post-1", ["/blog/*"], [], True),
        ("/blog/2024/post", ["/blog/*"], [], False),
        ("/blog/2024/post", ["/blog/**"], [], True),
        ("/checkout/pay", [], ["/checkout/**"], False),
        ("/checkout/pay", ["/**"], ["/checkout/**"], False),
        ("/a.b", ["/a.b"], [], True),
        ("/aXb", ["/a.b"], [], False),
    ],
)
def test_page_rules(path, show, hide, shown):
    assert shows_on_page(path, show, hide) is shown


@pytest.mark.parametrize("bad", ["pricing", "/a b", "/***", "/<script>", "/a\"b"])
def test_bad_page_patterns(bad):
    with pytest.raises(ValueError):
        page_pattern(bad)


def test_every_bad_field_is_reported():
    with pytest.raises(ValidationError) as info:
        WidgetSettings.model_validate(
            {
                "styling": {"primaryColor": "blue", "position": "middle", "launcherText": "",
                            "avatarUrl": "javascript:x"},
                "behavior": {"autoOpenDelay": -1, "showOnPages": ["nope"]},
                "integration": {"allowedOrigins": ["*"]},
                "colour": "x",
            }
        )
    fields = {".".join(str(p) for p in e["loc"]) for e in info.value.errors()}
    assert {"styling.primaryColor", "styling.position", "styling.launcherText", "styling.avatarUrl",
            "behavior.autoOpenDelay", "behavior.showOnPages.0", "integration.allowedOrigins.0", "colour"} <= fields


def test_duplicate_origins_collapse():
    s = WidgetSettings.model_validate({"integration": {"allowedOrigins": ["https://a.com", "https://A.com/"]}})
    assert s.integration.allowed_origins == ["https://a.com"]
