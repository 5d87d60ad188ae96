"""Serve an ASGI app under uvicorn on 127.0.0.1 in a background thread (test equipment)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def uvicorn_server(app: Any, http: Any = "httptools", **options: Any) -> Any:
    """A uvicorn server for ``app`` on a socket the caller binds (uvloop + ``http``, a
    uvicorn protocol name or class); ``options`` override uvicorn settings."""
    import uvicorn  # lazy: importing tests.support stays cheap

    settings: dict[str, Any] = {
        "http": http,
        "loop": "none",
        "lifespan": "off",
        "access_log": False,
        "log_level": "warning",
        "timeout_keep_alive": 60,
        "timeout_graceful_shutdown": 2,
    }
    config = uvicorn.Config(app, **{**settings, **options})
    return uvicorn.Server(config)


class BackgroundServer:
    """``app`` on a free (or given) loopback port, in a thread with its own event loop.

    Use as ``with server:`` or ``async with server:``. ``stop()`` then ``start()`` reuses
    the port. Subclasses may override :meth:`before_stop` (runs on the server's loop).
    ``http`` is the HTTP protocol (a uvicorn protocol name or class); ``options`` are other
    uvicorn settings.
    """

    name = "server"

    def __init__(self, app: Any, port: int = 0, http: Any = "httptools", **options: Any) -> None:
        self.app = app
        self.http = http
        self.options = options
        self.host = "127.0.0.1"
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no path)."""
        return f"http://{self.host}:{self.port}"

    def before_start(self) -> None:
        """Called in the caller's thread before serving starts."""

    def before_stop(self) -> None:
        """Called on the server's loop when stopping (e.g. to wake hanging requests)."""

    def start(self, timeout: float = 5.0) -> Any:
        """Bind, serve in a thread, and return once the server accepts connections."""
        if self._thread is not None:
            return self
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self.before_start()
        self._server = uvicorn_server(self.app, self.http, **self.options)
        self._error = None
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"{self.name}-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.name} on port {self.port} not up after {timeout}s: {self._error!r}"
                )
            time.sleep(0.005)
        return self

    def _run(self, sock: socket.socket) -> None:
        self._loop = new_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._server.serve(sockets=[sock]))
        except BaseException as exc:  # reported by start()
            self._error = exc
        finally:
            sock.close()
            self._loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: run :meth:`before_stop`, close connections, join the thread."""
        import contextlib

        thread, server, loop = self._thread, self._server, self._loop
        if thread is None:
            return
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self.before_stop)
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Any:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)
