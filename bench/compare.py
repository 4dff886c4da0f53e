"""Side-by-side benchmarks, in one run, on loopback:

  - the public thread read (200 approved comments): ours (cached JSON, and the widget page)
    against Isso 0.14 (GET /?uri=) and the ceiling (a bare Flask app, same-sized body);
  - comment creation: ours (POST /api/v1/comments) against Isso (POST /new) and the ceiling;
  - the moderation queue page (100,000 pending, on a second site) and an approval, against the ceiling;
  - the first, uncached render of the 200-comment thread (server time, in process);
  - one worker's resident memory.

Every server runs under gunicorn with the same settings; wrk (Debian package `wrk`) drives
them with 2 threads and 16 connections, in bounded runs, interleaved round by round so that
the noise of a shared machine falls on every side alike. Isso is installed from PyPI into its
own venv under bench/.work/ (git-ignored) on the first run.

    .venv/bin/python bench/compare.py               # about 6 minutes
    .venv/bin/python bench/compare.py --duration 5 --rounds 2
"""
import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import requests

BENCH = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(BENCH)
WORK = os.path.join(BENCH, ".work")
ISSO_VENV = os.path.join(WORK, "isso-venv")
ORIGIN = "https://news.example.org"
PATH = "/2026/11/riverside-park.html"
ARTICLE = ORIGIN + PATH
BACKLOG = "https://backlog.example.com"
THREAD_SIZE = 200
PENDING = 100_000
GUNICORN = ["-w", "2", "-k", "sync", "--backlog", "2048"]  # the same for every server
EMAIL, PASSWORD = "bench@example.org", "bench password 1234"


def parent_of(n: int) -> int | None:
    """The thread's shape: every fifth comment starts a conversation, the next four reply to it."""
    return None if n % 5 == 0 else n - n % 5


def body(n: int) -> str:
    """A realistic comment: two paragraphs and a link, the same text for both servers."""
    return (f"Comment {n}: the council's plan for the riverside park finally funds the footpath between "
            "the ferry steps and the old mill. Parking is still unclear, see https://news.example.org/parking "
            "for the map.\n\nI walk there every morning and the lighting is what worries me most.")


# --- Servers -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


RUNNING: list["Server"] = []


