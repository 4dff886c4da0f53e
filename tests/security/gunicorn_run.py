"""The service under real gunicorn on loopback, and a crowd of posters, for the slow tests."""
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import requests

from ..conftest import ARTICLE, ORIGIN

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUNICORN = os.path.join(os.path.dirname(sys.executable), "gunicorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def die_with_parent() -> None:
    """In the child: gunicorn gets SIGTERM when the test process dies, so it never lingers."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def local_session() -> requests.Session:
    """A session that talks to loopback directly, whatever proxy the environment names."""
    session = requests.Session()
    session.trust_env = False
    return session


# gunicorn kills a worker silent for WORKER_TIMEOUT seconds; clients wait longer than that, so
# a request slowed by a stalled disk or database (seen for over 30 s on a loaded machine) ends
# in an answer, or in a cut connection from gunicorn, never in the client giving up first while
# the server may still commit it.
WORKER_TIMEOUT = 60
CLIENT_TIMEOUT = WORKER_TIMEOUT + 30


class Gunicorn:
    """gunicorn wsgi:app with N workers on a free loopback port; stopped on exit."""

    def __init__(self, database_url: str, workers: int = 4):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MODERATION_SQLALCHEMY_DATABASE_URI": database_url,
               "MODERATION_SECRET_KEY": "gunicorn-test-secret", "MODERATION_PUBLIC_URL": self.base,
               "MODERATION_RATELIMIT_ENABLED": "false",
               # stderr is a pipe read only at the end: a log line per request would fill it and block
               "MODERATION_REQUEST_LOG": "false"}
        self.process = subprocess.Popen(
            [GUNICORN, "wsgi:app", "-b", f"127.0.0.1:{self.port}", "-w", str(workers), "--graceful-timeout", "5",
             "--timeout", str(WORKER_TIMEOUT)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=die_with_parent, start_new_session=True)

    def __enter__(self):
        deadline, session = time.monotonic() + 30, local_session()
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if session.get(self.base + "/api/v1/openapi.json", timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("gunicorn did not start: " + self.process.stderr.read().decode()[-2000:])

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        # A worker forked while the master was stopping can outlive it, holding its database
        # connection (on SQLite, the write lock); its process group goes with the master.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def workers(self) -> list[int]:
        """The pids of the master's worker processes."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        fields = stat.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    pids.append(int(entry))
        return pids


class Posters:
    """N threads posting distinct comments until stopped; records every answer."""

    def __init__(self, base: str, site_key: str, count: int = 16):
        self.base, self.site_key, self.count = base, site_key, count
        self.acknowledged: list[int] = []
        self.statuses: dict[int, int] = {}
        self.failures = 0  # connections cut under the request: not acknowledged, so not promised
        self.errors: list[str] = []
        self.slowest = 0.0  # seconds, of any answer
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._post, args=(n,), daemon=True) for n in range(count)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        """Stop posting and wait for every request in flight to end, so nothing is counted late."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=CLIENT_TIMEOUT + 30)
        assert not any(thread.is_alive() for thread in self.threads), "a poster is still waiting for an answer"

    def wait_for(self, count: int, deadline: float) -> None:
        """Until count comments were acknowledged in all, or time.monotonic() passed deadline."""
        while len(self.acknowledged) < count and time.monotonic() < deadline:
            time.sleep(0.1)

    def _post(self, n: int):
        session, sent = local_session(), 0
        while not self.stop.is_set():
            sent += 1
            body = {"site": self.site_key, "url": ARTICLE, "title": "Load", "name": f"Poster {n}",
                    "email": f"poster{n}@example.org", "body": f"Comment {sent} from poster {n}."}
            started = time.monotonic()
            try:
                answer = session.post(self.base + "/api/v1/comments", json=body, headers={"Origin": ORIGIN},
                                      timeout=CLIENT_TIMEOUT)
            except requests.RequestException as error:
                with self.lock:
                    self.failures += 1
                    self.errors.append(repr(error)[:300])
                session = local_session()
                continue
            with self.lock:
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.statuses[answer.status_code] = self.statuses.get(answer.status_code, 0) + 1
                if answer.status_code == 201:
                    self.acknowledged.append(answer.json()["id"])
