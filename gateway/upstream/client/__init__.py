"""An HTTP/1.1 client for the proxy's hot path: one upstream origin, a keep-alive pool.

```python
client = UpstreamClient("http://127.0.0.1:8080", connect_timeout=10, read_timeout=60)
async with await client.request("GET", "/a%2Fb?x=1", [("Host", "app"), ...]) as response:
    response.status, response.reason, response.headers    # headers: [(name, value), ...]
    async for chunk in response:                          # or: await response.read()
        ...
await client.aclose()
```

Each connection is an asyncio.Protocol whose bytes go straight into httptools (llhttp); the
pool lends connections to one exchange (request + response) at a time.

The life of a connection:

```
             connect (ConnectTimeout / ConnectError)
  CONNECTING ─────────────────────────────────────► ACTIVE: request out, response in
                                                       │   body read to its end, response
                                                       │   complete, keep-alive on both sides
       error, timeout, Connection: close, body  ◄──────┤
       read until close, aclose() or cancel            ▼
       before the end                               IDLE in the pool ──► lent again (newest
                 │                                     │                 first) if still open
                 ▼                                     │ keepalive_timeout (default 4 s), EOF
               CLOSED ◄────────────────────────────────┘ or bytes from the upstream, over max_idle
```

An ACTIVE connection goes back to IDLE only when its response was complete, llhttp judged it
keep-alive (asked in on_message_complete: later it always answers no), the consumer took every
byte, and nothing else arrived; otherwise it is closed. A request that meets a reused connection
already closed by the upstream (before any response byte) is sent again once on a new one, when
it is idempotent and its body is replayable (none or bytes).

Memory is bounded both ways: the response body waits in a small buffer and the socket is not
read while the consumer is behind; a streamed request body waits for the transport to drain.

Errors (all subclasses of UpstreamClientError; the tree is in `_exceptions.py`):
TimedOut (ConnectTimeout, PoolTimeout, ReadTimeout, WriteTimeout) is the upstream being too
slow: 504. ConnectError, ConnectionClosed and RemoteProtocolError are the upstream failing:
502. LocalProtocolError is a request the caller should not have built. All of them are
TransportError except LocalProtocolError.

Not handled here: 101 Switching Protocols (WebSockets stay on aiohttp), HTTP/2, proxies,
redirects, cookies, decompression (bodies pass through untouched).
"""

from __future__ import annotations

from gateway.upstream.client._client import RequestBody, UpstreamClient
from gateway.upstream.client._exceptions import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    LocalProtocolError,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    TimedOut,
    TransportError,
    UpstreamClientError,
    WriteTimeout,
)
from gateway.upstream.client._response import UpstreamResponse

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "LocalProtocolError",
    "PoolTimeout",
    "ReadTimeout",
    "RemoteProtocolError",
    "RequestBody",
    "TimedOut",
    "TransportError",
    "UpstreamClient",
    "UpstreamClientError",
    "UpstreamResponse",
    "WriteTimeout",
]
