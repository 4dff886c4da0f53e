"""Generates a WordPress export with 100,000 comments and times `flask import wordpress` on it.

Run: python bench/import_bench.py [COMMENTS] [--database URL]
(default: 100,000 comments into a fresh SQLite file in a temporary folder)
"""

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = ("river park ferry council footpath weir mill bridge funding timetable winter commuters "
         "planning meeting residents budget library harbour school repair vote agree disagree "
         "finally thanks question answer").split()
PER_POST = 50


def paragraph(rng) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 60))).capitalize() + "."


def comment_xml(rng, n: int, parent: int, day: int) -> str:
    state = rng.choices(["1", "0", "spam", "trash"], weights=[85, 8, 5, 2])[0]
    body = paragraph(rng)
    if rng.random() < 0.3:
        body += "\n\n" + paragraph(rng) + " See https://news.example.org/more and <strong>this</strong>."
    return f"""
		<wp:comment>
			<wp:comment_id>{n}</wp:comment_id>
			<wp:comment_author><![CDATA[Reader {n % 5000}]]></wp:comment_author>
			<wp:comment_author_email><![CDATA[reader{n % 5000}@example.org]]></wp:comment_author_email>
			<wp:comment_author_url>https://reader{n % 5000}.example.org/</wp:comment_author_url>
			<wp:comment_author_IP><![CDATA[198.51.{n % 250}.{n % 200}]]></wp:comment_author_IP>
			<wp:comment_date><![CDATA[2025-{1 + day % 12:02d}-{1 + day % 28:02d} 10:{n % 60:02d}:00]]></wp:comment_date>
			<wp:comment_date_gmt><![CDATA[2025-{1 + day % 12:02d}-{1 + day % 28:02d} 09:{n % 60:02d}:00]]></wp:comment_date_gmt>
			<wp:comment_content><![CDATA[{body}]]></wp:comment_content>
			<wp:comment_approved><![CDATA[{state}]]></wp:comment_approved>
			<wp:comment_type><![CDATA[comment]]></wp:comment_type>
			<wp:comment_parent>{parent}</wp:comment_parent>
			<wp:comment_user_id>0</wp:comment_user_id>
		</wp:comment>"""


def write_wxr(path: Path, comments: int) -> None:
    rng = random.Random(6)
    with open(path, "w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8" ?>\n<rss version="2.0" '
                  'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
                  'xmlns:wp="http://wordpress.org/export/1.2/">\n<channel>\n'
                  "<title>Bench Gazette</title><link>https://news.example.org</link>\n"
                  "<wp:base_blog_url>https://news.example.org</wp:base_blog_url>\n")
        n = 0
        for post in range(comments // PER_POST + 1):
            out.write(f"\t<item>\n\t\t<title>Article {post}</title>\n"
                      f"\t\t<link>https://news.example.org/{post}.html</link>\n"
                      f"\t\t<content:encoded><![CDATA[{paragraph(rng)}]]></content:encoded>\n"
                      f"\t\t<wp:post_id>{post}</wp:post_id>")
            first = n + 1
            for _ in range(min(PER_POST, comments - n)):
                n += 1
                parent = rng.randint(first, n - 1) if n > first and rng.random() < 0.4 else 0
                out.write(comment_xml(rng, n, parent, post))
            out.write("\n\t</item>\n")
        out.write("</channel>\n</rss>\n")


def flask(database: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {"MODERATION_SQLALCHEMY_DATABASE_URI": database, "MODERATION_SECRET_KEY": "bench-only",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "moderation", *args], env=env, cwd=ROOT,
                          check=True, text=True, capture_output=True, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("comments", type=int, nargs="?", default=100_000)
    parser.add_argument("--database", help="a database URL (default: a new SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.xml"
        database = args.database or f"sqlite:///{folder}/bench.sqlite"
        write_wxr(path, args.comments)
        print(f"{path.stat().st_size / 1e6:.1f} MB WXR file with {args.comments:,} comments")
        flask(database, "init-db")
        load_before = os.getloadavg()[0]
        added = flask(database, "add-site", "Bench Gazette", "--origin", "https://news.example.org")
        key = added.stdout.split("with the key ")[1].split(".")[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = flask(database, "import", "wordpress", str(path), "--site", key)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        print(result.stdout.strip())
        print(f"import: {seconds:.1f} s wall for {args.comments:,} comments ({args.comments / seconds:,.0f} comments/s); "
              f"{cpu:.1f} s of CPU in all processes; peak memory of one process {after.ru_maxrss / 1024:.0f} MB; "
              f"load average before {load_before:.1f} on {os.cpu_count()} CPUs")
        started = time.perf_counter()
        again = flask(database, "import", "wordpress", str(path), "--site", key)
        print(f"second import of the same file: {time.perf_counter() - started:.1f} s; {again.stdout.strip()}")


if __name__ == "__main__":
    main()
