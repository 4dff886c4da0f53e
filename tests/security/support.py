"""Helpers shared by the security tests: posting through the widget's form and the API,
publishing a comment as a moderator would, and checking rendered HTML for live markup."""
import html
import re
from html.parser import HTMLParser

from moderation.extensions import db
from moderation.models import Comment
from moderation.rules import Status

from ..conftest import ARTICLE, ORIGIN, comment_fields

TITLE = "Council backs riverside park plan"
REL = "nofollow ugc noopener noreferrer"
TOKEN = re.compile(r'name="token"[^>]*value="([^"]*)"')
# The only kinds of address a link, script or form in a page we serve may have.
SAFE_SCHEMES = ("http://", "https://", "/", "#", "?")


class Markup(HTMLParser):
    """Every start tag of an HTML string with its attributes, plus comments and declarations."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.other: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_comment(self, data):
        self.other.append(data)

    def find(self, tag: str, **attrs) -> list[dict]:
        return [found for name, found in self.tags
                if name == tag and all(found.get(k) == v for k, v in attrs.items())]


def live_markup(page: str) -> list[str]:
    """What in a page we serve could run script or load something foreign: [] when inert."""
    found = []
    for tag, attrs in Markup(page).tags:
        if tag in ("iframe", "object", "embed", "svg", "math", "style", "base", "meta") and "charset" not in attrs \
                and attrs.get("name") not in ("viewport", "robots"):
            found.append(tag)
        if tag == "script" and not (attrs.get("src") or "").startswith("/static/"):
            found.append(f"script {attrs}")
        for name, value in attrs.items():
            if name.startswith("on") or name in ("style", "formaction", "srcdoc"):
                found.append(f"{tag} {name}={value!r}")
            if name in ("href", "src", "action", "xlink:href", "data") and value is not None:
                if not value.strip().lower().startswith(SAFE_SCHEMES) and value.strip():
                    found.append(f"{tag} {name}={value!r}")
    return found


def widget(client, site, url=ARTICLE, **params):
    return client.get(f"/embed/{site.key}", query_string={"url": url, "title": TITLE, **params})


def form_token(client, site, url=ARTICLE) -> str:
    match = TOKEN.search(widget(client, site, url).get_data(as_text=True))
    assert match, "the widget has no form token"
    return html.unescape(match.group(1))


def form_data(client, site, url=ARTICLE, **changes) -> dict:
    """What a reader's browser sends from the widget's form."""
    data = {"token": form_token(client, site, url), "url": url, "title": TITLE, "parent_id": "",
            "author_token": "", "body": "Good to see the footpath finally funded.",
            "name": "Ada Lovelace", "email": "ada@example.org", "website": ""}
    data.update(changes)
    return data


def post_form(client, site, data, headers=None, **kwargs):
    return client.post(f"/embed/{site.key}", data=data, headers={"Origin": ORIGIN, **(headers or {})}, **kwargs)


def post_api(client, site, origin=ORIGIN, **changes):
    headers = {"Origin": origin} if origin else {}
    return client.post("/api/v1/comments", json=comment_fields(site, **changes), headers=headers)


def set_status(app, comment_id: int, status=Status.APPROVED) -> None:
    with app.app_context():
        db.session.get(Comment, comment_id).status = status
        db.session.commit()


def publish(app, client, site, **changes) -> int:
    """A comment through the API, approved as a moderator would."""
    response = post_api(client, site, **changes)
    assert response.status_code == 201, response.get_json()
    comment_id = response.get_json()["id"]
    set_status(app, comment_id)
    return comment_id


def stored(app, comment_id: int) -> Comment:
    with app.app_context():
        comment = db.session.get(Comment, comment_id)
        db.session.expunge(comment)
        return comment


def comment_ids(app) -> list[int]:
    import sqlalchemy as sa

    with app.app_context():
        return list(db.session.scalars(sa.select(Comment.id).order_by(Comment.id)))
