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
from typing import TYPE_CHECKING

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.sessions.cookies import pair_spans

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "proxy-authenticate", "proxy-authorization", "expect",
})
# Host is the upstream's; the body's framing is the upstream client's (from the body it sends).
_NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length"}
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
    """A header name as the gateway compares it: lower case, `_` read as `-`."""
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
    identity: Mapping[str, str],
) -> CIMultiDict[str]:
    """The headers to send upstream for a client request.

    `scheme` and `host` are the public URL's, used unless a trusted proxy says otherwise.
    """
    return CIMultiDict(upstream_request_header_pairs(
        incoming, peer=peer, scheme=scheme, host=host, trusted=trusted, own_cookie=own_cookie,
        request_id=request_id, identity=identity))


def upstream_request_header_pairs(
    incoming: CIMultiDictProxy[str], *, peer: str | None, scheme: str, host: str,
    trusted: TrustedProxies, own_cookie: Callable[[str], bool], request_id: str,
    identity: Mapping[str, str],
) -> list[tuple[str, str]]:
    """`upstream_request_headers` as (name, value) pairs, in order: what the proxy's own
    client sends, without a multidict built and read back per request."""
    named = _connection_tokens(incoming) if "Connection" in incoming else None
    out: list[tuple[str, str]] = []
    add = out.append
    for name, value in incoming.items():
        verdict = _VERDICTS.get(name)
        if verdict is None:
            verdict = _verdict(name)
        if verdict == _DROP or (named and name.lower() in named):
            continue
        if verdict == _COOKIE:
            kept = _without_own_cookies(value, own_cookie)
            if kept:
                add((name, kept))
        else:
            add((name, value))
    forwarded_for = peer or ""
    if peer in trusted:
        chain = ", ".join(incoming.getall("X-Forwarded-For", []))
        forwarded_for = f"{chain}, {peer}" if chain else forwarded_for
        scheme = incoming.get("X-Forwarded-Proto", scheme).split(",")[0].strip() or scheme
        host = incoming.get("X-Forwarded-Host", host).split(",")[0].strip() or host
    # None of these came through from the client (the loop dropped them): add, not replace.
    if forwarded_for:
        add(("X-Forwarded-For", forwarded_for))
    add(("X-Forwarded-Proto", scheme))
    add(("X-Forwarded-Host", host))
    add(("X-Request-Id", request_id))
    out.extend(identity.items())
    return out


# What becomes of a client's header, by its name as sent (a name's verdict never changes, so
# the first MAX_VERDICTS distinct names are remembered: client-chosen, hence bounded).
_KEEP, _DROP, _COOKIE = "keep", "drop", "cookie"
_VERDICTS: dict[str, str] = {}
MAX_VERDICTS = 1024


def _verdict(name: str) -> str:
    lowered = name.lower()
    if lowered in _NOT_FORWARDED or not client_may_send(lowered):
        verdict = _DROP
    else:
        verdict = _COOKIE if lowered == "cookie" else _KEEP
    return _remembered(_VERDICTS, name, verdict)


def _without_own_cookies(header: str, own_cookie: Callable[[str], bool]) -> str:
    kept = []
    for start, equals, end in pair_spans(header):
        name = header[start:end if equals < 0 else equals].strip()
        if name and not own_cookie(name):
            kept.append(header[start:end].strip())
    return "; ".join(kept)


def client_response_headers(upstream: Iterable[tuple[str, str]],
                            own_cookie: Callable[[str], bool]) -> list[tuple[str, str]]:
    """The upstream's response headers (name, value pairs as received) minus hop-by-hop ones,
    those the Connection header names, and Set-Cookie for the gateway's cookies."""
    out: list[tuple[str, str]] = []
    append = out.append
    named: set[str] = set()
    for name, value in upstream:
        verdict = _RESPONSE_VERDICTS.get(name)
        if verdict is None:
            verdict = _response_verdict(name)
        if verdict is _KEEP:
            append((name, value))
        elif verdict is _COOKIE:
            if not own_cookie(value.partition("=")[0].strip()):
                append((name, value))
        elif verdict is _CONNECTION:
            named.update(token.strip().lower() for token in value.split(","))
    # `Connection: keep-alive` (nginx's, on every response) names a header dropped anyway.
    named -= HOP_BY_HOP
    if named:
        out = [(name, value) for name, value in out if name.lower() not in named]
    return out


# What becomes of an upstream's response header, by its name as received (bounded as above:
# the upstream's names are few, but nothing says so).
_CONNECTION = "connection"
_RESPONSE_VERDICTS: dict[str, str] = {}


def _response_verdict(name: str) -> str:
    lowered = name.lower()
    if lowered == "connection":
        verdict = _CONNECTION
    elif lowered in HOP_BY_HOP:
        verdict = _DROP
    else:
        verdict = _COOKIE if lowered == "set-cookie" else _KEEP
    return _remembered(_RESPONSE_VERDICTS, name, verdict)


def _remembered(verdicts: dict[str, str], name: str, verdict: str) -> str:
    """`verdict`, remembered for `name` while `verdicts` holds fewer than MAX_VERDICTS."""
    if len(verdicts) < MAX_VERDICTS:
        verdicts[name] = verdict
    return verdict
