"""Unit tests for moderation.rules: validation, word matching, decisions and refusals."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moderation import rules
from moderation.rules import Decision, Draft, Facts, Refusal, RulesError, Status


def make_rules(**overrides):
    return rules.validate_rules(overrides)


# --- validate_rules ---------------------------------------------------------


def test_defaults_filled_for_empty_document():
    assert rules.validate_rules({}) == rules.DEFAULT_RULES
    assert set(rules.DEFAULT_RULES) >= {
        "moderation_mode", "blocked_words", "held_words", "max_links",
        "flood_seconds", "max_length", "close_after_days", "allowed_origins",
    }
    assert set(rules.CONTRACT_KEYS) < set(rules.DEFAULT_RULES)


def test_missing_keys_take_defaults_and_result_is_fresh_and_json():
    out = rules.validate_rules({"max_links": 5})
    assert out["max_links"] == 5
    assert out["moderation_mode"] == "pre"
    assert list(out) == list(rules.DEFAULT_RULES)
    out["blocked_words"].append("x")
    assert rules.DEFAULT_RULES["blocked_words"] == []
    assert json.loads(json.dumps(out)) == out


def test_valid_document_round_trips():
    doc = {
        "moderation_mode": "known_authors", "blocked_words": ["viagra"], "held_words": ["refund*"],
        "max_links": 0, "flood_seconds": 0, "max_length": 1, "close_after_days": 36500,
        "allowed_origins": ["https://example.com"],
    }
    assert rules.validate_rules(doc) == {**rules.DEFAULT_RULES, **doc}
    assert rules.validate_rules(rules.validate_rules(doc)) == {**rules.DEFAULT_RULES, **doc}


@pytest.mark.parametrize(
    "doc, key",
    [
        ({"max_links": "many"}, "max_links"),
        ({"max_links": -1}, "max_links"),
        ({"max_links": 1001}, "max_links"),
        ({"max_links": True}, "max_links"),
        ({"max_links": 2.0}, "max_links"),
        ({"max_links": None}, "max_links"),
        ({"moderation_mode": "sometimes"}, "moderation_mode"),
        ({"moderation_mode": ["pre"]}, "moderation_mode"),
        ({"moderation_mode": None}, "moderation_mode"),
        ({"flood_seconds": -5}, "flood_seconds"),
        ({"flood_seconds": 86401}, "flood_seconds"),
        ({"flood_seconds": False}, "flood_seconds"),
        ({"max_length": 0}, "max_length"),
        ({"max_length": 10001}, "max_length"),
        ({"close_after_days": -1}, "close_after_days"),
        ({"close_after_days": 36501}, "close_after_days"),
        ({"close_after_days": "30"}, "close_after_days"),
        ({"blocked_words": "viagra"}, "blocked_words"),
        ({"blocked_words": ["ok", ""]}, "blocked_words"),
        ({"blocked_words": ["   "]}, "blocked_words"),
        ({"blocked_words": [3]}, "blocked_words"),
        ({"blocked_words": ["x" * 101]}, "blocked_words"),
        ({"blocked_words": ["w"] * 5001}, "blocked_words"),
        ({"blocked_words": ["!!!"]}, "blocked_words"),
        ({"held_words": None}, "held_words"),
        ({"held_words": [None]}, "held_words"),
        ({"allowed_origins": "https://example.com"}, "allowed_origins"),
        ({"allowed_origins": ["https://example.com/path"]}, "allowed_origins"),
        ({"allowed_origins": ["https://example.com?q=1"]}, "allowed_origins"),
        ({"allowed_origins": ["https://example.com#top"]}, "allowed_origins"),
        ({"allowed_origins": ["https://user:pw@example.com"]}, "allowed_origins"),
        ({"allowed_origins": ["ftp://example.com"]}, "allowed_origins"),
        ({"allowed_origins": ["example.com"]}, "allowed_origins"),
        ({"allowed_origins": ["https://"]}, "allowed_origins"),
        ({"allowed_origins": ["https://example.com:99999"]}, "allowed_origins"),
        ({"allowed_origins": ["https://exa mple.com"]}, "allowed_origins"),
        ({"allowed_origins": [42]}, "allowed_origins"),
        ({"colour": "blue"}, "colour"),
        ({"max_links": 2, "Max_Links": 2}, "Max_Links"),
    ],
)
def test_validation_error_names_key(doc, key):
    with pytest.raises(RulesError) as info:
        rules.validate_rules(doc)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")
    assert isinstance(info.value, ValueError)


def test_max_links_message_is_a_sentence():
    with pytest.raises(RulesError) as info:
        rules.validate_rules({"max_links": "many"})
    assert str(info.value) == "max_links: must be a whole number from 0 to 1000, got 'many'"


def test_unknown_key_message():
    with pytest.raises(RulesError, match=r"^colour: not a known rule"):
        rules.validate_rules({"colour": "blue"})


@pytest.mark.parametrize("data", [None, [], "rules", 3, ["moderation_mode"]])
def test_non_dict_is_an_error(data):
    with pytest.raises(RulesError) as info:
        rules.validate_rules(data)
    assert info.value.key == ""
    assert "JSON object" in str(info.value)


def test_first_bad_key_is_named():
    with pytest.raises(RulesError) as info:
        rules.validate_rules({"moderation_mode": "sometimes", "max_links": "many"})
    assert info.value.key == "moderation_mode"


def test_word_lists_stripped_and_deduplicated_in_order():
    out = make_rules(blocked_words=["  spam ", "eggs", "spam", "eggs ", "ham"], held_words=["a b"])
    assert out["blocked_words"] == ["spam", "eggs", "ham"]
    assert out["held_words"] == ["a b"]


def test_word_list_limits_are_inclusive():
    out = make_rules(blocked_words=[f"w{i}" for i in range(5000)], held_words=["x" * 100])
    assert len(out["blocked_words"]) == 5000
    assert out["held_words"] == ["x" * 100]


@pytest.mark.parametrize(
    "given, expected",
    [
        ("https://example.com", "https://example.com"),
        ("HTTPS://Example.COM/", "https://example.com"),
        ("http://example.com:8080", "http://example.com:8080"),
        ("https://example.com:443", "https://example.com"),
        ("http://example.com:80/", "http://example.com"),
        ("http://localhost:5000", "http://localhost:5000"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("  https://blog.example.org  ", "https://blog.example.org"),
    ],
)
def test_origins_normalised(given, expected):
    assert make_rules(allowed_origins=[given])["allowed_origins"] == [expected]


def test_origins_deduplicated_after_normalising():
    out = make_rules(allowed_origins=["https://a.com", "HTTPS://A.com/", "https://a.com:443", "http://a.com"])
    assert out["allowed_origins"] == ["https://a.com", "http://a.com"]


# --- find_words -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "get your refund today",
        "get your REFUND today",
        "get your Refund.",
        "get your ref\u200bund today",  # zero-width space
        "get your ref\u00adund today",  # soft hyphen
        "get your re\u2060f\ufeffund today",  # word joiner, BOM
        "get your \u202erefund\u202c today",  # bidi override
        "get your refünd today",  # precomposed accent
        "get your refu\u0308nd today",  # combining accent
        "get your rеfund today",  # Cyrillic е
        "get your ｒｅｆｕｎｄ today",  # full-width letters (NFKC)
        "get your 𝐫𝐞𝐟𝐮𝐧𝐝 today",  # mathematical bold (NFKC)
        "(refund)",
        "refund",
        "refund_now",
    ],
)
def test_evasions_caught(text):
    found = rules.find_words(text, ["refund"])
    assert [entry for entry, _ in found] == ["refund"]


@pytest.mark.parametrize(
    "text",
    [
        "vіаgrа",  # Cyrillic і and а
        "VIАGRA",  # Cyrillic А upper case
        "νiagra",  # Greek nu
        "viagrа",
        "ⓥⓘⓐⓖⓡⓐ",  # circled letters fold under NFKC
        "vi\u200ca\u200dgra",  # ZWNJ, ZWJ
        "v\u20ddiagra",  # enclosing circle
        "vıagra",  # dotless i
    ],
)
def test_lookalikes_caught(text):
    assert rules.find_words(f"buy {text} now", ["viagra"])[0][0] == "viagra"


def test_entry_is_normalised_too():
    assert rules.find_words("full REFUND", ["Refünd"]) == [("Refünd", "REFUND")]


@pytest.mark.parametrize("text", ["a class act", "passage", "assistant", "bass", "as s"])
def test_whole_words_only(text):
    assert rules.find_words(text, ["ass"]) == []


def test_whole_word_found_between_punctuation():
    assert rules.find_words("what an ass!", ["ass"]) == [("ass", "ass")]


@pytest.mark.parametrize("text", ["refund", "refunds", "Refunding", "REFUNDED!", "refund's"])
def test_prefix_entry(text):
    assert [e for e, _ in rules.find_words(f"a {text} b", ["refund*"])] == ["refund*"]


@pytest.mark.parametrize("text", ["refun", "a prerefund", "re fund"])
def test_prefix_entry_needs_word_start(text):
    assert rules.find_words(text, ["refund*"]) == []


def test_prefix_matched_text_is_the_whole_word():
    assert rules.find_words("asking for refunds now", ["refund*"]) == [("refund*", "refunds")]


def test_nested_prefixes_both_reported():
    found = rules.find_words("refunding", ["ref*", "refund*"])
    assert sorted(e for e, _ in found) == ["ref*", "refund*"]


@pytest.mark.parametrize(
    "text, found",
    [
        ("click here to buy now!", [("buy now", "buy now")]),
        ("BUY\n  NOW", [("buy now", "BUY\n  NOW")]),
        ("buy-now", [("buy now", "buy-now")]),
        ("buy later, now", []),
        ("buy nowhere", []),
        ("buy", []),
        ("now buy", []),
    ],
)
def test_multi_word_entry(text, found):
    assert rules.find_words(text, ["buy now"]) == found


def test_multi_word_prefix_entry():
    assert rules.find_words("only buy cheapest pills", ["buy cheap*"]) == [("buy cheap*", "buy cheapest")]
    assert rules.find_words("buy expensive", ["buy cheap*"]) == []


def test_multi_word_entry_at_end_of_text():
    assert rules.find_words("we say buy", ["buy now", "say buy"]) == [("say buy", "say buy")]
    assert rules.find_words("x buy ch", ["buy cheap*"]) == []


def test_matched_text_is_original_with_tricks():
    assert rules.find_words("a vi\u200bagra b", ["viagra"]) == [("viagra", "vi\u200bagra")]
    assert rules.find_words("café", ["cafe"]) == [("cafe", "café")]
    assert rules.find_words("cafe\u0301 au lait", ["cafe"]) == [("cafe", "cafe\u0301")]
    assert rules.find_words("ß straße", ["strasse"]) == [("strasse", "straße")]


def test_results_in_text_order_once_per_entry():
    found = rules.find_words("zeta alpha zeta beta alpha", ["alpha", "beta", "zeta", "gamma"])
    assert found == [("zeta", "zeta"), ("alpha", "alpha"), ("beta", "beta")]


def test_empty_inputs():
    assert rules.find_words("", ["a"]) == []
    assert rules.find_words("anything", []) == []


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=200),
    st.lists(st.text(min_size=1, max_size=20).map(lambda w: w + "*" if len(w) % 2 else w), max_size=5),
)
def test_any_text_and_entries_give_entries_and_substrings(text, words):
    for entry, matched in rules.find_words(text, words):
        assert entry in words
        assert matched in text


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(categories=["Ll", "Lu", "Nd"]), min_size=1, max_size=12),
       st.lists(st.sampled_from("\u200b\u00ad\u2060\ufeff\u202e"), max_size=3))
def test_invisible_characters_never_hide_a_word(word, junk):
    disguised = word[0] + "".join(junk) + word[1:]
    if rules.find_words(word, [word]):  # a word that matches itself whole
        assert [e for e, _ in rules.find_words(f"x {disguised} y", [word])] == [word]


PIECES = ["ab", "ba", "a", "b", "é", "e\u0301", " ", "  ", "-", "\u200b" * 3, "ß", "ss", "ＡＢ", "İ", "ﬁ", "\n", "ё", "_"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES), max_size=400).map("".join),
    st.lists(st.sampled_from(["ab", "ba*", "a b", "b a*", "e", "ss*", "fi", "ab ab", "i"]), min_size=1, max_size=4),
)
def test_matched_text_matches_its_entry_again(text, words):
    """Maps normalised positions back to the original, across 256-character chunks."""
    for entry, matched in rules.find_words(text, words):
        assert matched in text
        assert rules.find_words(matched, [entry]) == [(entry, matched)]


def test_matched_text_across_chunk_boundaries():
    text = "é" * 250 + "\u200b" * 300 + " ref\u200bunds " + "ü" * 300 + " vіagra"
    assert rules.find_words(text, ["refund*", "viagra"]) == [("refund*", "ref\u200bunds"), ("viagra", "vіagra")]


def naive_entries_found(text: str, words: list[str]) -> set[str]:
    """The entries of words found in text, the slow and obvious way: every entry tried at every word."""
    toks = rules._normalise(text).split()
    found = set()
    for entry in words:
        want = rules._normalise(entry).split()
        star = entry.rstrip().endswith("*")
        for i in range(len(toks) - len(want) + 1):
            *whole, last = toks[i : i + len(want)]
            if whole == want[:-1] and (last.startswith(want[-1]) if star else last == want[-1]):
                found.add(entry)
    return found


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES + ["buy", "now", "cheap", "cheaper", "Buy", "nоw"]), max_size=600).map(" ".join),
    st.lists(st.sampled_from(["buy now", "buy cheap*", "buy cheap now", "cheap buy now*", "now", "chea*", "ab ab",
                              "b a*", "ss", "a b a b"]), min_size=1, max_size=5, unique=True),
)
def test_matcher_finds_what_trying_every_word_finds(text, words):
    assert {entry for entry, _ in rules.find_words(text, words)} == naive_entries_found(text, words)


def test_long_phrases_at_the_end_of_a_text_and_repeated_openings():
    words = ["buy cheap pills now", "buy cheap pill*", "buy it"]
    assert rules.find_words("buy cheap buy cheap pills", words) == [("buy cheap pill*", "buy cheap pills")]
    assert rules.find_words("buy cheap", words) == []
    assert rules.find_words("buy cheap. Buy  cheap pills, now!", words) == [
        ("buy cheap pills now", "Buy  cheap pills, now"), ("buy cheap pill*", "Buy  cheap pills")]


def test_blocked_and_held_lists_sharing_an_entry_both_fire():
    r = make_rules(blocked_words=["spam"], held_words=["spam", "Spam*"], blocked_words_action="flag", **POST)
    d = rules.decide(Draft("pure spam", links=0), r, Facts())
    assert d.status is Status.FLAGGED
    assert d.reasons == ("flagged: matched blocked word 'spam'", "held: matched held word 'spam'",
                         "held: matched held word 'Spam*' (as 'spam')")


def test_digits_and_non_latin_words():
    assert rules.find_words("call 555 now", ["555"]) == [("555", "555")]
    assert rules.find_words("это спам здесь", ["спам"]) == [("спам", "спам")]


# --- decide -----------------------------------------------------------------

POST = {"moderation_mode": "post"}


def test_blocked_word_rejects_with_reason():
    d = rules.decide(Draft("buy viagra now", links=0), make_rules(blocked_words=["viagra"], **POST), Facts())
    assert d == Decision(Status.REJECTED, ("rejected: matched blocked word 'viagra'",))


def test_blocked_beats_every_hold_and_known_author():
    r = make_rules(blocked_words=["viagra"], held_words=["refund"], max_links=0)
    d = rules.decide(Draft("viagra refund", links=9), r, Facts(known_author=True))
    assert d.status is Status.REJECTED
    assert d.reasons == ("rejected: matched blocked word 'viagra'",)


def test_reason_quotes_matched_text_when_it_differs():
    r = make_rules(blocked_words=["viagra"], held_words=["refund*"], **POST)
    d = rules.decide(Draft("VI\u200bAGRA", links=0), r, Facts())
    assert d.reasons == ("rejected: matched blocked word 'viagra' (as 'VI<U+200B>AGRA')",)
    d = rules.decide(Draft("refunding", links=0), r, Facts())
    assert d.reasons == ("held: matched held word 'refund*' (as 'refunding')",)


def test_held_word():
    d = rules.decide(Draft("I want a refund", links=0), make_rules(held_words=["refund"], **POST), Facts())
    assert d == Decision(Status.PENDING, ("held: matched held word 'refund'",))


def test_too_many_links():
    d = rules.decide(Draft("see these", links=3), make_rules(max_links=2, **POST), Facts())
    assert d == Decision(Status.PENDING, ("held: contains 3 links (limit 2)",))


def test_one_link_over_zero_limit_is_singular():
    d = rules.decide(Draft("see this", links=1), make_rules(max_links=0, **POST), Facts())
    assert d.reasons == ("held: contains 1 link (limit 0)",)


def test_links_at_limit_pass():
    d = rules.decide(Draft("see these", links=2), make_rules(max_links=2, **POST), Facts())
    assert d == Decision(Status.APPROVED, ("approved: post-moderation",))


def test_pre_moderation_holds_everyone():
    for known in (False, True):
        d = rules.decide(Draft("hello", links=0), make_rules(), Facts(known_author=known))
        assert d == Decision(Status.PENDING, ("held: pre-moderation (every comment waits for a moderator)",))


def test_known_authors_mode():
    r = make_rules(moderation_mode="known_authors")
    d = rules.decide(Draft("hello", links=0), r, Facts())
    assert d == Decision(Status.PENDING, ("held: new author (no earlier approved comment)",))
    d = rules.decide(Draft("hello", links=0), r, Facts(known_author=True))
    assert d == Decision(Status.APPROVED, ("approved: known author",))


def test_known_author_still_held_by_word_and_links():
    r = make_rules(moderation_mode="known_authors", held_words=["refund"], max_links=0)
    d = rules.decide(Draft("refund", links=1), r, Facts(known_author=True))
    assert d == Decision(
        Status.PENDING, ("held: matched held word 'refund'", "held: contains 1 link (limit 0)")
    )


def test_post_moderation_approves():
    d = rules.decide(Draft("hello", links=0), make_rules(**POST), Facts(known_author=True))
    assert d == Decision(Status.APPROVED, ("approved: post-moderation",))


def test_all_hold_reasons_listed_in_order():
    r = make_rules(held_words=["refund", "cheap"], max_links=1)
    d = rules.decide(Draft("cheap refund", links=4), r, Facts())
    assert d.status is Status.PENDING
    assert d.reasons == (
        "held: matched held word 'cheap'",
        "held: matched held word 'refund'",
        "held: contains 4 links (limit 1)",
        "held: pre-moderation (every comment waits for a moderator)",
    )


def test_words_in_name_and_website_count():
    r = make_rules(blocked_words=["viagra"], **POST)
    d = rules.decide(Draft("nice post", links=0, name="Cheap Viagra", website="https://viagra.example"), r, Facts())
    assert d.status is Status.REJECTED
    assert d.reasons == (
        "rejected: matched blocked word 'viagra' (as 'Viagra') in name",
        "rejected: matched blocked word 'viagra' in website",
    )


def test_word_reasons_are_capped():
    words = [f"word{i}" for i in range(30)]
    d = rules.decide(Draft(" ".join(words), links=0), make_rules(held_words=words, **POST), Facts())
    assert len(d.reasons) == 21
    assert d.reasons[-1] == "held: matched 10 more held words"


def test_decision_is_frozen():
    d = rules.decide(Draft("x", links=0), make_rules(), Facts())
    with pytest.raises(AttributeError):
        d.status = Status.APPROVED  # type: ignore[misc]
    assert Status.FLAGGED == "flagged"
    assert rules.MODES == ("pre", "known_authors", "post")


def test_matcher_is_compiled_once_per_word_list():
    words = [f"w{i}" for i in range(5000)]
    r = make_rules(blocked_words=words, held_words=[f"h{i}*" for i in range(5000)], **POST)
    draft = Draft("hello " * 1000, links=0)
    rules.decide(draft, r, Facts())
    compiled = rules._compile.cache_info().misses
    for _ in range(5):
        rules.decide(draft, r, Facts())
    assert rules._compile.cache_info().misses == compiled  # bench/rules_bench.py measures the speed


# --- refuse -----------------------------------------------------------------


def test_accepts_ordinary_comment():
    assert rules.refuse(Draft("hello", links=0), make_rules(), Facts(seconds_since_last_from_ip=60)) is None


def test_too_long():
    r = make_rules(max_length=10)
    assert rules.refuse(Draft("x" * 10, links=0), r, Facts()) is None
    assert rules.refuse(Draft("x" * 11, links=0), r, Facts()) == Refusal(
        400, "Your comment is too long: 11 characters (limit 10).", "body"
    )


def test_hard_cap_applies_even_to_unvalidated_rules():
    r = {**make_rules(), "max_length": 50_000}
    assert rules.refuse(Draft("x" * 10_001, links=0), r, Facts()).status_code == 400


@pytest.mark.parametrize(
    "days, age, closed",
    [(30, 30, True), (30, 45.5, True), (30, 29.9, False), (30, None, False), (0, 10_000, False), (1, 1, True)],
)
def test_closed_by_age(days, age, closed):
    refusal = rules.refuse(Draft("hi", links=0), make_rules(close_after_days=days), Facts(article_age_days=age))
    assert refusal == (Refusal(403, "Comments are closed on this article.") if closed else None)


def test_closed_by_hand():
    refusal = rules.refuse(Draft("hi", links=0), make_rules(), Facts(article_closed=True))
    assert refusal == Refusal(403, "Comments are closed on this article.", None)


@pytest.mark.parametrize("since, refused", [(0.0, True), (14.9, True), (15, False), (100, False), (None, False)])
def test_flood(since, refused):
    refusal = rules.refuse(Draft("hi", links=0), make_rules(flood_seconds=15), Facts(seconds_since_last_from_ip=since))
    assert refusal == (Refusal(429, "You are posting comments too quickly. Slow down.") if refused else None)


def test_flood_off_at_zero():
    facts = Facts(seconds_since_last_from_ip=0.0)
    assert rules.refuse(Draft("hi", links=0), make_rules(flood_seconds=0), facts) is None


def test_closed_is_reported_before_length_and_flood():
    facts = Facts(article_closed=True, seconds_since_last_from_ip=0.0)
    assert rules.refuse(Draft("x" * 20, links=0), make_rules(max_length=10), facts).status_code == 403
    facts = Facts(seconds_since_last_from_ip=0.0)
    assert rules.refuse(Draft("x" * 20, links=0), make_rules(max_length=10), facts).status_code == 400
