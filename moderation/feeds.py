"""Atom feeds of approved comments, per site and per article; never an email, IP or user agent."""
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, render_template, request

from . import comments
from .extensions import db
from .models import Article, Comment, Site
from .rules import Status

bp = Blueprint("feeds", __name__, url_prefix="/feeds")

FEED_SIZE = 50


def latest_approved(site: Site, article: Article | None = None) -> sa.Select:
    """The newest approved comments of a site, or of one of its articles, with their article."""
    query = (sa.select(Comment, Article).join(Article, Article.id == Comment.article_id)
             .where(Comment.site_id == site.id, Comment.status == Status.APPROVED))
    if article is not None:
        query = query.where(Comment.article_id == article.id)
    return query.order_by(Comment.id.desc()).limit(FEED_SIZE)


def site_or_404(key: str) -> Site:
    site = comments.site_by_key(key)
    if site is None:
        abort(404, description="There is no site with this key.")
    return site


def atom(site: Site, title: str, alternate: str | None, rows) -> tuple:
    host = urlsplit(current_app.config["PUBLIC_URL"]).hostname or "localhost"
    xml = render_template("feeds/atom.xml", site=site, title=title, alternate=alternate, entries=rows,
                          host=host, self_url=request.url, updated=rows[0][0].created_at if rows else site.created_at)
    return xml, 200, {"Content-Type": "application/atom+xml; charset=utf-8",
                      "Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}


@bp.get("/<key>.atom")
def site_feed(key: str):
    site = site_or_404(key)
    rows = db.session.execute(latest_approved(site)).all()
    return atom(site, f"Comments on {site.name}", None, rows)


@bp.get("/<key>/article.atom")
def article_feed(key: str):
    site = site_or_404(key)
    url = request.args.get("url", "")
    article = comments.article_for(site, url) if url else None
    if article is None:
        abort(404, description="This site has no article with that address (url).")
    rows = db.session.execute(latest_approved(site, article)).all()
    return atom(site, f"Comments on {article.title or article.url}", article.url, rows)

