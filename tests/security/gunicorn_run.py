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
             "--timeout", "60"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
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
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._post, args=(n,), daemon=True) for n in range(count)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _post(self, n: int):
        session, sent = local_session(), 0
        while not self.stop.is_set():
            sent += 1
            body = {"site": self.site_key, "url": ARTICLE, "title": "Load", "name": f"Poster {n}",
                    "email": f"poster{n}@example.org", "body": f"Comment {sent} from poster {n}."}
            try:
                answer = session.post(self.base + "/api/v1/comments", json=body, headers={"Origin": ORIGIN},
                                      timeout=30)
            except requests.RequestException as error:
                with self.lock:
                    self.failures += 1
                    self.errors.append(repr(error)[:300])
                session = local_session()
                continue
            with self.lock:
                self.statuses[answer.status_code] = self.statuses.get(answer.status_code, 0) + 1
                if answer.status_code == 201:
                    self.acknowledged.append(answer.json()["id"])
