"""Marks the words a site's word lists matched inside a comment's already-sanitized HTML.
Only text between tags is changed (escaped again, with <mark> around each match); the
sanitizer's tags pass through untouched, so highlighting can never add markup of its own."""
import re
from html.parser import HTMLParser

from markupsafe import Markup, escape

from . import rules


def mark_text(text: str, words: list[str]) -> Markup:
    """text escaped, with each matched word wrapped in <mark>."""
    found = {matched for _, matched in rules.find_words(text, words) if matched}
    if not found:
        return escape(text)
    pattern = re.compile("|".join(map(re.escape, sorted(found, key=len, reverse=True))))
    out, start = [], 0
    for match in pattern.finditer(text):
        out += [escape(text[start:match.start()]), Markup("<mark>%s</mark>") % match.group(0)]
        start = match.end()
    out.append(escape(text[start:]))
    return Markup("").join(out)


class _Marker(HTMLParser):
    def __init__(self, words: list[str]):
        super().__init__(convert_charrefs=True)
        self.words = words
        self.out: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.out.append(self.get_starttag_text())

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        self.out.append(f"</{tag}>")

    def handle_data(self, data):
        self.out.append(mark_text(data, self.words))


def highlighted(body_html: str, words: list[str]) -> Markup:
    """body_html (sanitized) with the words the rules match marked."""
    if not words:
        return Markup(body_html)
    marker = _Marker(words)
    marker.feed(body_html)
    marker.close()
    return Markup("".join(marker.out))


def site_words(site_rules: dict) -> list[str]:
    return [*site_rules.get("blocked_words", []), *site_rules.get("held_words", [])]
