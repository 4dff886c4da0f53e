"""Hypothesis drives the sanitizer, the rules and the reader's form with hostile Unicode:
bidi overrides, zero-width and other format characters, lone surrogates, NUL, and bodies up
to a megabyte. The sanitizer's output stays allowlisted and stable when a browser re-parses
it (mutation XSS); the rules never fail; the form and the API answer with a clear 4xx, never a 500."""
import json
from urllib.parse import quote

import pytest
from bleach._vendor import html5lib  # the HTML5 parsing algorithm, as browsers run it
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from moderation import rules, sanitize

from ..conftest import ARTICLE, ORIGIN
from ..test_sanitize import FRAGMENTS, assert_safe, gate
from .support import form_data

HOSTILE = ["\u202e", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200b", "\u200c", "\u200d", "\u2060",
           "\ufeff", "\u00ad", "\u0301" * 20, "\x00", "\ud800", "\udfff", "\U0001F600", "\u0430", "\uff41",
           "\r", "\x85", "\u2028"]
MXSS = ["<svg>", "</svg>", "<math>", "<mtext>", "<mglyph>", "<malignmark>", "<table>", "<select>", "<template>",
        "<noscript>", "</noscript>", "<style>", "</style>", "<xmp>", "<iframe>", "<textarea>", "<title>",
        "<form>", "</form>", "<p title=\"", "\">", "<a href=\"java&#x09;script:x\">", "<a href=&#106;avascript:x>",
        "<a href=\"https://ok.example\" title='", "'>", "<!--", "--!>", "<![CDATA[", "<?", "</p>", "<br/>",
        "<img src=x onerror=alert(1)>", "<b", " onclick=x", "<a href=\"https://a.example\">https://b.example</a>"]
hostile_text = st.lists(st.one_of(st.text(), st.sampled_from(FRAGMENTS + HOSTILE + MXSS)), max_size=40).map("".join)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def browser_reparse(html: str) -> str:
    """What a browser builds from our HTML inside a <div>, serialized back."""
    fragment = html5lib.parseFragment(html, container="div", namespaceHTMLElements=False)
    return html5lib.serialize(fragment, omit_optional_tags=False, quote_attr_values="always",
                              use_trailing_solidus=False, resolve_entities=False)


@FAST
@given(hostile_text)
def test_sanitized_output_is_allowlisted_and_survives_a_browser_reparse(raw):
    html = sanitize.render(raw)
    assert_safe(html)
    assert gate(html) == html  # sanitizing the output again changes nothing
    reparsed = browser_reparse(html)
    assert_safe(reparsed)
    assert gate(reparsed) == gate(html) or sanitize.plain_text(reparsed) == sanitize.plain_text(html)


@FAST
@given(text=hostile_text, name=hostile_text, email=hostile_text, website=hostile_text,
       words=st.lists(st.text(min_size=1, max_size=20), max_size=5))
def test_rules_decide_any_text_without_failing(text, name, email, website, words):
    try:
        site_rules = rules.validate_rules({"blocked_words": words, "held_words": words})
    except rules.RulesError:
        site_rules = rules.validate_rules({})
    draft = rules.Draft(text=text, links=sanitize.count_links(sanitize.render(text)), name=name, email=email,
                        website=website)
    facts = rules.Facts()
    refusal = rules.refuse(draft, site_rules, facts)
    decision = rules.decide(draft, site_rules, facts)
    assert refusal is None or 400 <= refusal.status_code < 500
    assert decision.status in rules.Status
    assert all(isinstance(reason, str) and reason for reason in decision.reasons)


def encode_form(data: dict) -> bytes:
    """A urlencoded body as a browser would send it, lone surrogates included (as bad UTF-8)."""
    return "&".join(f"{quote(key)}={quote(value, safe='', errors='surrogatepass')}"
                    for key, value in data.items()).encode()


@FAST
@given(body=hostile_text, name=hostile_text, email=st.one_of(hostile_text, st.just("ada@example.org")),
       website=st.one_of(hostile_text, st.just("")))
@example(body="x" * 1_000_000, name="Ada", email="ada@example.org", website="")
@example(body="\x00" * 100, name="\u202eAda", email="ada@example.org", website="")
def test_form_answers_any_text_with_a_4xx_or_a_redirect(app, client, site, body, name, email, website):
    app.config["RATELIMIT_ENABLED"] = False
    data = {**form_data(client, site), "body": body, "name": name, "email": email, "website": website}
    response = client.post(f"/embed/{site.key}", data=encode_form(data), headers={"Origin": ORIGIN},
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code in (303, 400, 403, 409, 413, 429), response.status_code


@FAST
@given(fields=st.dictionaries(st.sampled_from(["body", "name", "email", "website", "title", "url", "parent_id",
                                               "author_token", "site"]),
                              st.one_of(hostile_text, st.integers(), st.none(), st.booleans(), st.floats(),
                                        st.lists(st.integers(), max_size=3))))
@example(fields={"body": "y" * 1_000_000})
def test_api_answers_any_json_with_a_4xx_or_201(app, client, site, fields):
    app.config["RATELIMIT_ENABLED"] = False
    payload = {"site": site.key, "url": ARTICLE, "name": "Ada", "email": "ada@example.org", "body": "Hello.", **fields}
    response = client.post("/api/v1/comments", data=json.dumps(payload), content_type="application/json",
                           headers={"Origin": ORIGIN})
    assert response.status_code in (201, 400, 403, 404, 409, 413, 429), response.status_code
    assert response.is_json


@pytest.mark.parametrize("size", [1_000_000, 10_000_000])
def test_megabyte_bodies_get_413_with_a_message(client, site, size):
    response = client.post("/api/v1/comments", data=json.dumps({"site": site.key, "body": "z" * size}),
                           content_type="application/json", headers={"Origin": ORIGIN})
    assert response.status_code == 413 and "too large" in response.get_json()["error"].lower()
