"""Times the moderator's queue page with 1,000 and with 100,000 pending comments across 1,000
articles, and with 100,000 of which the newest 30,000 came from one IP address (a flood, or
readers behind one proxy): server time per page through the test client, several runs, the
three databases interleaved.
Also prints this process's CPU time per page (steadier than wall time on a busy machine) and the
number of SQL statements per page (a constant count means no N+1 queries).

Run: python bench/queue_bench.py            (SQLite files in a temporary folder)
     BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench_{size} python bench/queue_bench.py
     (the URL's {size} is replaced by 1000, 100000 and 100000_flood; the databases must exist and be empty)
"""
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402
from flask_migrate import upgrade  # noqa: E402

from moderation import create_app, rules, sanitize, search  # noqa: E402
from moderation.extensions import db  # noqa: E402
from moderation.models import Article, Comment, Role, Site, User, utcnow  # noqa: E402

FLOOD = 30_000
SETUPS = {"1000": (1_000, 0), "100000": (100_000, 0), "100000_flood": (100_000, FLOOD)}  # pending, from one IP
LABELS = {"1000": "  1,000 pending", "100000": "100,000 pending", "100000_flood": f"100,000 ({FLOOD:,} from one IP)"}
ARTICLES = 1_000
RUNS = 15
BATCH = 5_000
PASSWORD = "bench password"
PAGES = ("/moderate/", "/moderate/?q=ferry", "/moderate/all")


def build(url: str, size: int, flood: int):
    """An app on a fresh database holding size pending comments, the newest flood of them from one
    IP address; returns (app, logged-in client)."""
    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url,
                      "WTF_CSRF_ENABLED": False})
    with app.app_context():
        upgrade(revision="heads")
        started = time.perf_counter()
        site = Site(name="Bench Gazette", rules=rules.validate_rules({"allowed_origins": ["https://bench.example"]}))
        admin = User(email="admin@bench.example", role=Role.ADMIN)
        admin.set_password(PASSWORD)
        db.session.add_all([site, admin])
        db.session.flush()
        db.session.execute(sa.insert(Article), [
            {"site_id": site.id, "url": f"https://bench.example/story-{n}.html", "title": f"Story {n}",
             "created_at": utcnow()} for n in range(ARTICLES)])
        article_ids = list(db.session.scalars(sa.select(Article.id).order_by(Article.id)))
        start = utcnow() - timedelta(days=30)
        words = ("ferry", "tram", "council", "budget", "river", "school", "parking", "refund")
        for first in range(0, size, BATCH):
            db.session.execute(sa.insert(Comment), [{
                "site_id": site.id, "article_id": article_ids[n % ARTICLES], "author_name": f"Reader {n % 5000}",
                "author_email": f"reader{n % 5000}@example.org", "author_website": "",
                "body": f"Comment {n} about the {words[n % len(words)]} plan.",
                "body_html": f"<p>Comment {n} about the {words[n % len(words)]} plan.</p>",
                "status": "pending", "reasons": ["held: pre-moderation (every comment waits for a moderator)"],
                "ip": "203.0.113.7" if n >= size - flood else f"198.51.{n % 250}.{n % 200}", "user_agent": "bench",
                "created_at": start + timedelta(seconds=n), "version": 1,
                "sanitizer_version": sanitize.SANITIZER_VERSION,  # as stored now: not sanitized again on load
            } for n in range(first, min(first + BATCH, size))])
        search.index_waiting()  # as an import does
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text("ANALYZE"))
            db.session.commit()
        print(f"built {size:>7,} pending comments ({flood:,} from one IP) in {time.perf_counter() - started:.1f} s",
              flush=True)
    client = app.test_client()
    response = client.post("/moderate/login", data={"email": "admin@bench.example", "password": PASSWORD})
    assert response.status_code == 302, response.status_code
    return app, client


def statements_per_page(app, client, path: str) -> int:
    with app.app_context():
        engine = db.engine
    seen = []

    def count(*args):
        seen.append(1)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get(path).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def main():
    folder = tempfile.mkdtemp(prefix="queue-bench-")
    template = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{folder}/queue-{{size}}.sqlite"
    setups = {name: build(template.format(size=name), size, flood) for name, (size, flood) in SETUPS.items()}
    for path in PAGES:
        times = {name: [] for name in SETUPS}
        cpu = {name: [] for name in SETUPS}  # this process only: on PostgreSQL the server's share is not in it
        for _, client in setups.values():
            for _ in range(3):  # warm up caches and compiled statements
                client.get(path)
        for _ in range(RUNS):
            for name, (_, client) in setups.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                response = client.get(path)
                times[name].append((time.perf_counter() - started) * 1000)
                cpu[name].append((time.process_time() - started_cpu) * 1000)
                assert response.status_code == 200
        medians = {name: statistics.median(values) for name, values in times.items()}
        queries = {name: statements_per_page(app, client, path) for name, (app, client) in setups.items()}
        print(f"\n{path}")
        for name in SETUPS:
            print(f"  {LABELS[name]}: median {medians[name]:6.1f} ms per page "
                  f"(min {min(times[name]):.1f}, max {max(times[name]):.1f}; "
                  f"CPU median {statistics.median(cpu[name]):.1f} ms; {queries[name]} SQL statements)")
        for big, small in (("100000", "1000"), ("100000_flood", "100000")):
            cpu_ratio = statistics.median(cpu[big]) / statistics.median(cpu[small])
            print(f"  ratio {LABELS[big].strip()} / {LABELS[small].strip()}: "
                  f"{medians[big] / medians[small]:.2f}x (CPU {cpu_ratio:.2f}x)")
    print(f"\nload average: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")


if __name__ == "__main__":
    main()
