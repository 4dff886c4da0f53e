"""Unit tests for the rules a site owner sets beyond the contract's: list actions, blocked senders,
lengths and depth, and the spam-defence and trust facts decide() reads."""
import pytest

from moderation import rules
from moderation.rules import Draft, Facts, RulesError, Status

POST = {"moderation_mode": "post"}


def decide(text="A fair point about the park.", facts=Facts(), **changes):
    changes.setdefault("min_fill_seconds", 3)
    draft_fields = {k: changes.pop(k) for k in ("email", "ip", "name", "website", "links") if k in changes}
    draft = Draft(text=text, links=draft_fields.pop("links", 0), **draft_fields)
    return rules.decide(draft, rules.validate_rules({**POST, **changes}), facts)


# --- validation of the new keys ---------------------------------------------


def test_contract_only_document_keeps_the_other_defaults():
    out = rules.validate_rules({key: rules.DEFAULT_RULES[key] for key in rules.CONTRACT_KEYS})
    assert out["max_depth"] == 5 and out["blocked_words_action"] == "reject" and out["held_words_action"] == "hold"
    assert out["min_length"] == 0 and out["blocked_ips"] == []


@pytest.mark.parametrize("doc, key, words", [
    ({"blocked_words_action": "delete"}, "blocked_words_action", "'reject', 'hold' or 'flag'"),
    ({"blocked_ips": ["10.0.0.0/33"]}, "blocked_ips", "entry 1 must be an IP address or range"),
    ({"blocked_ips": ["not an ip"]}, "blocked_ips", "'203.0.113.0/24'"),
    ({"blocked_emails": ["nobody"]}, "blocked_emails", "must be an email address"),
    ({"blocked_email_domains": ["spam"]}, "blocked_email_domains", "must be a domain"),
    ({"min_length": -1}, "min_length", "from 0 to 10000, got -1"),
    ({"max_depth": 0}, "max_depth", "from 1 to 50"),
    ({"min_length": 50, "max_length": 20}, "min_length", "not be more than max_length (20)"),
    ({"held_words": ["w"] * 5001}, "held_words", "at most 5000 entries, got 5001"),
])
def test_bad_new_values_name_their_key(doc, key, words):
    with pytest.raises(RulesError) as error:
        rules.validate_rules(doc)
    assert error.value.key == key and words in str(error.value)


def test_new_lists_are_normalised():
    out = rules.validate_rules({"blocked_ips": ["203.0.113.7/24", "2001:DB8::1"], "blocked_emails": [" Spam@X.org "],
                                "blocked_email_domains": ["@Spam.Example."]})
    assert out["blocked_ips"] == ["203.0.113.0/24", "2001:db8::1/128"]
    assert out["blocked_emails"] == ["spam@x.org"] and out["blocked_email_domains"] == ["spam.example"]


def test_stored_rules_without_the_new_keys_still_decide():
    old = {key: rules.DEFAULT_RULES[key] for key in rules.CONTRACT_KEYS} | {"moderation_mode": "post"}
    assert rules.decide(Draft("hello", 0), old, Facts()).status == Status.APPROVED
    assert rules.refuse(Draft("hello", 0), old, Facts()) is None


# --- list actions and blocked senders ---------------------------------------


@pytest.mark.parametrize("action, status, verdict", [
    ("reject", Status.REJECTED, "rejected"), ("hold", Status.PENDING, "held"), ("flag", Status.FLAGGED, "flagged")])
def test_word_list_action(action, status, verdict):
    decision = decide("Buy cheap casino chips", blocked_words=["casino"], blocked_words_action=action)
    assert decision.status == status
    assert decision.reasons[0] == f"{verdict}: matched blocked word 'casino'"


def test_held_list_may_reject():
    decision = decide("refund please", held_words=["refund"], held_words_action="reject")
    assert decision == rules.Decision(Status.REJECTED, ("rejected: matched held word 'refund'",))


def test_flagged_keeps_the_hold_reasons_too():
    decision = decide("casino", links=5, blocked_words=["casino"], blocked_words_action="flag", max_links=1)
    assert decision.status == Status.FLAGGED
    assert decision.reasons == ("flagged: matched blocked word 'casino'", "held: contains 5 links (limit 1)")


