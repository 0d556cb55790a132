"""The embed code stays inert whatever a campaign's name, settings or callbacks hold."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.domain import embed
from tests.support.embed import HOSTILE, tokens


def render(name: str = "Spring promo", configuration: dict | None = None, callbacks: dict | None = None) -> str:
    return embed.render(
        campaign_id="7f0c7d2e-1d7a-4a51-9a3e-1c2b3d4e5f60",
        campaign_name=name,
        publishable_key="qcw_pk_abc",
        script_url="https://api.example.com/embed/widget.js",
        api_url="https://api.example.com",
        configuration=configuration or {"styling": {"launcherText": "Talk to us"}},
        callbacks=callbacks or {},
    )


def assert_inert(html: str, configuration: dict, callbacks: dict) -> None:
    """Exactly: comment, JSON block, loader script, comment; nothing else, nothing escaped."""
    seen = tokens(html)
    kinds = [t[0] for t in seen]
    assert kinds == ["comment", "start", "data", "end", "start", "end", "comment"], seen
    opening, (_, tag1, attrs1), (_, data), (_, end1), (_, tag2, attrs2), (_, end2), closing = seen
    assert opening[1].startswith(" Quantum Voice AI widget: ") and closing[1] == " End Quantum Voice AI widget "
    assert (tag1, end1, tag2, end2) == ("script", "script", "script", "script")
    assert attrs1 == {"type": "application/json", "data-quantum-voice-config": "7f0c7d2e-1d7a-4a51-9a3e-1c2b3d4e5f60"}
    # The JSON block means exactly the configuration given.
    assert json.loads(data)["widgetSettings"] == configuration
    # The loader's attributes come back as given; no event handler attribute appears.
    assert attrs2["src"] == "https://api.example.com/embed/widget.js"
    assert attrs2["data-key"] == "qcw_pk_abc"
    for name, value in callbacks.items():
        assert attrs2[embed.CALLBACKS[name]] == value
    assert not [a for a in attrs2 if a.startswith("on")]
    # Belt and braces, on the raw text: the places browsers differ from any one parser.
    raw_json = html.split(">", 2)[2].split("</script>", 1)[0]
    for bad in ("<", ">", "\u2028", "\u2029"):
        assert bad not in raw_json
    assert html.count("<script") == 2 and html.lower().count("</script") == 2
    assert html.count("<!--") == 2 and html.count("-->") == 2 and "--!>" not in html
    comment = html.split("\n", 1)[0]
    assert comment.startswith("<!-- ") and comment.endswith(" -->")
    assert "--" not in comment[4:-3] and "<" not in comment[4:] and ">" not in comment[:-1]


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_names_stay_in_their_comment(payload):
    configuration = {"styling": {"launcherText": "Talk to us"}}
    assert_inert(render(name=payload, configuration=configuration), configuration, {})


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_settings_stay_in_their_json(payload):
    configuration = {
        "styling": {"launcherText": payload, "title": payload, "avatarUrl": f"https://x.test/{payload}"},
        "behavior": {"greeting": payload, "showOnPages": [payload]},
        payload: payload,
    }
    assert_inert(render(name=payload, configuration=configuration), configuration, {})


def test_callbacks_are_names_in_attributes():
    callbacks = {"onCallStart": "myApp.onCallStart", "onCallEnd": "onEnd", "onLeadCreated": "$lead.created_1"}
    html = render(callbacks=callbacks)
    assert_inert(html, {"styling": {"launcherText": "Talk to us"}}, callbacks)


@pytest.mark.parametrize(
    "code",
    [
        "function() { alert(1) }",
        "alert(1)",
        "a;b",
        "x\" onload=\"alert(1)",
        "</script><script>alert(1)</script>",
        "window['x']",
        "a..b",
        ".a",
        "a.",
        "1abc",
        "a.__proto__.polluted",
        "constructor",
        "a.prototype",
        "a\u2028b",
        "a-b",
        "",
        "a" * 201,
        "a.b.c.d.e.f",  # deeper than five
    ],
)
def test_code_is_refused_as_a_callback(code):
    with pytest.raises(ValueError):
        embed.callback_name(code)
    with pytest.raises(ValueError):
        render(callbacks={"onCallStart": code})


def test_unknown_callbacks_are_refused():
    with pytest.raises(ValueError):
        render(callbacks={"onEval": "ok"})


def test_long_names_are_cut_in_the_comment():
    assert len(embed.comment_text("x" * 1000)) == 120


def test_script_json_escapes_what_can_end_a_script():
    text = embed.script_json({"a": "</script><!--\u2028\u2029&"})
    assert re.fullmatch(r"[^<>\u2028\u2029&]*", text)
    assert json.loads(text) == {"a": "</script><!--\u2028\u2029&"}


@settings(deadline=None)
@given(name=st.text(max_size=300), text=st.text(max_size=300), key=st.text(min_size=1, max_size=40))
def test_any_text_stays_inert(name, text, key):
    configuration = {"styling": {"launcherText": text}, "behavior": {"greeting": text}, key: text}
    assert_inert(render(name=name, configuration=configuration), configuration, {})
