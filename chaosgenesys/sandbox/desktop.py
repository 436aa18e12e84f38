"""Routes of the reference web desktop (issue 10, ``docs/reference-desktop.md``).

- ``GET /desktop/`` → the page (``desktop_files/index.html``, package data);
  ``GET /desktop`` → 301 to ``/desktop/`` (the page's redirect URI ends in ``/``).
- ``GET /desktop/{file}`` → the page's other static files (``desktop.js``, ``desktop.css``):
  only plain names of files in ``desktop_files/``, nothing else of the package.
- ``GET /desktop/lib/{name}`` → the official libraries' browser builds from the repository's
  ``node_modules/`` (next to the package source): ``streaming-client.browser.js``
  (``genesys-cloud-streaming-client``, sets ``window.GenesysCloudStreamingClient``) and
  ``purecloud-platform-client-v2.js`` (the package's declared ``browser`` build, a browserify
  bundle: ``require('platformClient')``). When they are absent the answer is 404 saying to run
  ``scripts/bootstrap``, and the page shows that error.

The page logs in with the sandbox's built-in public client ``chaosgenesys-desktop``
(``tokens.py``; redirect URI ``<origin>/desktop/``, ``browser_login.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"
#: The page's static files (package data, see setup.cfg).
FILES = Path(__file__).resolve().parent / "desktop_files"

BUNDLES = {
    "streaming-client.browser.js": (
        "genesys-cloud-streaming-client/dist/streaming-client.browser.js"
    ),
    "purecloud-platform-client-v2.js": (
        "purecloud-platform-client-v2/dist/web-cjs/purecloud-platform-client-v2.min.js"
    ),
}

_TYPES = {
    ".html": "text/html",
    ".js": "application/javascript",
    ".css": "text/css",
}
_NAME = re.compile(r"^[A-Za-z0-9_-]+\.(html|js|css)$")
# The page holds a token in memory: no caching of it, no framing by other origins.
_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "SAMEORIGIN"}


async def _lib(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    rel = BUNDLES.get(name)
    if rel is None:
        return web.Response(status=404, text=f"no desktop library named {name!r}")
    path = NODE_MODULES / rel
    if not path.is_file():
        return web.Response(
            status=404, text=f"{path} is missing: run scripts/bootstrap (npm ci) first"
        )
    return web.FileResponse(path, headers={"Content-Type": "application/javascript"})


def _serve(name: str) -> web.StreamResponse:
    path = FILES / name
    if not _NAME.match(name) or not path.is_file():
        return web.Response(status=404, text=f"no desktop file named {name!r}")
    content_type = _TYPES[path.suffix]
    return web.FileResponse(
        path, headers={**_HEADERS, "Content-Type": f"{content_type}; charset=utf-8"}
    )


async def _index(request: web.Request) -> web.StreamResponse:
    return _serve("index.html")


async def _file(request: web.Request) -> web.StreamResponse:
    return _serve(request.match_info["name"])


async def _slash(request: web.Request) -> web.StreamResponse:
    location = "/desktop/" + (f"?{request.query_string}" if request.query_string else "")
    return web.Response(status=301, headers={"Location": location})


def add_routes(app: web.Application) -> None:
    """Register the desktop's routes on the sandbox application."""
    app.router.add_get("/desktop/lib/{name}", _lib)
    app.router.add_get("/desktop", _slash)
    app.router.add_get("/desktop/", _index)
    app.router.add_get("/desktop/{name}", _file)
