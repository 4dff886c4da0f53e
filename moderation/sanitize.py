"""Comment HTML sanitizing: the only module that imports an HTML sanitizer."""

import re
import threading
from functools import partial
from html.parser import HTMLParser
from urllib.parse import urlsplit

import nh3
from bleach.html5lib_shim import Filter
from bleach.linkifier import LinkifyFilter, build_url_re
from bleach.sanitizer import Cleaner

SANITIZER_VERSION: int = 2  # bump when the policy changes, so stored HTML can be re-rendered

_TAGS = frozenset({"a", "abbr", "b", "blockquote", "cite", "code", "del", "em",
                   "i", "q", "s", "strike", "strong"})
_ATTRIBUTES = {"a": frozenset({"href", "title"}), "abbr": frozenset({"title"})}
_SCHEMES = frozenset({"http", "https"})
_REL = "nofollow ugc noopener noreferrer"
_MAX_DEPTH = 20    # allowlisted tags nested deeper than this are shown as text
_MAX_TAGS = 500    # ...and so is every allowlisted tag after the first _MAX_TAGS

# The final gate: render's output has always passed through exactly this.
_NH3_ARGS = dict(tags=_TAGS | {"p", "br"}, attributes=_ATTRIBUTES, url_schemes=_SCHEMES,
                 url_relative="deny", link_rel=_REL, strip_comments=True)

# build_url_re always makes the scheme optional (it would link "example.com"
# and "ld.so"); the lookahead makes an explicit http:// or https:// mandatory.
_BLEACH_URL_RE = build_url_re(protocols=_SCHEMES)
_URL_RE = re.compile(r"(?=\(*https?://)" + _BLEACH_URL_RE.pattern, _BLEACH_URL_RE.flags)
_HTTP_RE = re.compile(r"https?://", re.IGNORECASE)
_HOSTLIKE_RE = re.compile(r"(?:[a-z][a-z0-9+.-]*:)?/*(?:[^\s/?#@]*@)?([^\s/?#@:]+\.[^\s/?#@:]+)(?::\d*)?(?:[/?#]\S*)?",
                          re.IGNORECASE)
_TAG_RE = re.compile(r"<(/?)(?:%s)(?=[\s/>])" % "|".join(sorted(_TAGS)), re.IGNORECASE)
# Comments, "<?...>" and "</3" would parse as comments and vanish with their text.
_NOT_A_TAG_RE = re.compile(r"<(?=[!?]|/(?![A-Za-z]))")
# nh3 would decode &#13; to a raw CR, which the next parse turns into LF.
_CR_REF_RE = re.compile(r"&#(?:0*13|[xX]0*[dD]);")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")  # JSON can carry them; nh3 cannot encode them
_BREAK_RE = re.compile(r"(\n\s*\n|\n)")
_BR, _PARA = 1, 2
_per_thread = threading.local()
# Text that no step of the full pipeline would change but for paragraphs: no markup or entity,
# no link (linkify needs an explicit http:// or https://), no character the HTML parser or nh3
# would replace or escape (controls, no-break space, surrogates, noncharacters).
_PLAIN_RE = re.compile("[^<>&\x00-\x08\x0b-\x1f\x7f-\xa0\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]*")


def _limit_tags(text: str) -> str:
    """Escape allowlisted tags nested too deep or too many, before parsing."""
    # html5lib's scope checks and formatting-element bookkeeping are quadratic
    # (5,000 nested tags take seconds), as is nh3 on deep trees. Every "<name"
    # that could start an allowlisted tag is counted, even inside attribute
    # values, so the parser never sees more than _MAX_TAGS of them. The depth
    # is only an estimate (misnesting fools it); _MAX_TAGS is the hard bound.
    depth = count = 0

    def escape(match):
        nonlocal depth, count
        closing = bool(match.group(1))
        count += 1
        depth += not closing
        live = depth <= _MAX_DEPTH and count <= _MAX_TAGS
        depth = max(depth - closing, 0)
        return match.group(0) if live else "&lt;" + match.group(0)[1:]

    return _TAG_RE.sub(escape, text)


def _link_attrs(attrs, new=False):
    """Keep an absolute http(s) href and a title; set our rel, nothing else."""
    kept = {k: v for k, v in attrs.items() if k in ((None, "href"), (None, "title"), "_text")}
    href = kept.get((None, "href"), "")
    if not _HTTP_RE.match(href):
        kept.pop((None, "href"), None)  # relative, protocol-relative or other scheme
    elif _shows_other_host(kept.get("_text", ""), href):
        kept["_text"] = href  # <a href=evil>https://bank.com</a> shows where it really goes
    kept[(None, "rel")] = _REL
    return kept


def _shows_other_host(text: str, href: str) -> bool:
    """Does the link text look like an address on another host than the link's?"""
    shown = _HOSTLIKE_RE.fullmatch(text.strip())
    if not shown:
        return False
    try:
        host = urlsplit(href).hostname or ""
    except ValueError:
        return True
    return shown.group(1).lower().rstrip(".") != host.rstrip(".")


