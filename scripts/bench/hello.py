"""The ceiling: a bare Flask app under the same gunicorn configuration as the portal."""

from flask import Flask


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def hello():
        return "hello"

    return app
