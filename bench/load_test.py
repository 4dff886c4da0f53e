"""Load test: 16 concurrent posters and 64 concurrent readers for 60 seconds against gunicorn
on loopback. Prints the counts and latencies; exits non-zero on any error response.

    .venv/bin/python bench/load_test.py [--seconds 60] [--database-url URL]

Without --database-url it runs on a fresh SQLite file; give a PostgreSQL URL (an empty
database) to run there. Bounded: every request has a timeout and the run stops on time."""
import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ORIGIN = "https://news.example.org"
ARTICLES = [f"{ORIGIN}/2026/11/story-{n}.html" for n in range(8)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(database_url: str) -> str:
    """Schema and one site; returns its key."""
    from flask_migrate import upgrade

    from moderation import create_app, rules
    from moderation.extensions import db
    from moderation.models import Site

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url})
    with app.app_context():
        upgrade(revision="heads")
        site = Site(name="Load Gazette", rules=rules.validate_rules(
            {"allowed_origins": [ORIGIN], "flood_seconds": 0, "moderation_mode": "post"}))
        db.session.add(site)
        db.session.commit()
        return site.key


def session() -> requests.Session:
    http = requests.Session()
    http.trust_env = False  # loopback only, whatever proxy the environment names
    return http


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.statuses = {"post": Counter(), "read": Counter()}
        self.latencies = {"post": [], "read": []}
        self.failures = Counter()

    def add(self, kind: str, status: int, seconds: float):
        with self.lock:
            self.statuses[kind][status] += 1
            self.latencies[kind].append(seconds)

    def fail(self, kind: str, error: Exception):
        with self.lock:
            self.failures[f"{kind}: {type(error).__name__}"] += 1


def poster(base, key, n, stop, tally):
    http, sent = session(), 0
    while not stop.is_set():
        sent += 1
        body = {"site": key, "url": ARTICLES[sent % len(ARTICLES)], "title": "Load", "name": f"Poster {n}",
                "email": f"poster{n}@example.org", "body": f"Comment {sent} from poster {n}."}
        start = time.perf_counter()
        try:
            answer = http.post(f"{base}/api/v1/comments", json=body, headers={"Origin": ORIGIN}, timeout=30)
            tally.add("post", answer.status_code, time.perf_counter() - start)
        except requests.RequestException as error:
            tally.fail("post", error)


def reader(base, key, n, stop, tally):
    http, done = session(), 0
    while not stop.is_set():
        done += 1
        url = ARTICLES[(n + done) % len(ARTICLES)]
        path = "/api/v1/threads" if done % 2 else f"/embed/{key}"
        start = time.perf_counter()
        try:
            answer = http.get(base + path, params={"site": key, "url": url}, timeout=30)
            tally.add("read", answer.status_code, time.perf_counter() - start)
        except requests.RequestException as error:
            tally.fail("read", error)


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * fraction))] * 1000 if values else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--posters", type=int, default=16)
    parser.add_argument("--readers", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="moderation-load-")
    database_url = args.database_url or f"sqlite:///{scratch}/load.sqlite"
    key = prepare(database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MODERATION_SQLALCHEMY_DATABASE_URI": database_url, "MODERATION_SECRET_KEY": "load-test",
           "MODERATION_PUBLIC_URL": base, "MODERATION_RATELIMIT_ENABLED": "false"}
    server = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "gunicorn"), "wsgi:app", "-b", f"127.0.0.1:{port}",
         "-w", str(args.workers), "--threads", "4", "--timeout", "60"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(150):
            try:
                if session().get(base + "/api/v1/openapi.json", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            print("gunicorn did not start", file=sys.stderr)
            return 2
        stop, tally = threading.Event(), Tally()
        threads = ([threading.Thread(target=poster, args=(base, key, n, stop, tally)) for n in range(args.posters)]
                   + [threading.Thread(target=reader, args=(base, key, n, stop, tally)) for n in range(args.readers)])
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        elapsed = time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        finally:
            try:  # no worker outlives the run
                os.killpg(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    engine = database_url.split(":", 1)[0]
    print(f"{args.posters} posters, {args.readers} readers, {elapsed:.0f} s, {args.workers} gunicorn workers, {engine}")
    errors = 0
    for kind in ("post", "read"):
        statuses, latencies = tally.statuses[kind], tally.latencies[kind]
        total = sum(statuses.values())
        print(f"{kind:5} {total:7d} requests {total / elapsed:7.1f}/s  statuses {dict(sorted(statuses.items()))}  "
              f"p50 {percentile(latencies, .5):.0f} ms  p95 {percentile(latencies, .95):.0f} ms  "
              f"p99 {percentile(latencies, .99):.0f} ms")
        errors += sum(count for status, count in statuses.items() if status >= 400)
    if tally.failures:
        print(f"failed requests: {dict(tally.failures)}")
    print("OK: no error responses" if not errors and not tally.failures else f"FAIL: {errors} error responses")
    return 0 if not errors and not tally.failures else 1


if __name__ == "__main__":
    sys.exit(main())
