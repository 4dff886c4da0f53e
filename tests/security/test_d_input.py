"""Section D of security-cases.md: Unicode, size, headers and rate, cases 35-41.

Case 37: the test here checks that no CR, LF or encoded-word header trick survives into a
stored name or email; that none reaches the headers of a sent email is tested with a real SMTP
server in tests/test_notifications.py (test_names_and_subjects_cannot_inject_headers).
Case 40: there are no votes or flags from readers, so only the posting rate applies.
Case 41: addresses are tested as REMOTE_ADDR and as X-Forwarded-For behind one trusted proxy."""
import json

import pytest

from moderation import create_app, sanitize, throttle, tokens
from moderation.rules import Status
from ..conftest import ARTICLE, ORIGIN, comment_fields
from .support import Markup, comment_ids, form_data, post_api, post_form, publish, stored

INVISIBLE = "\u202e\u2066\u2067\u2068\u2069\u200b\u200c\u200d\u2060\ufeff\u202a\u202b\u202c\u202d"


def test_case_35_name_loses_bidi_controls_and_invisibles(app, client, site):
    response = post_api(client, site, name=f"Ada{INVISIBLE}\u202eLovelace", website="")
    assert response.status_code == 201, response.get_json()
    name = stored(app, response.get_json()["id"]).author_name
    assert name == "AdaLovelace" and not set(name) & set(INVISIBLE)


def test_case_35_name_is_nfc_and_capped(app, client, site):
    response = post_api(client, site, name="Rene\u0301e")
    assert stored(app, response.get_json()["id"]).author_name == "Renée"
    flood = post_api(client, site, name="Z" + "\u0301" * 300, body="Combining flood.")
    assert flood.status_code == 400 and "name" in flood.get_json()["errors"]


@pytest.mark.parametrize("name", ["Admin", "ADMIN", "\u0410dmin", "Ad\u200bmin", "Ａｄｍｉｎ", "admin\u0301",
                                  "Moderator", "Riverside Gazette", "Rіverside Gаzette", "The Admin"])
def test_case_36_reserved_names_are_refused_on_their_skeleton(app, client, site, name):
    response = post_api(client, site, name=name)
    assert response.status_code == 400
    assert "reserved" in response.get_json()["errors"]["name"][0]
    assert comment_ids(app) == []


def test_case_36_reserved_name_in_the_form_keeps_the_text(client, site):
    response = post_form(client, site, form_data(client, site, name="\u0410dmin", body="Official notice!"))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "reserved" in page and "Official notice!" in page


@pytest.mark.parametrize("name", ["Adam", "Badminton Club", "Ada Lovelace"])
def test_case_36_ordinary_names_pass(client, site, name):
    assert post_api(client, site, name=name).status_code == 201


@pytest.mark.parametrize("email", ["ada@example.org\r\nBcc: victim@example.net", "ada@example.org\n",
                                   "=?UTF-8?Q?=0A?=Bcc:victim@example.net", "ada@example.org)<b@y.org>",
                                   "ada@example.org, b@y.org", "Ada <ada@example.org>"])
def test_case_37_email_with_header_tricks_is_refused(app, client, site, email):
    response = post_api(client, site, email=email)
    if response.status_code == 201:  # a trailing newline may be trimmed away, nothing more
        assert stored(app, response.get_json()["id"]).author_email == "ada@example.org"
    else:
        assert response.status_code == 400 and "email" in response.get_json()["errors"]


@pytest.mark.parametrize("name", ["Ada\r\nBcc: victim@example.net", "Ada\nSubject: hi", "Ada\x85Bcc: x"])
def test_case_37_name_is_one_line(app, client, site, name):
    response = post_api(client, site, name=name)
    assert response.status_code == 201
    stored_name = stored(app, response.get_json()["id"]).author_name
    assert not any(ch in stored_name for ch in "\r\n\x85\u2028\u2029")


def test_case_38_huge_post_is_refused_before_parsing(app, client, site):
    huge = "x" * (10 * 1024 * 1024)
    api = client.post("/api/v1/comments", data=json.dumps(comment_fields(site, body=huge)),
                      content_type="application/json", headers={"Origin": ORIGIN})
    assert api.status_code == 413 and api.get_json()["error"]
    form = post_form(client, site, form_data(client, site, body=huge))
    assert form.status_code == 413
    assert comment_ids(app) == []


