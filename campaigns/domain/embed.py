"""The embed code: the HTML a site owner pastes to show a campaign's widget.

The specification's snippet pasted the campaign name into an HTML comment and the
callbacks into raw JavaScript, so a name like `--><script>…` or a "callback" like
`alert(1)` ran on the customer's site. Here every value sits in a context it cannot
leave:

- the name, in a one-line HTML comment, with `<`, `>`, `&` escaped and runs of `-`
  collapsed, so neither `-->` nor `--!>` nor `<!--` can appear;
- the settings, as JSON in a `<script type="application/json">` block that browsers
  never run, with `<`, `>`, `&` and U+2028/U+2029 written as `\\uXXXX`, so `</script>`
  and `<!--` cannot appear in it and the JSON means the same to any parser;
- the callbacks, as the *names* of functions on the page (`onCallStart="myApp.callStarted"`),
  checked against a strict pattern and written in double-quoted, escaped attributes.
  widget.js looks each name up on `window`; no text from the snippet is ever evaluated.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

# Dotted JavaScript identifiers (ASCII), e.g. `onStart` or `myApp.widget.onStart`.
_CALLBACK = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:\.[A-Za-z_$][A-Za-z0-9_$]*){0,4}")
# Property names that reach into prototypes rather than the page's own objects.
_FORBIDDEN_SEGMENTS = {
    "__proto__",
    "prototype",
    "constructor",
    "__defineGetter__",
    "__defineSetter__",
    "__lookupGetter__",
    "__lookupSetter__",
}

CALLBACKS = {
    "onOpen": "data-on-open",
    "onClose": "data-on-close",
    "onCallStart": "data-on-call-start",
    "onCallEnd": "data-on-call-end",
    "onLeadCreated": "data-on-lead-created",
}


def callback_name(value: str) -> str:
    """A page function's name (`myFunction` or `myApp.handlers.onStart`), never code."""
    if len(value) > 200 or not _CALLBACK.fullmatch(value):
        raise ValueError(
            "must be the name of a function on the page, like 'onCallStart' or 'myApp.onCallStart' "
            "(letters, digits, _ and $, dot-separated), not code"
        )
    if any(segment in _FORBIDDEN_SEGMENTS for segment in value.split(".")):
        raise ValueError(f"must not use {sorted(_FORBIDDEN_SEGMENTS & set(value.split('.')))}")
    return value


_LINE_BREAKS = re.compile(r"[\s\u0085\u2028\u2029]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def comment_text(text: str, *, limit: int = 120) -> str:
    """Text that is safe inside `<!-- … -->`: one line, no `<`, `>` or `&`, no `--`."""
    one_line = _LINE_BREAKS.sub(" ", _CONTROL.sub("", text)).strip()
    if len(one_line) > limit:
        one_line = one_line[: limit - 1] + "…"
    escaped = html.escape(one_line, quote=False)
    return re.sub(r"-{2,}", "-", escaped)


def script_json(value: Any) -> str:
    """JSON that can sit inside a <script> element: nothing in it can close the element,
    open a comment, or end a JavaScript line early."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def attribute(value: str) -> str:
    """A value for a double-quoted HTML attribute."""
    return html.escape(_CONTROL.sub("", value), quote=True)


def render(
    *,
    campaign_id: str,
    campaign_name: str,
    publishable_key: str,
    script_url: str,
    api_url: str,
    configuration: dict[str, Any],
    callbacks: dict[str, str],
    preview: bool = False,
) -> str:
    """The snippet: a JSON configuration block and the loader script, between two comments."""
    for name, value in callbacks.items():
        if name not in CALLBACKS:
            raise ValueError(f"unknown callback {name!r}")
        callback_name(value)
    config = {"campaignId": campaign_id, "apiUrl": api_url, "widgetSettings": configuration}
    attrs = [
        ("src", script_url),
        ("data-quantum-voice", campaign_id),
        ("data-key", publishable_key),
        ("data-api-url", api_url),
        *((CALLBACKS[name], value) for name, value in sorted(callbacks.items())),
        *([("data-preview", "true")] if preview else []),
    ]
    rendered_attrs = " ".join(f'{k}="{attribute(v)}"' for k, v in attrs)
    return "\n".join(
        [
            f"<!-- Quantum Voice AI widget: {comment_text(campaign_name)} -->",
            f'<script type="application/json" data-quantum-voice-config="{attribute(campaign_id)}">'
            f"{script_json(config)}</script>",
            f"<script async {rendered_attrs}></script>",
            "<!-- End Quantum Voice AI widget -->",
        ]
    )
