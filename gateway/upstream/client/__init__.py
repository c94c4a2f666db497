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

The life of a connection (the pool counts every one that is not CLOSED):

```
CONNECTING --connected--------------------------------------------------------> ACTIVE
CONNECTING --ConnectTimeout / ConnectError-------------------------------------> (gone)
ACTIVE -----response complete, kept alive, body read to its end---------------> IDLE
ACTIVE -----error, timeout, Connection: close, a body read until close,
            aclose() or cancellation before the end---------------------------> CLOSED
IDLE -------taken by a request (newest first), still open, nothing received---> ACTIVE
IDLE -------keepalive_timeout (default 4 s), EOF or bytes from the upstream,
            more idle than max_idle_connections, client.aclose()---------------> CLOSED
```

An ACTIVE connection goes back to IDLE only when its response was complete, llhttp judged it
keep-alive (asked in on_message_complete: later it always answers no), the consumer took every
byte, and nothing else arrived; otherwise it is closed. A request that meets a reused connection
already closed by the upstream (before any response byte) is sent again once on a new one, when
it is idempotent and its body is replayable (none or bytes).

Memory is bounded both ways: the response body waits in a small buffer and the socket is not
read while the consumer is behind; a streamed request body waits for the transport to drain.

Errors (details in `_exceptions.py`); a proxy maps them in one place:

```
UpstreamClientError
├── LocalProtocolError      the caller built a request that cannot be sent  -> a bug (500)
└── TransportError          the upstream failed                              -> 502 / 504
    ├── TimedOut            ConnectTimeout, PoolTimeout, ReadTimeout, WriteTimeout -> 504
    ├── ConnectError        refused, unreachable, unresolvable, TLS               -> 502
    ├── ConnectionClosed    reset or closed before the response was complete      -> 502
    └── RemoteProtocolError not HTTP/1.1, or a head over the limits               -> 502
```

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