def test_case_38_many_lines_are_refused_by_the_field_cap(app, client, site):
    response = post_api(client, site, body="line\n" * 100_000)
    assert response.status_code in (400, 413)
    assert comment_ids(app) == []


@pytest.mark.parametrize("tag", ["b", "blockquote", "a", "q"])
def test_case_38_deep_nesting_is_bounded(tag):
    html = sanitize.render(f"<{tag}>" * 5000 + "deep" + f"</{tag}>" * 5000)
    assert sum(1 for name, _ in Markup(html).tags if name == tag) <= sanitize._MAX_DEPTH
    assert "deep" in sanitize.plain_text(html)


@pytest.mark.parametrize("changes", [
    {"body": "nul\x00byte"}, {"name": "Ada\x00"}, {"body": "lone \ud800 surrogate"}, {"name": "\udfff"},
    {"parent_id": 10**30}, {"parent_id": -(10**30)}, {"parent_id": 1.5}, {"url": ARTICLE + "\x00"},
    {"website": "https://a.example/\x00"}, {"email": "a\x00@example.org"}, {"title": "\ud83d"},
])
def test_case_39_bad_characters_and_numbers_give_400_or_are_cleaned_never_500(app, client, site, changes):
    response = post_api(client, site, **changes)
    assert response.status_code in (201, 400), response.get_json()
    if response.status_code == 201:
        comment = stored(app, response.get_json()["id"])
        for value in (comment.body, comment.author_name, comment.author_email, comment.author_website):
            assert "\x00" not in value and not any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)


@pytest.mark.parametrize("raw", [b'{"site": "\xff\xfe", "body": "x"}', b"\xc3\x28", b'{"body": "\\ud800"', b"[" * 100_000])
def test_case_39_bad_utf8_and_broken_json_give_400(client, site, raw):
    response = client.post("/api/v1/comments", data=raw, content_type="application/json", headers={"Origin": ORIGIN})
    assert response.status_code == 400 and response.get_json()["error"]


@pytest.mark.parametrize("field", ["body", "name", "parent_id", "token"])
def test_case_39_form_with_nul_or_huge_numbers_never_500s(app, client, site, field):
    data = form_data(client, site)
    data[field] = {"parent_id": "9" * 40, "token": "\x00" * 10}.get(field, data[field] + "\x00")
    response = post_form(client, site, data)
    assert response.status_code in (303, 400)


def test_case_39_bad_query_strings_never_500(client, site):
    for query in (b"site=\xff&url=\xfe", b"site=" + site.key.encode() + b"&url=%00", b"url=%ED%A0%80&site=x"):
        response = client.get("/api/v1/threads?" + query.decode("latin-1"))
        assert 400 <= response.status_code < 500
        response = client.get(f"/embed/{site.key}?" + query.decode("latin-1"))
        assert 400 <= response.status_code < 500


def test_case_40_posting_faster_than_the_flood_limit_gets_429(app, client, make_site):
    site = make_site(flood_seconds=60)
    assert post_api(client, site, body="First.").status_code == 201
    second = post_api(client, site, body="Second, too soon.", email="other@example.org")
    assert second.status_code == 429 and second.get_json()["error"]
    assert len(comment_ids(app)) == 1


@pytest.fixture
def proxied(app):
    """The same service behind one trusted reverse proxy (PROXY_COUNT = 1): the client's address
    is the last X-Forwarded-For entry."""
    return create_app({**app.config, "PROXY_COUNT": 1}).test_client()


def by_remote_addr(client, site, ip, **changes):
    return client.post("/api/v1/comments", json=comment_fields(site, **changes), headers={"Origin": ORIGIN},
                       environ_base={"REMOTE_ADDR": ip})


def by_forwarded_for(client, site, ip, **changes):
    return client.post("/api/v1/comments", json=comment_fields(site, **changes),
                       headers={"Origin": ORIGIN, "X-Forwarded-For": f"203.0.113.250, {ip}"},
                       environ_base={"REMOTE_ADDR": "10.0.0.2"})


@pytest.mark.parametrize(("given", "kept"), [
    ("2001:db8::1", "2001:db8:0:0:0:0:0:1"), ("2001:DB8:0::0001", "2001:db8:0:0:0:0:0:1"),
    ("[2001:db8::1]:443", "2001:db8:0:0:0:0:0:1"), ("fe80::1%eth0", "fe80:0:0:0:0:0:0:1"),
    ("::ffff:192.0.2.1", "192.0.2.1"), ("[::ffff:192.0.2.1]:8080", "192.0.2.1"), ("192.0.2.1:51234", "192.0.2.1"),
    ("unknown", None), ("x" * 80, None)])
