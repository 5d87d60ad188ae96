"""A pooled HTTP/1.1 client for plain-``http://`` upstreams: an asyncio ``Protocol`` whose
responses httptools parses, at about a quarter of aiohttp's CPU per call (bench/RESULTS.md,
"Upstream HTTP client"). aiohttp stays for ``https://`` and anything unusual.

    pool = ConnectionPool("127.0.0.1", 8000, name="vllm", timeouts=Timeouts())
    head = pool.request_head("POST", "/v1/chat/completions", {"content-type": "application/json"})
    status, headers, body = await pool.fetch(head, payload)        # the whole body
    response = await pool.open(head, payload)                      # body chunks as they arrive
    try:
        async for chunk in response:
            ...
    finally:
        response.close(reuse=True)

What it does, and why:

* Keep-alive connections, at most ``max_connections`` per pool; a call at the limit waits
  for a free one. Waiting and connecting together are bounded by ``timeouts.connect``
  (aiohttp's meaning of it). A connection goes back to the pool only when its response was
  read to the end and keep-alive holds; anything else, a cancelled call included, closes it.
* One timer per call: a single ``loop.call_at`` handle for the nearest of the phase deadline
  (``first_byte`` from the send until the status line, or for streams until the first body
  byte; then ``read``, the longest silence between body chunks) and ``total``. Body chunks
  only note the time; the handle re-arms itself when it wakes early, so a fast call costs
  at most one ``call_at`` and one ``cancel``, and a call on a warm pooled connection none:
  the timer outlives the call and the next call, whose deadlines are later, takes it over.
* Streams pause reading once more than ``HIGH_WATER`` bytes wait for a slow consumer, and
  resume when it takes them; ``read`` does not run while paused.
* Stale connections: a pooled connection the server closed while idle is dropped when its
  close arrives. If the close races the request (the connection was reused, and it closed
  or reset before any response byte), the request is sent once more on a new connection.
  For a POST this is what browsers and aiohttp do: a server that closes an idle keep-alive
  connection has not processed a request on it. The price is that a server that crashes
  on every request sees it twice.

* Bounded answers: a response head of at most ``MAX_HEAD_BYTES`` (64 KiB) and
  ``MAX_HEADERS`` (100), after at most ``MAX_INFORMATIONAL`` (8) 1xx heads, all within
  ``first_byte``; a body of at most ``max_response_bytes`` (a larger ``content-length`` fails
  on the head; an error answering a stream is read whole, the same way); no
  ``content-encoding`` but identity. The checks run in httptools' callbacks, per header of a
  few framing names and per body chunk, never per byte. Bytes after the end of a response
  (a second answer nobody asked for) close the connection: the next call never parses them.
  Each breach is an :class:`UpstreamProtocolError`, and the connection is closed.

Errors are crossroads' own, raised here where the socket is, as aiohttp's are translated
in :mod:`crossroads.dispatch.errors`: refused or reset before an answer is
:class:`UpstreamConnectError`; closed before the end of the response, or an unparsable one,
:class:`UpstreamProtocolError`; a deadline, :class:`UpstreamTimeoutError`.
"""

from crossroads.dispatch.rawhttp.connection import Headers
from crossroads.dispatch.rawhttp.pool import ConnectionPool, StreamResponse

__all__ = ["ConnectionPool", "Headers", "StreamResponse"]
