"""Atom feeds of approved comments: per site and per article, never anything private."""
import hashlib
import xml.etree.ElementTree as ET

from moderation.rules import Status

from .conftest import ARTICLE, ORIGIN
from .data_helpers import store_comment

ATOM = "{http://www.w3.org/2005/Atom}"
EMAIL = "Private.Reader@example.org"
UA = "FeedProbe/7.1 (private user agent)"
IP = "203.0.113.77"


def entries(response):
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    feed = ET.fromstring(response.data)
    return [(entry.find(ATOM + "author/" + ATOM + "name").text, entry.find(ATOM + "content").text)
            for entry in feed.findall(ATOM + "entry")]


def test_site_feed_lists_approved_comments_newest_first(app, client, site):
    store_comment(app, site, body="First approved.")
    store_comment(app, site, body="Still waiting.", status=Status.PENDING)
    store_comment(app, site, body="Turned down.", status=Status.REJECTED)
    store_comment(app, site, body="Second approved, elsewhere.", url=ORIGIN + "/other.html", name="Grace")
    got = entries(client.get(f"/feeds/{site.key}.atom"))
    assert [name for name, _ in got] == ["Grace", "Ada Lovelace"]
    assert "Second approved" in got[0][1] and "<p>" in got[0][1]  # html content, escaped in the XML


def test_article_feed_has_only_that_articles_comments(app, client, site):
    store_comment(app, site, body="On the park.")
    store_comment(app, site, body="On something else.", url=ORIGIN + "/other.html")
    response = client.get(f"/feeds/{site.key}/article.atom", query_string={"url": ARTICLE})
    assert [body for _, body in entries(response)] == ["<p>On the park.</p>"]
    feed = ET.fromstring(response.data)
    assert feed.find(ATOM + "link[@rel='alternate']").get("href") == ARTICLE


def test_unknown_site_or_article_is_404(client, site):
    assert client.get("/feeds/nosuchsite1.atom").status_code == 404
    assert client.get(f"/feeds/{site.key}/article.atom", query_string={"url": ORIGIN + "/none"}).status_code == 404


def test_feeds_never_show_email_ip_user_agent_or_email_hashes(app, client, site):
    store_comment(app, site, body="Keep me private.", email=EMAIL, ip=IP, user_agent=UA,
                  name='<script>alert(1)</script> "quoted"')
    texts = [client.get(f"/feeds/{site.key}.atom").get_data(as_text=True),
             client.get(f"/feeds/{site.key}/article.atom", query_string={"url": ARTICLE}).get_data(as_text=True)]
    lowered = EMAIL.lower().encode()
    secrets = [EMAIL, EMAIL.lower(), IP, UA, hashlib.md5(lowered).hexdigest(), hashlib.sha256(lowered).hexdigest()]
    for text in texts:
        assert "Keep me private." in text
        assert not [secret for secret in secrets if secret in text]
        assert "<script>" not in text
        ET.fromstring(text)  # still well-formed with the hostile name