@pytest.mark.parametrize("email, changes, reason", [
    ("Spam@X.org", {"blocked_emails": ["spam@x.org"]}, "rejected: blocked email address"),
    ("a@mail.spam.example", {"blocked_email_domains": ["spam.example"]}, "rejected: blocked email domain 'spam.example'"),
    ("a@spam.example", {"blocked_email_domains": ["spam.example"]}, "rejected: blocked email domain 'spam.example'"),
])
def test_blocked_email(email, changes, reason):
    assert decide(email=email, **changes) == rules.Decision(Status.REJECTED, (reason,))


def test_lookalike_domain_is_not_blocked():
    assert decide(email="a@notspam.example", blocked_email_domains=["spam.example"]).status == Status.APPROVED


@pytest.mark.parametrize("ip, blocked", [
    ("203.0.113.77", True), ("203.0.114.1", False), ("::ffff:203.0.113.9", True),
    ("2001:db8:0:1::5", True), ("2001:db9::1", False), ("garbage", False)])
def test_blocked_ip_ranges(ip, blocked):
    decision = decide(ip=ip, blocked_ips=["203.0.113.0/24", "2001:db8::/48"])
    assert (decision.status == Status.REJECTED) == blocked
    if blocked:
        assert "rejected: IP address in blocked range" in decision.reasons[0]


def test_min_length_refuses_beside_the_body():
    refusal = rules.refuse(Draft("ok", 0), rules.validate_rules({"min_length": 10}), Facts())
    assert refusal == rules.Refusal(400, "Your comment is too short: 2 characters (at least 10).", "body")


# --- spam defence facts -----------------------------------------------------


@pytest.mark.parametrize("ip_since, email_since, refused", [
    (None, 3.0, True), (3.0, None, True), (30.0, 3.0, True), (30.0, 30.0, False), (None, None, False)])
def test_flood_per_ip_and_per_email(ip_since, email_since, refused):
    facts = Facts(seconds_since_last_from_ip=ip_since, seconds_since_last_from_email=email_since)
    refusal = rules.refuse(Draft("hello", 0), rules.validate_rules({"flood_seconds": 15}), facts)
    assert (refusal == rules.Refusal(429, "You are posting comments too quickly. Slow down.")) == refused


@pytest.mark.parametrize("facts, reason", [
    (Facts(honeypot_filled=True), "held: the hidden field 'Leave this empty' was filled in (people never see it)"),
    (Facts(repeated_on_articles=4), "held: repeated on 4 articles within a day"),
    (Facts(author_trusted=False), "held: author marked untrusted by a moderator"),
])
def test_spam_facts_hold_even_in_post_moderation(facts, reason):
    assert decide(facts=facts) == rules.Decision(Status.PENDING, (reason,))


def test_time_trap_is_on_by_default_at_three_seconds():
    assert rules.DEFAULT_RULES["min_fill_seconds"] == 3
    draft = Draft("hello", 0)
    decision = rules.decide(draft, rules.validate_rules({"moderation_mode": "known_authors"}),
                            Facts(known_author=True, seconds_to_fill=2.94))
    assert decision == rules.Decision(Status.PENDING, ("held: filled too fast (2.9 s)",))


@pytest.mark.parametrize("mode, reasons", [
    ("pre", ("held: filled too fast (1.2 s)", "held: pre-moderation (every comment waits for a moderator)")),
    ("known_authors", ("held: filled too fast (1.2 s)",)),
])
def test_too_fast_form_waits_in_pre_and_known_authors_modes(mode, reasons):
    assert decide(facts=Facts(known_author=True, seconds_to_fill=1.25), moderation_mode=mode) == rules.Decision(
        Status.PENDING, reasons)


def test_too_fast_form_is_published_in_post_mode_with_the_reason_noted():
    assert decide(facts=Facts(seconds_to_fill=1.25)) == rules.Decision(
        Status.APPROVED, ("approved: post-moderation", "noted: filled too fast (1.2 s)"))
    held = decide(facts=Facts(seconds_to_fill=0.5, honeypot_filled=True))
    assert held.status == Status.PENDING and held.reasons[-1] == "noted: filled too fast (0.5 s)"


