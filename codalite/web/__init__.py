"""`codalite serve`: the local web UI (stdlib HTTP server + Jinja2 templates)."""

from .app import make_server

__all__ = ["make_server"]
