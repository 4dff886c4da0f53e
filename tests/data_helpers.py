"""Comments stored directly, for the tests of readers' data (privacy, import, feeds, mail)."""
from datetime import datetime

import sqlalchemy as sa

from moderation import sanitize
from moderation.extensions import db
from moderation.models import Article, Comment, utcnow
from moderation.rules import Status

from .conftest import ARTICLE


def store_comment(app, site, body="A fine article.", email="ada@example.org", name="Ada Lovelace",
                  url=ARTICLE, parent_id=None, status=Status.APPROVED, ip="192.0.2.10",
                  created_at: datetime | None = None, **changes) -> int:
    with app.app_context():
        article = db.session.scalar(sa.select(Article).where(Article.site_id == site.id, Article.url == url))
        if article is None:
            article = Article(site_id=site.id, url=url, title="Council backs riverside park plan")
            db.session.add(article)
            db.session.flush()
        comment = Comment(site_id=site.id, article_id=article.id, parent_id=parent_id, author_name=name,
                          author_email=email, author_website=changes.pop("website", "https://ada.example.org/"),
                          body=body, body_html=sanitize.render(body), status=status, ip=ip,
                          user_agent=changes.pop("user_agent", "Mozilla/5.0 (X11; Linux) Firefox/140.0"),
                          created_at=created_at or utcnow(), **changes)
        db.session.add(comment)
        db.session.commit()
        return comment.id


def load(app, model, ident):
    with app.app_context():
        found = db.session.get(model, ident)
        if found is not None:
            db.session.expunge(found)
        return found
