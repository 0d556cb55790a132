"""Embed code as an attacker would write it, and what an HTML parser makes of a page."""

from __future__ import annotations

from html.parser import HTMLParser

HOSTILE = [
    "</script><script>alert(1)</script>",
    "</ScRiPt ><script>alert(1)</script>",
    "--><script>alert(1)</script><!--",
    "--!><img src=x onerror=alert(1)>",
    "<!--<script>alert(1)</script>",
    "\"'><svg onload=alert(1)>",
    "'; alert(1); var x='",
    "</",
    "</style></title></textarea>",
    "line\u2028separator\u2029paragraph",
    "new\nline\r\nand\ttab\x0bvt",
    "&lt;script&gt; &amp; &#60;",
    "\\u003c/script\\u003e",
    "-",
    "->",
    "a--b---c",
    "\x00null\x1fcontrol",
    "emoji 🎉 and ünïcödé",
]


class Tokens(HTMLParser):
    """The token stream a conforming parser sees."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens: list[tuple] = []

    def handle_starttag(self, tag, attrs):
        self.tokens.append(("start", tag, dict(attrs)))

    def handle_endtag(self, tag):
        self.tokens.append(("end", tag))

    def handle_data(self, data):
        if data.strip():
            self.tokens.append(("data", data))

    def handle_comment(self, data):
        self.tokens.append(("comment", data))


def tokens(html: str) -> list[tuple]:
    parser = Tokens()
    parser.feed(html)
    parser.close()
    return parser.tokens
