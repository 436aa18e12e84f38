"""The single writer of a sandbox WebSocket: a queue drained in order by one task, so frames
never interleave and a close goes out after everything queued before it.

Both desktop channels use it: the JSON ``/channels/{id}`` socket (``channel_socket.py``, which
adds its heartbeats) and a streaming session (``stream_session.py``)::

    writer = ChannelSocket(ws, channel_id, heartbeat_interval)   # a SocketWriter
    writer.send(text)                  # False once it is closing
    await writer.close(1000, "bye")    # resolves once the close frame went out
    await writer.finish()              # once the reader is done
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiohttp
from aiohttp import web

__all__ = ["CLOSE_TIMEOUT", "CloseItem", "SocketWriter"]

logger = logging.getLogger("chaostoolkit")

#: How long a close waits for the writer to get the close frame out.
CLOSE_TIMEOUT = 5.0


@dataclass
class CloseItem:
    """The writer's last item: the WebSocket close with ``code``."""

    code: int
    message: bytes
    done: asyncio.Future[None]


class SocketWriter:
    """One WebSocket's writer task over a queue of text frames and, last, its close.

    ``what`` names the socket in the log (``notification socket``, ``streaming session``);
    the task is named ``<task prefix>-<channel id>``. A subclass may override :meth:`_next` to
    write something of its own when nothing is queued (the JSON channel's heartbeats).
    """

    def __init__(
        self, ws: web.WebSocketResponse, channel_id: str, *, what: str, task_prefix: str
    ) -> None:
        self.ws = ws
        self.channel_id = channel_id
        self._what = what
        self._queue: asyncio.Queue[str | CloseItem] = asyncio.Queue()
        self._closing: CloseItem | None = None
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name=f"{task_prefix}-{channel_id}")

    @property
    def closing(self) -> bool:
        """True once a close was requested: nothing more is queued."""
        return self._closing is not None

    def backlog(self) -> int:
        """Frames queued and not yet written."""
        return self._queue.qsize()

    def send(self, text: str) -> bool:
        """Queue one text frame; False when the socket is closing."""
        if self._closing is not None:
            return False
        self._queue.put_nowait(text)
        return True

    def close(self, code: int, reason: str) -> asyncio.Future[None]:
        """Queue the close after what is already queued (nothing after it); the future
        resolves once it went out, or the writer stopped."""
        if self._closing is None:
            self._closing = CloseItem(code, reason.encode()[:120], self._loop.create_future())
            self._queue.put_nowait(self._closing)
        return self._closing.done

    async def written(self) -> None:
        """Wait until the writer is done (the close went out, or the socket failed)."""
        await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT)

    async def finish(self) -> None:
        """Called once the reader is done: let a pending close complete, then stop writing."""
        if self._closing is None:
            self._task.cancel()
        done, _ = await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT)
        if not done:
            self._task.cancel()
        self._resolve_close()

    def _resolve_close(self) -> None:
        if self._closing is not None and not self._closing.done.done():
            self._closing.done.set_result(None)

    async def _next(self) -> str | CloseItem:
        """The next frame to write, or the close."""
        return await self._queue.get()

    async def _run(self) -> None:
        try:
            while True:
                item = await self._next()
                if isinstance(item, CloseItem):
                    if not self.ws.closed:
                        await self.ws.close(code=item.code, message=item.message)
                    return
                if self.ws.closed:
                    return
                await self.ws.send_str(item)
        except (ConnectionError, aiohttp.ClientError) as exc:
            logger.debug("%s %s: write failed: %s", self._what, self.channel_id, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s %s: writer failed", self._what, self.channel_id)
        finally:
            self._resolve_close()