class Server:
    def __init__(self, name: str, argv: list[str], env: dict, cwd: str, probe: str):
        RUNNING.append(self)
        self.name, self.port = name, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(WORK, f"{name}.log"), "w")
        self.process = subprocess.Popen(
            [*argv, "-b", f"127.0.0.1:{self.port}", *GUNICORN], cwd=cwd, env={**os.environ, **env},
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(300):
            try:
                if requests.get(self.base + probe, timeout=5).status_code < 500:
                    return
            except requests.RequestException:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        sys.exit(f"{name} did not start; see {self.log.name}")

    def workers(self) -> list[str]:
        """The pids of the server's worker processes."""
        pids = []
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == self.process.pid:
                        pids.append(pid)
            except (OSError, ValueError, IndexError):
                continue
        return pids

    def worker_rss_mb(self) -> float:
        """The largest resident set among the server's worker processes, in MB."""
        sizes = []
        for pid in self.workers():
            try:
                with open(f"/proc/{pid}/status") as status:
                    sizes += [int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:")]
            except (OSError, ValueError):
                continue
        return max(sizes, default=0.0)

    def cpu_ticks(self) -> int:
        ticks = 0
        for pid in self.workers():
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime + stime
            except (OSError, ValueError, IndexError):
                continue
        return ticks

    def stop(self) -> None:
        if self in RUNNING:
            RUNNING.remove(self)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


# --- Data ----------------------------------------------------------------------------------

def seed_ours(url: str) -> dict:
    """Our database: a site, an admin, the 200-comment thread and 100,000 pending comments."""
    sys.path.insert(0, PROJECT)
    import sqlalchemy as sa

    from moderation import create_app, sanitize, search
    from moderation.extensions import db
    from moderation.models import Article, Comment, Role, Site, User
    from moderation.rules import Status, validate_rules

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    app.test_cli_runner().invoke(args=["init-db"], catch_exceptions=False)
    with app.app_context():
        site = Site(name="Riverside Gazette", rules=validate_rules(
            {"allowed_origins": [ORIGIN], "flood_seconds": 0, "moderation_mode": "pre"}))
        # The queue's backlog lives on a second site: the spam checks of a new comment look at
        # its own site's history, and a site with 100,000 waiting comments is another benchmark.
        backlog = Site(name="Backlog Weekly", rules=validate_rules({"allowed_origins": [BACKLOG]}))
        user = User(email=EMAIL, role=Role.ADMIN)
        user.set_password(PASSWORD)
        db.session.add_all([site, backlog, user])
        db.session.flush()
        articles = [Article(site_id=backlog.id, url=f"{BACKLOG}/{n}.html", title=f"Article {n}") for n in range(1000)]
        thread = Article(site_id=site.id, url=ARTICLE, title="Council backs riverside park plan")
        db.session.add_all([thread, *articles])
        db.session.flush()
        html = {n: sanitize.render(body(n)) for n in range(THREAD_SIZE)}
        row = {"site_id": site.id, "author_email": "reader@example.org", "author_website": "", "reasons": [],
               "user_agent": "bench", "sanitizer_version": sanitize.SANITIZER_VERSION, "version": 1}
        pending_row = {**row, "site_id": backlog.id}
        ids = {}
        for n in range(THREAD_SIZE):  # 40 top-level comments with 4 replies each, all on the first page
            comment = Comment(**row, article_id=thread.id, parent_id=ids.get(parent_of(n)), author_name=f"Reader {n}",
                              body=body(n), body_html=html[n], status=Status.APPROVED, ip="192.0.2.1")
            db.session.add(comment)
            db.session.flush()
            ids[n] = comment.id
        pending_html = sanitize.render(body(0))
        now = datetime.now(timezone.utc).replace(tzinfo=None)  # 100,000 over the last 30 days
        for start in range(0, PENDING, 10_000):
            db.session.execute(sa.insert(Comment), [
                {**pending_row, "article_id": articles[n % 1000].id, "author_name": f"Writer {n}",
                 "author_email": f"writer{n % 5000}@example.org", "body": body(n),
                 "body_html": pending_html, "status": Status.PENDING, "reasons": ["pre-moderation"],
                 "ip": f"198.51.{n // 256 % 256}.{n % 256}", "created_at": now - timedelta(seconds=26 * (PENDING - n))}
                for n in range(start, min(start + 10_000, PENDING))])
        search.index_waiting()  # as an import does
        db.session.commit()
        return {"site": site.key, "app": app}


ISSO_SEED = """
import sys, time
from isso import config, db
conf = config.load(config.default_file(), sys.argv[1])
store = db.SQLite3(conf.get("general", "dbpath"), conf)
store.threads.new(sys.argv[2], "Council backs riverside park plan")
texts = [line for line in sys.stdin.read().split("\\0") if line]
ids = {}
for n, text in enumerate(texts):
    parent = ids.get(None if n % 5 == 0 else n - n % 5)
    ids[n] = store.comments.add(sys.argv[2], {
        "text": text, "author": f"Reader {n}", "email": "reader@example.org", "website": None, "mode": 1,
        "remote_addr": "192.0.2.1", "created": time.time() - 3600 + n, "parent": parent})["id"]
"""


def ensure_isso() -> str:
    python = os.path.join(ISSO_VENV, "bin", "python")
    if not os.path.exists(os.path.join(ISSO_VENV, ".installed")):
        print("Installing Isso 0.14 from PyPI into", ISSO_VENV, flush=True)
        subprocess.run([sys.executable, "-m", "venv", ISSO_VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "isso==0.14.*", "gunicorn>=22,<28"], check=True)
        open(os.path.join(ISSO_VENV, ".installed"), "w").close()
    return python


def seed_isso(python: str) -> str:
    """Isso's config and database with the same 200-comment thread (approved: mode 1); new comments
    wait for moderation, as ours do; its rate guard is off, as our flood and rate limits are."""
    path = os.path.join(WORK, "isso.cfg")
    with open(path, "w") as cfg:
        cfg.write(textwrap.dedent(f"""\
            [general]
            dbpath = {os.path.join(WORK, 'isso.db')}
            host = {ORIGIN}
            notify = stdout
            [moderation]
            enabled = true
            [guard]
            enabled = false
            """))
    subprocess.run([python, "-c", ISSO_SEED, path, PATH], check=True,
                   input="\0".join(body(n) for n in range(THREAD_SIZE)), text=True)
    return path


# --- wrk -------------------------------------------------------------------------------------

POST_LUA = """
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
local run = os.time()  -- every run posts new texts, never a duplicate of an earlier run's
wrk.method = "POST"
wrk.headers["Content-Type"] = "%(type)s"
function request()
  n = n + 1
  local body = string.gsub(%(template)s, "TAG", run .. "x" .. tid .. "x" .. n)
  return wrk.format(nil, %(path)s, nil, body)
end
"""


def lua(name: str, template: str, path: str, content_type: str = "application/json") -> str:
    """A wrk script posting a unique body per request: TAG becomes run, thread and request number."""
    script = os.path.join(WORK, name + ".lua")
    with open(script, "w") as out:
        out.write(POST_LUA % {"type": content_type, "template": json.dumps(template), "path": json.dumps(path)})
    return script


def wrk(url: str, seconds: int, script: str | None = None, headers: dict | None = None) -> dict:
    argv = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if script:
        argv += ["-s", script]
    output = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", output, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
            "requests": int(re.search(r"(\d+) requests in", output).group(1)),
            "p50": ms(latency["50"]), "p99": ms(latency["99"]),
            "errors": int(errors.group(1)) if errors else 0,
            "socket_errors": bool(re.search(r"Socket errors", output))}


def ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def settle(limit: float = 60) -> None:
    """Wait until no server is still working off requests of the previous run. When wrk stops,
    a slow server (Isso reads for over a second a request) still holds up to 16 queued
    requests, and would take CPU from whichever server is measured next."""
    started = time.monotonic()
    before = sum(server.cpu_ticks() for server in RUNNING)
    while time.monotonic() - started < limit:
        time.sleep(0.25)
        now = sum(server.cpu_ticks() for server in RUNNING)
        if now - before <= 1:  # at most one clock tick (10 ms) of work in a quarter second
            return
        before = now


TICK_US = 1_000_000 / os.sysconf("SC_CLK_TCK")


def script_of(target: dict) -> str | None:
    """A target's wrk script: a path, or a function that writes one for each run."""
    script = target.get("script")
    return script() if callable(script) else script


def compare(title: str, targets: dict[str, dict], seconds: int, rounds: int) -> dict[str, dict]:
    """Runs every target once per round, in turn, after a short warm-up; medians per target.
    Every run starts once the servers are idle (settle). Besides wrk's figures, the CPU time
    the target's workers spent per request (from /proc): on a shared machine, steadier than
    requests/s, and the reason behind a ratio."""
    print(f"\n## {title}", flush=True)
    warm_ups = {}
    for name, target in targets.items():
        settle()
        warm_ups[name] = wrk(target["url"], 2, script_of(target), target.get("headers"))
    runs: dict[str, list[dict]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, target in targets.items():
            settle()
            ticks = target["server"].cpu_ticks()
            run = wrk(target["url"], seconds, script_of(target), target.get("headers"))
            # Read at once: what the workers do next is for requests wrk no longer counts.
            run["cpu_us"] = (target["server"].cpu_ticks() - ticks) * TICK_US / max(run["rps"] * seconds, 1)
            runs[name].append(run)
    summary = {}
    for name, results in runs.items():
        summary[name] = {key: statistics.median(run[key] for run in results) for key in ("rps", "p50", "p99", "cpu_us")}
        summary[name]["errors"] = sum(run["errors"] for run in results)
        summary[name]["requests"] = warm_ups[name]["requests"] + sum(run["requests"] for run in results)
        summary[name]["rounds"] = [round(run["rps"]) for run in results]
        print(f"  {name:<34} {summary[name]['rps']:>8.0f} req/s   p50 {summary[name]['p50']:>7.2f} ms   "
              f"p99 {summary[name]['p99']:>7.2f} ms   worker CPU {summary[name]['cpu_us']:>7.0f} us/req   "
              f"non-2xx/3xx {summary[name]['errors']}   rounds {summary[name]['rounds']}", flush=True)
    return summary


def ratio(summary: dict, a: str, b: str) -> str:
    """The ratio of the medians, then each round's own ratio and their median: the two runs of a
    round are measured one after the other, so a round's ratio does not compare a quick moment of
    the machine with a slow one, as the ratio of the medians can."""
    rounds = [x / y for x, y in zip(summary[a]["rounds"], summary[b]["rounds"])]
    return (f"{summary[a]['rps'] / summary[b]['rps']:.2f}   (rounds {', '.join(f'{r:.2f}' for r in rounds)}: "
            f"median {statistics.median(rounds):.2f})")


# --- The first render, in process ------------------------------------------------------------

def uncached_render(app, site_key: str) -> dict:
    """Server time of answering the 200-comment thread with an empty cache: the very first
    answer of a fresh app (templates not yet compiled), then the median of 30. Both wall-clock
    and CPU time of this process: on a shared, busy machine the CPU time is the steadier one."""
    from moderation.cache import cache

    client = app.test_client()
    timings: dict[str, list[tuple[float, float]]] = {"json": [], "widget": []}
    urls = {"json": "/api/v1/threads?" + urlencode({"site": site_key, "url": ARTICLE}),
            "widget": f"/embed/{site_key}?" + urlencode({"url": ARTICLE, "origin": ORIGIN})}
    for _ in range(31):
        for kind, url in urls.items():
            with app.app_context():
                cache.clear()
            wall, cpu = time.perf_counter(), time.process_time()
            response = client.get(url)
            timings[kind].append(((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000))
            assert response.status_code == 200, response.status_code
    return {kind: {"first": values[0][0], "median": statistics.median(wall for wall, _ in values[1:]),
                   "first_cpu": values[0][1], "median_cpu": statistics.median(cpu for _, cpu in values[1:])}
            for kind, values in timings.items()}


# --- The run -----------------------------------------------------------------------------------

def login(base: str) -> tuple[dict, str]:
    """A moderator's headers (session cookie, User-Agent) and a CSRF token for the session. wrk
    must send the same User-Agent as the login did: the session is bound to it (Flask-Login's
    strong session protection), and a request from another agent is sent to the login page."""
    browser = requests.Session()
    browser.headers["User-Agent"] = "bench/compare.py"
    page = browser.get(base + "/moderate/login").text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    answer = browser.post(base + "/moderate/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
    queue = answer.text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', queue).group(1)
    cookie = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
    return {"Cookie": cookie, "User-Agent": browser.headers["User-Agent"]}, token


def approval_script(app, token: str):
    """Writes, for each run, a wrk script approving the comments after the last one approved:
    every run's approvals are of comments still pending, not again of those a run before it
    approved (a conflict: "someone else decided first")."""
    def write() -> str:
        path = os.path.join(WORK, "approve.lua")
        with open(path, "w") as out:
            out.write(APPROVE_LUA % {"first": approved(app)["last"] + 1, "token": token})
        return path
    return write


def approved(app) -> dict:
    """How many comments are approved, and the last of them."""
    import sqlalchemy as sa

    from moderation.extensions import db
    from moderation.models import Comment
    from moderation.rules import Status

    with app.app_context():
        count, last = db.session.execute(sa.select(sa.func.count(), sa.func.max(Comment.id))
                                         .where(Comment.status == Status.APPROVED)).one()
    return {"count": count, "last": last}


def check_approvals(answered: int, approved: int, runs: int) -> None:
    """Every approval wrk counted approved a comment (its answer, a redirect, says nothing): at
    least as many comments were approved, and at most the 16 a run leaves in flight more."""
    print(f"  approvals answered {answered:,}, comments approved {approved:,}", flush=True)
    if not answered <= approved <= answered + 16 * runs:
        sys.exit(f"The approval benchmark did not approve what it sent: {answered:,} answered, "
                 f"{approved:,} approved. Its figures measure something else; see {WORK}/ours.log")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per benchmark (default 3)")
    parser.add_argument("--skip-queue-bench", action="store_true", help="do not run bench/queue_bench.py at the end")
    args = parser.parse_args()
    if subprocess.run(["which", "wrk"], capture_output=True).returncode:
        sys.exit("wrk is not installed: apt-get install wrk")
    os.makedirs(WORK, exist_ok=True)
    for name in ("ours.sqlite", "ours.sqlite-wal", "ours.sqlite-shm", "isso.db"):
        if os.path.exists(os.path.join(WORK, name)):
            os.remove(os.path.join(WORK, name))

    isso_python = ensure_isso()
    print("Seeding: 200 approved comments (40 conversations of 5) on one article, 100,000 pending on others ...", flush=True)
    url = f"sqlite:///{os.path.join(WORK, 'ours.sqlite')}"
    seeded = seed_ours(url)
    isso_cfg = seed_isso(isso_python)
    render = uncached_render(seeded["app"], seeded["site"])

    ours_env = {"MODERATION_SQLALCHEMY_DATABASE_URI": url, "MODERATION_SECRET_KEY": "bench-secret",
                "MODERATION_RATELIMIT_ENABLED": "false"}
    servers = []
    try:
        ours = Server("ours", [sys.executable, "-m", "gunicorn", "wsgi:app"], ours_env, PROJECT, "/healthz")
        servers.append(ours)
        isso = Server("isso", [isso_python, "-m", "gunicorn", "isso.run:application"],
                      {"ISSO_SETTINGS": isso_cfg}, WORK, "/?uri=" + PATH)
        servers.append(isso)
        ceiling = Server("ceiling", [sys.executable, "-m", "gunicorn", "ceiling:app"], {}, BENCH, "/2")
        servers.append(ceiling)

        thread_url = ours.base + "/api/v1/threads?" + urlencode({"site": seeded["site"], "url": ARTICLE})
        widget_url = ours.base + f"/embed/{seeded['site']}?" + urlencode({"url": ARTICLE, "origin": ORIGIN})
        sizes = {name: len(requests.get(u).content) for name, u in (("json", thread_url), ("widget", widget_url))}
        isso_size = len(requests.get(isso.base + "/?uri=" + PATH).content)
        print(f"Bodies: our JSON {sizes['json']} bytes, our widget page {sizes['widget']} bytes, "
              f"Isso's JSON {isso_size} bytes", flush=True)

        results = {}
        results["read"] = compare("Public thread read, 200 approved comments", {
            "ours: GET /api/v1/threads (cached)": {"url": thread_url, "server": ours},
            "ceiling: same-sized body": {"url": f"{ceiling.base}/{sizes['json']}", "server": ceiling},
            "ours: GET /embed/KEY (widget page)": {"url": widget_url, "server": ours},
            "ceiling: widget-sized body": {"url": f"{ceiling.base}/{sizes['widget']}", "server": ceiling},
            "isso 0.14: GET /?uri=": {"url": isso.base + "/?uri=" + PATH, "server": isso},
        }, args.duration, args.rounds)

        ours_post = lua("ours_post", json.dumps({
            "site": seeded["site"], "url": ORIGIN + "/new-bench.html", "title": "New",
            "name": "Reader TAG", "email": "TAG@example.org", "body": "A new comment, number TAG, on the plan."}),
            "/api/v1/comments")
        isso_post = lua("isso_post", json.dumps({
            "text": "A new comment, number TAG, on the plan.", "author": "Reader TAG",
            "email": "TAG@example.org", "website": None}), "/new?uri=" + PATH)
        created = requests.post(ours.base + "/api/v1/comments", json={
            "site": seeded["site"], "url": ORIGIN + "/new-bench.html", "title": "New", "name": "Probe",
            "email": "probe@example.org", "body": "Probe comment before the run."})
        assert created.status_code == 201, created.text
        results["create"] = compare("Comment creation", {
            "ours: POST /api/v1/comments": {"url": ours.base, "script": ours_post, "server": ours},
            "ceiling: same-sized answer": {"url": f"{ceiling.base}/{len(created.content)}", "server": ceiling},
            "isso 0.14: POST /new": {"url": isso.base, "script": isso_post, "server": isso},
        }, args.duration, args.rounds)

        moderator, token = login(ours.base)
        queue = requests.get(ours.base + "/moderate/", headers=moderator, allow_redirects=False)
        assert queue.status_code == 200 and "Log in" not in queue.text, queue.status_code
        results["queue"] = compare(f"Moderation queue page ({PENDING:,} pending)", {
            "ours: GET /moderate/": {"url": ours.base + "/moderate/", "headers": moderator, "server": ours},
            "ceiling: same-sized body": {"url": f"{ceiling.base}/{len(queue.content)}", "server": ceiling},
        }, args.duration, args.rounds)

        approve = approval_script(seeded["app"], token)
        approved_before = approved(seeded["app"])["count"]
        results["approve"] = compare("Approval (POST, then the redirect is not followed)", {
            "ours: POST /moderate/comments/ID/approve": {"url": ours.base, "script": approve,
                                                          "headers": moderator, "server": ours},
            "ceiling: same-sized answer": {"url": f"{ceiling.base}/300", "server": ceiling},
        }, args.duration, args.rounds)
        check_approvals(results["approve"]["ours: POST /moderate/comments/ID/approve"]["requests"],
                        approved(seeded["app"])["count"] - approved_before, args.rounds + 1)
        rss = {server.name: server.worker_rss_mb() for server in servers}
    finally:
        for server in servers:
            server.stop()

    read, create = results["read"], results["create"]
    ours_read, ceil_read, isso_read = ("ours: GET /api/v1/threads (cached)", "ceiling: same-sized body",
                                       "isso 0.14: GET /?uri=")
    print("\n## Ratios (requests/s: of the medians, then of each interleaved round)")
    print(f"  cached JSON thread / ceiling:       {ratio(read, ours_read, ceil_read)}   (target >= 0.90)")
    print(f"  widget page / widget-sized ceiling: "
          f"{ratio(read, 'ours: GET /embed/KEY (widget page)', 'ceiling: widget-sized body')}")
    print(f"  cached JSON thread / Isso:          {ratio(read, ours_read, isso_read)}")
    print(f"  creation / Isso:                    "
          f"{ratio(create, 'ours: POST /api/v1/comments', 'isso 0.14: POST /new')}   (target >= 2)")
    print(f"  creation, worker CPU a post:        Isso {create['isso 0.14: POST /new']['cpu_us']:.0f} us, ours "
          f"{create['ours: POST /api/v1/comments']['cpu_us']:.0f} us: "
          f"{create['isso 0.14: POST /new']['cpu_us'] / create['ours: POST /api/v1/comments']['cpu_us']:.2f}x")
    print(f"  cached JSON thread, worker CPU:     ours {read[ours_read]['cpu_us']:.0f} us, ceiling "
          f"{read[ceil_read]['cpu_us']:.0f} us a request")
    print(f"  creation p99:                       {create['ours: POST /api/v1/comments']['p99']:.1f} ms (target < 50)")
    print(f"  queue page, 16 connections at once: p50 {results['queue']['ours: GET /moderate/']['p50']:.1f} ms, "
          f"p99 {results['queue']['ours: GET /moderate/']['p99']:.1f} ms at {PENDING:,} pending "
          "(its server time, for the target of < 50 ms, is queue_bench.py's, at the end)")
    print("\n## First, uncached render of the 200-comment thread (server time, in process)")
    for kind, timing in render.items():
        print(f"  {kind:<7} first in a fresh app {timing['first']:.1f} ms ({timing['first_cpu']:.1f} ms CPU), "
              f"then median {timing['median']:.1f} ms ({timing['median_cpu']:.1f} ms CPU)   (target < 20)")
    print("\n## Resident memory of one worker after the run")
    for name, size in rss.items():
        print(f"  {name:<8} {size:.0f} MB" + ("   (target < 100)" if name == "ours" else ""))
    print(f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}")
    print(f"gunicorn {' '.join(GUNICORN)}; wrk -t2 -c16 -d{args.duration}s x {args.rounds} interleaved rounds")
    with open(os.path.join(WORK, "results.json"), "w") as out:
        json.dump({"results": results, "render": render, "rss": rss}, out, indent=1)
    queue_bench = os.path.join(BENCH, "queue_bench.py")
    if not args.skip_queue_bench and os.path.exists(queue_bench):
        print("\n## The queue page's server time, from bench/queue_bench.py (1,000 and 100,000 pending)", flush=True)
        subprocess.run([sys.executable, queue_bench], check=False)


APPROVE_LUA = """
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
function request()
  local id = %(first)d + n * 2 + tid - 1
  n = n + 1
  return wrk.format(nil, "/moderate/comments/" .. id .. "/approve", nil, "version=1&csrf_token=%(token)s")
end
"""

if __name__ == "__main__":
    main()
