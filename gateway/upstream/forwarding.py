"""Which headers cross the proxy, in each direction.

Inbound (client -> upstream): hop-by-hop headers (RFC 9110 7.6.1, plus every header the
Connection header names, plus Expect) are dropped; so is every header of the identity and
forwarding families, whatever its case or `_`/`-` spelling, because only the gateway may set
them, and every URL- or method-override header (X-Original-URL, X-Rewrite-URL,
X-HTTP-Method-Override, ...), because frameworks route on them and the gateway decided on the
request line; the gateway's own cookies are withheld. X-Forwarded-For/Proto/Host are rebuilt:
the incoming values are believed only from `trusted_proxies`; otherwise Proto and Host are
`server.public_url`'s, never the client's Host header.
Outbound (upstream -> client): hop-by-hop headers are dropped, and so is any Set-Cookie for a
cookie named like the gateway's own: the upstream can neither replace a user's session (session
fixation) nor delete it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "proxy-authenticate", "proxy-authorization", "expect",
})
_CLIENT_FORBIDDEN_PREFIXES = ("x-auth-request-", "x-amzn-oidc-", "x-forwarded-")
_CLIENT_FORBIDDEN = frozenset({
    "forwarded", "x-real-ip", "x-forwarded-user", "x-forwarded-email", "x-forwarded-groups",
    "x-forwarded-preferred-username", "x-forwarded-access-token", "x-request-id",
    # URL and method overrides: the gateway decided on the request line, nothing else.
    "x-original-url", "x-rewrite-url", "x-original-uri", "x-original-method",
    "x-original-host", "x-host", "x-envoy-original-path", "x-http-method-override",
    "x-http-method", "x-method-override",
})


def normalise(name: str) -> str:
    return name.lower().replace("_", "-")


def client_may_send(name: str) -> bool:
    """False for identity/forwarding headers that only the gateway may set upstream."""
    n = normalise(name)
    return n not in _CLIENT_FORBIDDEN and not n.startswith(_CLIENT_FORBIDDEN_PREFIXES)


def _connection_tokens(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    return {token.strip().lower() for value in headers.getall("Connection", [])
            for token in value.split(",") if token.strip()}


class TrustedProxies:
    """The networks whose forwarding headers are believed."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str) or not address or not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._networks)


def upstream_request_headers(
    incoming: CIMultiDictProxy[str], *, peer: str | None, scheme: str, host: str,
    trusted: TrustedProxies, own_cookie: Callable[[str], bool], request_id: str,
    identity: dict[str, str],
) -> CIMultiDict[str]:
    """The headers to send upstream for a client request.

    `scheme` and `host` are the public URL's, used unless a trusted proxy says otherwise.
    """
    dropped = HOP_BY_HOP | {"host"} | _connection_tokens(incoming)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        if name.lower() in dropped or not client_may_send(name):
            continue
        kept = _without_own_cookies(value, own_cookie) if name.lower() == "cookie" else value
        if kept:
            out.add(name, kept)
    forwarded_for = peer or ""
    if peer in trusted:
        chain = ", ".join(incoming.getall("X-Forwarded-For", []))
        forwarded_for = f"{chain}, {peer}" if chain else forwarded_for
        scheme = incoming.get("X-Forwarded-Proto", scheme).split(",")[0].strip() or scheme
        host = incoming.get("X-Forwarded-Host", host).split(",")[0].strip() or host
    if forwarded_for:
        out["X-Forwarded-For"] = forwarded_for
    out["X-Forwarded-Proto"] = scheme
    out["X-Forwarded-Host"] = host
    out["X-Request-Id"] = request_id
    out.update(identity)
    return out


def _without_own_cookies(header: str, own_cookie: Callable[[str], bool]) -> str:
    kept = []
    for pair in header.split(";"):
        name = pair.split("=", 1)[0].strip()
        if name and not own_cookie(name):
            kept.append(pair.strip())
    return "; ".join(kept)


def client_response_headers(upstream: CIMultiDictProxy[str],
                            own_cookie: Callable[[str], bool]) -> CIMultiDict[str]:
    """The upstream's response headers minus hop-by-hop ones and the gateway's cookies."""
    dropped = HOP_BY_HOP | _connection_tokens(upstream)
    return CIMultiDict(
        (k, v) for k, v in upstream.items() if k.lower() not in dropped
        and not (k.lower() == "set-cookie" and own_cookie(v.partition("=")[0].strip())))