@pytest.mark.parametrize("send", [by_remote_addr, by_forwarded_for])
def test_case_41_ipv6_ports_and_mapped_addresses_are_parsed_and_stored_one_way(
        app, client, proxied, site, send, given, kept):
    response = send(proxied if send is by_forwarded_for else client, site, given)
    assert response.status_code == 201, response.get_json()
    assert stored(app, response.get_json()["id"]).ip == kept


@pytest.mark.parametrize("send", [by_remote_addr, by_forwarded_for])
@pytest.mark.parametrize(("first", "second", "limited"), [
    ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", True), ("[2001:db8:1:2::1]:443", "2001:db8:1:2::7", True),
    ("2001:db8:1:2::1", "2001:db8:1:3::1", False), ("2001:db8:1:2:0:0:1:0", "2001:db8:1:2::1:0:0", True),
    ("198.51.100.7", "::ffff:198.51.100.7", True), ("198.51.100.7", "198.51.100.70", False)])
def test_case_41_flood_limit_counts_an_ipv6_64_as_one_client(app, client, proxied, make_site, send, first, second,
                                                             limited):
    site = make_site(flood_seconds=60)
    posting = proxied if send is by_forwarded_for else client
    assert send(posting, site, first, body="First.").status_code == 201
    response = send(posting, site, second, body="From the same client?", email="other@example.org")
    assert response.status_code == (429 if limited else 201), response.get_json()
    assert len(comment_ids(app)) == (1 if limited else 2)


@pytest.mark.parametrize("send", [by_remote_addr, by_forwarded_for])
@pytest.mark.parametrize(("first", "second", "limited"), [
    ("[2001:db8:1:2::1]:443", "2001:db8:1:2::ffff", True), ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
    ("::ffff:198.51.100.7", "198.51.100.7:4711", True)])
def test_case_41_rate_limit_counts_an_ipv6_64_as_one_client(app, client, proxied, site, send, first, second, limited):
    app.config["COMMENT_RATE_LIMIT"] = "1 per minute"
    posting = proxied if send is by_forwarded_for else client
    if send is by_forwarded_for:
        posting.application.config["COMMENT_RATE_LIMIT"] = "1 per minute"
    assert send(posting, site, first, body="First.").status_code == 201
    response = send(posting, site, second, body="Second.", email="other@example.org")
    assert (response.status_code == 429) == limited


@pytest.mark.parametrize("send", ["REMOTE_ADDR", "X-Forwarded-For"])
def test_case_41_reader_reports_count_an_ipv6_64_as_one_reader(app, client, proxied, make_site, send):
    site = make_site(report_threshold=2)
    comment_id = publish(app, client, site)
    reporting = proxied if send == "X-Forwarded-For" else client

    def report(ip):
        where = ({"headers": {"X-Forwarded-For": ip}, "environ_base": {"REMOTE_ADDR": "10.0.0.2"}}
                 if send == "X-Forwarded-For" else {"environ_base": {"REMOTE_ADDR": ip}})
        with app.app_context():
            token = tokens.report_token(site.key, comment_id)  # each report form's own single-use token
        return reporting.post(f"/embed/{site.key}/comments/{comment_id}/report", query_string={"url": ARTICLE},
                              data={"reason": "spam", "text": "", "token": token}, **where)

    assert report("[2001:db8:1:2::1]:443").status_code == 200
    assert report("2001:db8:1:2::99").status_code == 200  # the same reader again: counted once
    assert stored(app, comment_id).reports == 1 and stored(app, comment_id).status == Status.APPROVED
    assert report("2001:db8:1:3::1").status_code == 200  # a second reader: past the threshold
    assert stored(app, comment_id).reports == 2 and stored(app, comment_id).status == Status.PENDING


def test_case_41_login_throttle_counts_an_ipv6_64_as_one_address():
    assert throttle.keys_for("a@example.org", "2001:db8:1:2::1")[1] == \
        throttle.keys_for("b@example.org", "2001:db8:1:2:ffff::9")[1] == "ip:2001:db8:1:2::/64"
    assert throttle.keys_for("a@example.org", "::ffff:198.51.100.7")[1] == "ip:198.51.100.7"
