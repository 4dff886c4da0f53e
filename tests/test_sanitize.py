"""Tests for moderation.sanitize: the comment HTML policy."""

import random
import re
from html.parser import HTMLParser

import nh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moderation import sanitize

REL = "nofollow ugc noopener noreferrer"
USER_TAGS = ["a", "abbr", "b", "blockquote", "cite", "code", "del", "em",
             "i", "q", "s", "strike", "strong"]
ALLOWED_TAGS = set(USER_TAGS) | {"p", "br"}
ALLOWED_ATTRS = {"a": {"href", "title", "rel"}, "abbr": {"title"}}


class Markup(HTMLParser):
    """Everything a browser would treat as live markup in an HTML string."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.tags, self.depth, self.max_depth, self.other = [], 0, 0, []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))
        if tag != "br":
            self.depth += 1
            self.max_depth = max(self.max_depth, self.depth)

    def handle_endtag(self, tag):
        self.depth -= 1

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_comment(self, data):
        self.other.append(("comment", data))

    def handle_decl(self, decl):
        self.other.append(("decl", decl))

    def handle_pi(self, data):
        self.other.append(("pi", data))

    def unknown_decl(self, data):
        self.other.append(("unknown", data))


def assert_safe(html):
    """Only allowlisted tags, attributes and URL schemes are live in html."""
    markup = Markup(html)
    assert markup.other == []
    for tag, attrs in markup.tags:
        assert tag in ALLOWED_TAGS, (tag, html)
        for name, value in attrs:
            assert not name.startswith("on"), (name, html)
            assert name in ALLOWED_ATTRS.get(tag, set()), (tag, name, html)
            if name == "href":
                assert value.lower().startswith(("http://", "https://")), (value, html)
            if name == "rel":
                assert value == REL
        if tag == "a":
            assert ("rel", REL) in attrs
            assert not any(name == "target" for name, _ in attrs)
    return markup


def gate(html):
    return nh3.clean(html, **sanitize._NH3_ARGS)


def test_version_is_an_int():
    assert isinstance(sanitize.SANITIZER_VERSION, int)


@pytest.mark.parametrize("tag", [t for t in USER_TAGS if t not in ("a", "blockquote")])
def test_allowlisted_inline_tags_are_kept(tag):
    assert sanitize.render(f"x <{tag}>y</{tag}> z") == f"<p>x <{tag}>y</{tag}> z</p>"


def test_allowlisted_attributes_are_kept():
    assert sanitize.render('<abbr title="HyperText">HTML</abbr>') == (
        '<p><abbr title="HyperText">HTML</abbr></p>')
    assert sanitize.render('<a href="https://example.com/" title="t">x</a>') == (
        f'<p><a href="https://example.com/" title="t" rel="{REL}">x</a></p>')


def test_blockquote_holds_paragraphs():
    assert sanitize.render("<blockquote>q\n\nr</blockquote>\nafter") == (
        "<blockquote><p>q</p><p>r</p></blockquote><p>after</p>")


@pytest.mark.parametrize("raw, shown", [
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("<div>x</div>", "&lt;div&gt;x&lt;/div&gt;"),
    ("<p>x</p>", "&lt;p&gt;x&lt;/p&gt;"),
    ("a<br>b", "a&lt;br&gt;b"),
    ("<img src=x>", "&lt;img src=x&gt;"),
    ("<iframe src=https://evil.example></iframe>", "&lt;iframe src="),
    ('<span style="color:red">x</span>', "&lt;span style=\"color:red\"&gt;x&lt;/span&gt;"),
    ("<style>b{}</style>", "&lt;style&gt;b{}&lt;/style&gt;"),
    ("I <3 you", "I &lt;3 you"),
    ("</3", "&lt;/3"),
    ("a <!-- hidden --> b", "a &lt;!-- hidden --&gt; b"),
    ("<?php echo 1 ?>", "&lt;?php echo 1 ?&gt;"),
])
def test_disallowed_markup_is_escaped_not_dropped(raw, shown):
    html = sanitize.render(raw)
    assert shown in html
    assert_safe(html)
    assert sanitize.plain_text(html) == raw


@pytest.mark.parametrize("raw", [
    "<img src=x onerror=alert(1)>",
    "<svg><style><img src=x onerror=alert(1)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<svg><p><style><img src=x onerror=alert(1)></style>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
    "<xmp><b>x</xmp><img src=x onerror=alert(1)>",
    "<textarea><img src=x onerror=alert(1)></textarea>",
    "<title><img src=x onerror=alert(1)></title>",
    "<plaintext><img src=x onerror=alert(1)>",
    "<!--<img src=x onerror=alert(1)>-->",
    "<![CDATA[<img src=x onerror=alert(1)>]]>",
    "<scr<script>ipt>alert(1)</script>",
    "<b onclick=alert(1)>x</b>",
    "<b/onmouseover=alert(1)>x</b>",
    '<a href="https://example.com" onclick="alert(1)" style="x">x</a>',
    '<a href="https://example.com/" title="</a><img src=x onerror=alert(1)>">x</a>',
    '<abbr title="&quot;><img src=x onerror=alert(1)>">x</abbr>',
    "<blockquote cite=javascript:alert(1) onmouseover=alert(1)>x</blockquote>",
    "<code><img src=x onerror=alert(1)></code>",
    "<<script>>alert(1)<</script>",
    "<b>\x00<img src=x onerror=alert(1)></b>",
])
def test_xss_vectors_produce_no_live_markup(raw):
    html = sanitize.render(raw)
    markup = assert_safe(html)
    assert "img" not in [tag for tag, _ in markup.tags]
    assert gate(html) == html


@pytest.mark.parametrize("href", [
    "javascript:alert(1)",
    "java&#09;script:alert(1)",
    "javascript&#58;alert(1)",
    " javascript:alert(1)",
    "\x08javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "mailto:someone@example.com",
    "ftp://example.com/",
    "/relative/path",
    "//evil.example/",
    "#top",
])
def test_non_http_hrefs_are_dropped(href):
    html = sanitize.render(f'<a href="{href}">x</a>')
    assert html == f'<p><a rel="{REL}">x</a></p>'
    assert sanitize.count_links(html) == 0


def test_title_cannot_break_out_of_its_attribute():
    html = sanitize.render("<a title='x\" onmouseover=alert(1)'>t</a>")
    (tag, attrs), = assert_safe(html).tags[1:]
    assert dict(attrs)["title"] == 'x" onmouseover=alert(1)'


@pytest.mark.parametrize("raw", [
    '<a href="https://example.com" rel="dofollow" target="_blank">x</a>',
    '<a href="https://example.com" rel="nofollow" target="_top">x</a>',
    '<a target="_blank" href="https://example.com" rel="">x</a>',
])
def test_user_rel_and_target_are_replaced(raw):
    assert sanitize.render(raw) == f'<p><a href="https://example.com" rel="{REL}">x</a></p>'


@pytest.mark.parametrize("raw, href", [
    ("see https://example.com/a?b=1&c=2.", "https://example.com/a?b=1&amp;c=2"),
    ("http://example.org", "http://example.org"),
    ("(https://example.com/x)", "https://example.com/x"),
    ("HTTPS://EXAMPLE.COM/", "HTTPS://EXAMPLE.COM/"),
])
def test_explicit_http_urls_are_linkified(raw, href):
    html = sanitize.render(raw)
    assert f'<a href="{href}" rel="{REL}">' in html
    assert sanitize.count_links(html) == 1
    assert_safe(html)


@pytest.mark.parametrize("raw", [
    "example.com",
    "www.example.com",
    "ld.so",
    "ld.so.conf and libc.so.6",
    "me@example.com",
    "ftp://example.com/",
    "javascript://example.com/%0aalert(1)",
    "xhttps://example.com",
    "<code>https://example.com</code>",
])
def test_other_text_is_not_linkified(raw):
    assert sanitize.count_links(sanitize.render(raw)) == 0


@pytest.mark.parametrize("raw, html", [
    ("a", "<p>a</p>"),
    ("a\nb", "<p>a<br>b</p>"),
    ("a\n\nb", "<p>a</p><p>b</p>"),
    ("a\r\n\r\n\r\nb\r\nc", "<p>a</p><p>b<br>c</p>"),
    ("a\n \t\nb", "<p>a</p><p>b</p>"),
    ("  \n\n a \n\n", "<p>a</p>"),
    ("", ""),
    (" \r\n ", ""),
    ("<b>a\n\nb</b> c", "<p><b>a</b></p><p>b c</p>"),
    ("<b>a\nb</b>", "<p><b>a<br>b</b></p>"),
    ("<b>x<blockquote>y</blockquote>z</b>",
     "<p><b>x</b></p><blockquote><p>y</p></blockquote><p>z</p>"),
])
def test_paragraphs_and_line_breaks(raw, html):
    assert sanitize.render(raw) == html


@pytest.mark.parametrize("raw, links", [
    ("no links here", 0),
    ("https://a.example.com and https://b.example.com", 2),
    ('<a href="https://a.example.com">x</a> <a title="t">no href</a>', 1),
    ('<a href="javascript:alert(1)">j</a>', 0),
])
def test_count_links(raw, links):
    html = sanitize.render(raw)
    assert sanitize.count_links(html) == links == sanitize.text_and_links(html)[1]


@pytest.mark.parametrize("raw, text", [
    ("<b>5 &lt; 6</b> &amp; <i>caf&eacute;</i>", "5 < 6 & café"),
    ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    ("foo\nbar\n\nbaz", "foo\nbar\n\nbaz"),
    ("<blockquote>quoted</blockquote>reply", "quoted\n\nreply"),
    ("see https://example.com", "see https://example.com"),
])
def test_plain_text(raw, text):
    html = sanitize.render(raw)
    assert sanitize.plain_text(html) == text == sanitize.text_and_links(html)[0]


def test_plain_text_keeps_words_apart():
    html = sanitize.render("spam\nham\n\n<blockquote>eggs</blockquote>bacon")
    assert sanitize.plain_text(html).split() == ["spam", "ham", "eggs", "bacon"]


def test_deep_nesting_completes_and_is_bounded():
    html = sanitize.render("<blockquote>" * 5000 + "x" + "</blockquote>" * 5000)
    markup = assert_safe(html)
    assert markup.max_depth < 50
    assert gate(html) == html


def test_many_lines_complete():
    html = sanitize.render("line\n" * 100_000)
    assert html.count("<br>") == 99_999
    assert gate(html) == html


def test_too_many_tags_are_shown_as_text():
    html = sanitize.render("<b>x</b> " * 600)
    live = [tag for tag, _ in assert_safe(html).tags if tag == "b"]
    assert 100 < len(live) < 600
    assert "&lt;b&gt;x&lt;/b&gt;" in html


@pytest.mark.parametrize("raw, html", [
    ("a&#13;b", "<p>a\nb</p>"),
    ("a\ud800b", "<p>a\ufffdb</p>"),
])
def test_characters_a_reparse_would_change(raw, html):
    assert sanitize.render(raw) == html


FRAGMENTS = [
    "<a href='https://example.com/'>", "<a href=javascript:alert(1)>", "<a title='", "</a>",
    "<b>", "</b>", "<i>", "</i>", "<blockquote>", "</blockquote>", "<code>", "</code>",
    "<abbr title=\"t\">", "<q>", "</strike>", "<script>", "<style>", "<svg>", "<math>",
    "<img src=x onerror=alert(1)>", "<!--", "-->", "<![CDATA[", "]]>", "<p>", "<br>",
    "https://example.com/x?y=1&z=2", "example.com", "javascript:", "&#13;", "&#10;",
    "&amp;", "&lt;", "&nbsp;", "&", "<", ">", "\"", "'", "=", " ", "\n", "\n\n", "\r\n",
    "\r", "\t", "\x00", "\x0b", "\x0c", "\u2028", "\ufeff", "\ud800",
]
comment_text = st.lists(st.one_of(st.text(), st.sampled_from(FRAGMENTS)), max_size=30).map("".join)


@settings(max_examples=500, deadline=None)
@given(comment_text)
def test_any_text_renders_to_safe_stable_html(raw):
    html = sanitize.render(raw)
    markup = assert_safe(html)
    assert gate(html) == html
    hrefs = [tag for tag, attrs in markup.tags if tag == "a" and "href" in dict(attrs)]
    assert sanitize.count_links(html) == len(hrefs)
    assert "<" not in sanitize.plain_text(html) or "&lt;" in html


# Plain text (no markup, entity or link) skips the parsers; it must come out exactly as through them.
PLAIN_PIECES = [*"ab  \n\n\t\"'=/:.;#@", "é", "’", "😀", "\u2028", "\u3000", "\u200b", "\u0301", "\u202e",
                "\ufeff", "\U000E0001", "\U0010FFFF", "www.example.org", "ftp:", "http", "mailto:x@y.org",
                "\xa0", "\x0c", "\x85", "\ufdd0", "<", "&", "http://x.org"]


def test_plain_text_renders_as_through_the_full_pipeline(monkeypatch):
    rng = random.Random(7)
    bodies = ["".join(rng.choice(PLAIN_PIECES) for _ in range(rng.randint(0, 30))) for _ in range(3000)]
    bodies += ["Line one\nline two\n\n\n  Next paragraph  \n \n \n last", "  \n  ", "x\n\xa0\ny"]
    quick = [sanitize.render(body) for body in bodies]
    took_the_short_way = sum(bool(sanitize._PLAIN_RE.fullmatch(body.strip())) and "://" not in body for body in bodies)
    assert took_the_short_way > 500
    monkeypatch.setattr(sanitize, "_PLAIN_RE", re.compile("(?!)"))  # never plain: always the parsers
    assert [sanitize.render(body) for body in bodies] == quick
