"""The WSGI entry point: `gunicorn wsgi:app` from the project root."""
from moderation import create_app

app = create_app()