class _Paragraphs(Filter):
    """Wrap text in <p> at blank lines and blockquotes; single newlines become <br>."""

    # Inline markup still open at a paragraph or blockquote boundary is closed
    # there, not reopened after it: reopening would let a few tags with long
    # titles repeat on each of 100k paragraphs.
    def __iter__(self):
        self.open = []  # [name, end tag still to emit] per element open in the source
        self.in_p, self.pending = False, 0
        for token in super().__iter__():
            kind, name = token["type"], token.get("name")
            if kind in ("Characters", "SpaceCharacters"):
                for i, part in enumerate(_BREAK_RE.split(token["data"])):
                    if i % 2:
                        if self.in_p:
                            self.pending = max(self.pending, _BR if part == "\n" else _PARA)
                    elif part and (self.in_p or part.strip()):
                        yield from self._content()
                        yield {"type": "Characters", "data": part}
            elif name == "blockquote" and kind in ("StartTag", "EndTag"):
                yield from self._close_p()
                if kind == "StartTag":
                    self.open.append([name, True])
                else:
                    self.open.pop()
                yield token
            elif kind == "StartTag":
                yield from self._content()
                self.open.append([name, True])
                yield token
            elif kind == "EndTag":
                if self.open.pop()[1]:
                    yield token
            elif kind in ("EmptyTag", "Entity"):
                yield from self._content()
                yield token
            else:
                yield token
        yield from self._close_p()

    def _content(self):
        if self.pending == _BR:
            yield {"type": "EmptyTag", "name": "br", "data": {}}
        elif self.pending == _PARA:
            yield from self._close_p()
        self.pending = 0
        if not self.in_p:
            self.in_p = True
            yield {"type": "StartTag", "name": "p", "data": {}}

    def _close_p(self):
        # Live inline elements are exactly those opened in this <p>: the top of the stack.
        for entry in reversed(self.open):
            if entry[0] == "blockquote" or not entry[1]:
                break
            entry[1] = False
            yield {"type": "EndTag", "name": entry[0]}
        if self.in_p:
            yield {"type": "EndTag", "name": "p"}
        self.in_p, self.pending = False, 0


def _plain_paragraphs(text: str) -> str:
    """What render makes of plain text, without the parsers: _Paragraphs on a single text token."""
    out, in_p, pending = [], False, 0
    for i, part in enumerate(_BREAK_RE.split(text)):
        if i % 2:
            if in_p:
                pending = max(pending, _BR if part == "\n" else _PARA)
        elif part and (in_p or part.strip()):
            if pending == _BR:
                out.append("<br>")
            elif pending == _PARA:
                out.append("</p>")
                in_p = False
            pending = 0
            if not in_p:
                out.append("<p>")
                in_p = True
            out.append(part)
    if in_p:
        out.append("</p>")
    return "".join(out)


def render(body: str) -> str:
    """Turn a reader's raw comment text into safe HTML."""
    text = body.replace("\r\n", "\n").replace("\r", "\n").strip()
    if "://" not in text and _PLAIN_RE.fullmatch(text):
        return _plain_paragraphs(text)  # most comments: the same HTML, dozens of times quicker
    text = _SURROGATE_RE.sub("\ufffd", _CR_REF_RE.sub("&#10;", text))
    text = _limit_tags(_NOT_A_TAG_RE.sub("&lt;", text))
    return nh3.clean(_cleaner().clean(text), **_NH3_ARGS)


def _cleaner() -> Cleaner:
    """This thread's Cleaner: one holds parser state, so threads cannot share it, but building
    one costs about as much as cleaning a short comment."""
    cleaner = getattr(_per_thread, "cleaner", None)
    if cleaner is None:
        linkify = partial(LinkifyFilter, callbacks=[_link_attrs], skip_tags={"pre", "code"},
                          parse_email=False, url_re=_URL_RE)
        cleaner = _per_thread.cleaner = Cleaner(tags=_TAGS, attributes=_ATTRIBUTES, protocols=_SCHEMES, strip=False,
                                                strip_comments=True, filters=[linkify, _Paragraphs])
    return cleaner


class _Reader(HTMLParser):
    """Collect the visible text and count the links of rendered HTML."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.text, self.links, self.new_block = [], 0, False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.links += tag == "a" and any(name == "href" for name, _ in attrs)
        if tag == "br":
            self.text.append("\n")
        self.new_block |= tag in ("p", "blockquote")

    def handle_endtag(self, tag):
        self.new_block |= tag in ("p", "blockquote")

    def handle_data(self, data):
        if self.new_block and self.text:
            self.text.append("\n\n")  # keep words of adjacent blocks apart
        self.new_block = False
        self.text.append(data)


def plain_text(html: str) -> str:
    """Return the visible text of rendered HTML, tags removed, entities decoded."""
    return "".join(_Reader(html).text)


def text_and_links(html: str) -> tuple[str, int]:
    """plain_text and count_links of rendered HTML, from one parse (what the rules read of a comment)."""
    reader = _Reader(html)
    return "".join(reader.text), reader.links


def count_links(html: str) -> int:
    """Return the number of <a href> in rendered HTML."""
    return _Reader(html).links