def test_time_trap_off_at_zero():
    assert decide(facts=Facts(known_author=True, seconds_to_fill=0.1), min_fill_seconds=0,
                  moderation_mode="known_authors").status == Status.APPROVED


@pytest.mark.parametrize("facts", [Facts(seconds_to_fill=3.0), Facts(seconds_to_fill=None),
                                   Facts(repeated_on_articles=2), Facts(author_trusted=None)])
def test_spam_facts_below_their_thresholds_pass(facts):
    assert decide(facts=facts).status == Status.APPROVED


def test_trusted_author_is_approved_in_known_authors_mode():
    decision = decide(facts=Facts(author_trusted=True), moderation_mode="known_authors")
    assert decision == rules.Decision(Status.APPROVED, ("approved: trusted author",))
    assert decide(facts=Facts(author_trusted=True), moderation_mode="pre").status == Status.PENDING


def test_untrusted_known_author_is_held():
    decision = decide(facts=Facts(known_author=True, author_trusted=False), moderation_mode="known_authors")
    assert decision == rules.Decision(Status.PENDING, ("held: author marked untrusted by a moderator",))


LINK_SENT = "held: new author on this browser, with a verified email: a 'Publish my comment' link was emailed"


def test_verified_email_without_a_token_waits_for_a_publish_link():
    decision = decide(facts=Facts(email_verified=True), moderation_mode="known_authors")
    assert decision == rules.Decision(Status.PENDING, (LINK_SENT,), publish_by_email_link=True)
    assert rules.rule_of(LINK_SENT) == "moderation_mode"


@pytest.mark.parametrize("facts, changes, reasons", [
    (Facts(email_verified=True), {"moderation_mode": "pre"},
     ("held: pre-moderation (every comment waits for a moderator)",)),
    (Facts(email_verified=True, known_author=True), {"moderation_mode": "known_authors"}, ("approved: known author",)),
    (Facts(email_verified=True), {"moderation_mode": "known_authors", "links": 5},
     ("held: contains 5 links (limit 2)", "held: new author (no earlier approved comment)")),
    (Facts(email_verified=True, seconds_to_fill=0.5), {"moderation_mode": "known_authors"},
     ("held: filled too fast (0.5 s)", "held: new author (no earlier approved comment)")),
    (Facts(email_verified=False), {"moderation_mode": "known_authors"},
     ("held: new author (no earlier approved comment)",)),
])
def test_publish_link_only_when_a_new_browser_is_the_only_reason_to_wait(facts, changes, reasons):
    decision = decide(facts=facts, **changes)
    assert decision.reasons == reasons and not decision.publish_by_email_link


# --- which rule a reason names ------------------------------------------------


@pytest.mark.parametrize("reason, rule", [
    ("rejected: matched blocked word 'casino'", "blocked_words"),
    ("flagged: matched held word 'link'", "held_words"),
    ("rejected: matched 3 more blocked words", "blocked_words"),
    ("held: matched 2 more held words", "held_words"),
    ("held: contains 3 links (limit 2)", "max_links"),
    ("rejected: IP address in blocked range '10.0.0.0/8'", "blocked_ips"),
    ("held: filled too fast (0.4 s)", "time_trap"),
    ("noted: filled too fast (0.4 s)", "time_trap"),
    ("held: new author (no earlier approved comment)", "moderation_mode"),
    ("approved: known author", None),
])
def test_rule_of_reason(reason, rule):
    assert rules.rule_of(reason) == rule


def test_every_reason_decide_gives_names_its_rule():
    facts = Facts(honeypot_filled=True, seconds_to_fill=0.5, repeated_on_articles=5, author_trusted=False)
    decision = decide("casino refund http", facts=facts, links=9, held_words=["refund"], blocked_words=["casino"],
                      blocked_words_action="hold", moderation_mode="known_authors")
    assert all(rules.rule_of(reason) for reason in decision.reasons), decision.reasons
    assert len(decision.reasons) == 8
