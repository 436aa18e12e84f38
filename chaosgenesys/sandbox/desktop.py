"""Routes of the reference web desktop (issue 10): the official browser bundles.

``GET /desktop/lib/{name}`` serves the official libraries' browser builds from
the repository's ``node_modules/`` (next to the package source); when they are
absent it answers 404 saying to run ``scripts/bootstrap``. The page itself is
not written yet.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"

BUNDLES = {
    "streaming-client.browser.js": (
        "genesys-cloud-streaming-client/dist/streaming-client.browser.js"
    ),
    "purecloud-platform-client-v2.js": ("purecloud-platform-client-v2/dist/web-cjs/bundle.js"),
}


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


def add_routes(app: web.Application) -> None:
    """Register the desktop's routes on the sandbox application."""
    app.router.add_get("/desktop/lib/{name}", _lib)
