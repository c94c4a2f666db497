"""Every error the upstream client raises on purpose, as one tree.

```
UpstreamClientError              base: catch this to catch everything below
├── LocalProtocolError           the request cannot be sent as given (the caller's bug, not
│                                the upstream's: a framing header, CR/LF in a header, a body
│                                that is longer or shorter than its declared length)
└── TransportError               the upstream or the way to it failed        -> 502 / 504
    ├── TimedOut                                                              -> 504
    │   ├── ConnectTimeout       TCP (and TLS) connect did not finish in time
    │   ├── PoolTimeout          no connection slot freed in time (only with max_connections)
    │   ├── ReadTimeout          no byte arrived for read_timeout while one was awaited
    │   └── WriteTimeout         the upstream took no request bytes for write_timeout
    ├── ConnectError             refused, unreachable, name not resolved, TLS failed -> 502
    ├── ConnectionClosed         reset, or EOF before the response was complete     -> 502
    └── RemoteProtocolError      the upstream's bytes are not a valid HTTP/1.1 response, or its
                                 head is over the configured limits               -> 502
```

Low-level failures (OSError, ssl.SSLError, httptools' parser errors) are translated where they
happen and chained (`raise ... from exc`); no other exception type leaves the client, except
the caller's own: an exception raised by a request-body iterable propagates unchanged, and
so does cancellation.
"""

from __future__ import annotations


class UpstreamClientError(Exception):
    """Base of every error the upstream client raises on purpose."""


class LocalProtocolError(UpstreamClientError):
    """The request cannot be sent as given; nothing was wrong with the upstream."""


class TransportError(UpstreamClientError):
    """The upstream, or the network path to it, failed."""


class TimedOut(TransportError):
    """A time limit ran out while waiting for the upstream."""


class ConnectTimeout(TimedOut):
    """Opening the connection (TCP, then TLS for https) took longer than connect_timeout."""


class PoolTimeout(TimedOut):
    """Every connection slot stayed busy for connect_timeout (only with max_connections)."""


class ReadTimeout(TimedOut):
    """No byte of the response arrived for read_timeout while the client was waiting for one."""


class WriteTimeout(TimedOut):
    """The upstream accepted no request bytes for write_timeout while more were waiting."""


class ConnectError(TransportError):
    """The connection could not be opened: refused, unreachable, unresolvable, TLS failure."""


class ConnectionClosed(TransportError):
    """The connection was reset or closed before the response was complete."""


class RemoteProtocolError(TransportError):
    """The upstream sent bytes that are not an acceptable HTTP/1.1 response."""
