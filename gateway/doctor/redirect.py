"""The redirect_uri's shape, checked without the network, and its near-miss variants.

Cognito compares redirect_uri as a string: scheme, host, port, path, case and trailing slash
must equal a registered callback URL. It accepts http only for `localhost`. The gateway's
redirect_uri is always `server.public_url` (without a trailing slash) + `/oauth2/callback`.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit, urlunsplit

from gateway.doctor.report import Finding

if TYPE_CHECKING:
    from gateway.config import Settings

CHECK = "redirect_uri"
CALLBACK_PATH = "/oauth2/callback"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redirect_uri_finding(settings: Settings, *, local_idp: bool) -> Finding:
    """PASS, WARN or FAIL for the redirect_uri derived from server.public_url.

    `local_idp` (the IdP itself is served over plain http, i.e. a local stand-in) lets http on
    a loopback address pass; real Cognito accepts http only for `localhost`.
    """
    public_url = settings.server.public_url
    redirect_uri = settings.redirect_uri
    parts = urlsplit(public_url)
    host = parts.hostname or ""
    register = f"Register exactly {redirect_uri} as a callback URL on the app client."
    if parts.scheme == "http" and host != "localhost":
        if not _is_loopback_ip(host):
            return Finding.fail(CHECK, f"{redirect_uri} uses http: Cognito accepts http "
                                "callback URLs only for localhost, and the session cookie "
                                "needs https.",
                                "Serve the gateway over https and set server.public_url to "
                                "its https:// URL (TLS may end at a load balancer).")
        if not local_idp:
            return Finding.warn(CHECK, f"{redirect_uri} uses http on {host}: Cognito accepts "
                                "http callback URLs only for localhost.",
                                f"Use http://localhost:{parts.port or 80} as server.public_url "
                                "for local testing, or https.")
    netloc = parts.netloc
    if netloc != netloc.lower() or parts.scheme != parts.scheme.lower():
        return Finding.warn(CHECK, f"{redirect_uri} has upper-case letters in its scheme or "
                            "host: browsers and proxies lower-case them, but Cognito compares "
                            "the callback URL exactly.",
                            "Write server.public_url in lower case and register the "
                            "lower-case callback URL.")
    if parts.port is not None and parts.port == _DEFAULT_PORTS.get(parts.scheme):
        return Finding.warn(CHECK, f"{redirect_uri} names the default port {parts.port} "
                            "explicitly; the registered callback URL must then name it too.",
                            f"Drop :{parts.port} from server.public_url and register the "
                            "callback URL without it.")
    detail = f"{redirect_uri} (server.public_url + {CALLBACK_PATH})"
    if public_url.endswith("/"):
        detail += "; the trailing slash of server.public_url is dropped"
    return Finding.ok(CHECK, f"{detail}. {register}")


def near_misses(redirect_uri: str) -> list[tuple[str, str]]:
    """Callback URLs people register by mistake instead of `redirect_uri`, with how they differ."""
    parts = urlsplit(redirect_uri)
    variants = [(redirect_uri.rstrip("/") + "/", "with a trailing slash")]
    swapped = {"http": "https", "https": "http"}.get(parts.scheme)
    if swapped:
        variants.append((urlunsplit(parts._replace(scheme=swapped)),
                         f"with {swapped}:// instead of {parts.scheme}://"))
    aliases = {"localhost": "127.0.0.1", "127.0.0.1": "localhost"}
    host = parts.hostname or ""
    if host in aliases:
        netloc = aliases[host] + (f":{parts.port}" if parts.port else "")
        variants.append((urlunsplit(parts._replace(netloc=netloc)),
                         f"with {aliases[host]} instead of {host}"))
    return [(url, how) for url, how in variants if url != redirect_uri]


def _effective_port(scheme: str, port: int | None) -> int | None:
    return port if port is not None else _DEFAULT_PORTS.get(scheme.lower())


def _port_difference(e: SplitResult, r: SplitResult) -> list[str]:
    """How the registered port differs; ValueError when either port is not a number."""
    e_port, r_port = e.port, r.port
    if e_port is None and r_port is None:
        return []  # each scheme's default port
    if _effective_port(e.scheme, e_port) != _effective_port(r.scheme, r_port):
        return [f"port {_effective_port(r.scheme, r_port)} instead of "
                f"{_effective_port(e.scheme, e_port)}"]
    if e_port != r_port:
        return [f"the default port {r_port} written out" if r_port else
                "without the port number"]
    return []


def _path_difference(expected: str, registered: str, *, same_path: bool) -> list[str]:
    if not same_path:
        return [f"path {registered or '/'} instead of {expected}"]
    if expected.rstrip("/") == registered.rstrip("/") and expected != registered:
        return ["with a trailing slash" if registered.endswith("/") else
                "without the trailing slash"]
    return []


def difference(expected: str, registered: str) -> str | None:
    """How a registered URL differs from `expected`, when it is a near miss (same host or same
    path, give or take case and a trailing slash); None when it is equal or unrelated."""
    if registered == expected:
        return None
    e, r = urlsplit(expected), urlsplit(registered)
    e_host, r_host = e.hostname or "", r.hostname or ""
    same_host = e_host == r_host
    same_path = e.path.rstrip("/").lower() == r.path.rstrip("/").lower()
    if not (same_host or same_path):
        return None
    how = []
    if e.scheme.lower() != r.scheme.lower():
        how.append(f"{r.scheme}:// instead of {e.scheme}://")
    if not same_host:
        how.append(f"host {r_host} instead of {e_host}")
    try:
        how.extend(_port_difference(e, r))
    except ValueError:  # urlsplit's port property on a port that is not a number
        return "an invalid port"
    how.extend(_path_difference(e.path, r.path, same_path=same_path))
    if (e.scheme + e.netloc + e.path).lower() == (r.scheme + r.netloc + r.path).lower() and (
            e.scheme + e.netloc + e.path) != (r.scheme + r.netloc + r.path):
        how.append("different letter case (Cognito compares exactly)")
    if (r.query, r.fragment) != (e.query, e.fragment):
        how.append("with a query or fragment")
    return ", ".join(how) or "a different spelling"
