"""The ceiling for the benchmarks: a bare Flask app answering a body of the asked size from
memory, under the same gunicorn settings. GET /<size> answers <size> bytes of JSON-ish text."""
from functools import cache

from flask import Flask

app = Flask(__name__)


@cache
def body_of(size: int) -> bytes:
    return b'"' + b"x" * max(size - 2, 0) + b'"'


@app.route("/<int:size>", methods=["GET", "POST"])
def answer(size: int):
    return app.response_class(body_of(size), mimetype="application/json")
