"""The demo app's one HTML page: who you are, your groups, your tokens' timing, the raw headers.

Self-contained (inline CSS and a few lines of script, no external assets). Every value that
comes from a request is escaped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gateway.demo.assertion import Assertion

IDENTITY_PREFIXES = ("x-auth-request-", "x-amzn-oidc-", "x-forwarded-", "x-request-id")
_VALUE_CHARS = 400


@dataclass(frozen=True)
class Visitor:
    """What the gateway told the app about the person asking."""

    username: str | None
    email: str | None
    groups: tuple[str, ...]
    assertion: Assertion | None


def render_page(visitor: Visitor, method: str, path: str,
                headers: Sequence[tuple[str, str]], *, refresh_before_seconds: int,
                now: float | None = None) -> str:
    """The page for one request."""
    now = time.time() if now is None else now
    identity = [(k, v) for k, v in headers if k.lower().startswith(IDENTITY_PREFIXES)]
    others = [(k, v) for k, v in headers if not k.lower().startswith(IDENTITY_PREFIXES)]
    return _PAGE.format(
        who=_who(visitor),
        tokens=_tokens(visitor.assertion, refresh_before_seconds, now),
        request=escape(f"{method} {path}"),
        identity=_rows(identity),
        others=_rows(others),
    )


def _who(visitor: Visitor) -> str:
    if visitor.username is None:
        return ('<h1>Hello, <span id="user">nobody</span></h1><p class="muted">No identity '
                "headers: this path is public, or the request did not come through the "
                "gateway.</p>")
    claims = visitor.assertion.claims if visitor.assertion else {}
    name = claims.get("name") if isinstance(claims.get("name"), str) else None
    display = name or visitor.username
    email = ""
    if visitor.email:
        email = f'<div id="email">{escape(visitor.email)}</div>'
    groups = "".join(f'<li class="pill">{escape(g)}</li>' for g in visitor.groups)
    groups_html = (f'<ul id="groups" class="pills">{groups}</ul>' if groups
                   else '<p id="groups" class="muted">in no group</p>')
    return f"""<div class="who"><div class="avatar" aria-hidden="true">{
        escape(display[:1].upper())}</div><div>
<h1>Hello, <span id="name">{escape(display)}</span></h1>
<div class="muted">signed in as <strong id="user">{escape(visitor.username)}</strong></div>
{email}</div></div>
<h2>Groups</h2>{groups_html}"""


def _tokens(assertion: Assertion | None, refresh_before: int, now: float) -> str:
    if assertion is None:
        return ""
    badge = ('<span id="verification" class="badge ok">verified</span>' if assertion.verified
             else '<span id="verification" class="badge bad">not verified</span>')
    exp = assertion.claims.get("exp")
    if not isinstance(exp, int):
        timing = '<p class="muted">The assertion carries no expiry.</p>'
    else:
        refresh = exp - refresh_before
        timing = (
            f'<p>Tokens valid until <time id="token-expiry" datetime="{_iso(exp)}">'
            f"{_clock(exp)}</time> ({_span(exp - now)}).</p>"
            f'<p>Next refresh: <time id="refresh" datetime="{_iso(refresh)}">{_clock(refresh)}'
            f'</time> (<span class="countdown" data-at="{refresh}">{_span(refresh - now)}'
            "</span>), by the gateway, on your first request from then on; you will not "
            "notice it.</p>")
    return f"""<h2>Session</h2>{timing}
<p>{badge} <code>x-amzn-oidc-data</code>, read like an app behind an AWS ALB reads it:
<span class="muted">{escape(assertion.detail)}</span></p>"""


def _rows(headers: Sequence[tuple[str, str]]) -> str:
    return "".join(
        f"<tr><th>{escape(k)}</th><td><code>{escape(_shorten(v))}</code></td></tr>"
        for k, v in headers)


def _shorten(value: str) -> str:
    return value if len(value) <= _VALUE_CHARS else value[:_VALUE_CHARS] + "..."


def _iso(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _clock(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S UTC")


def _span(seconds: float) -> str:
    if seconds <= 0:
        return "now"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"in {hours} h {minutes} min"
    return f"in {minutes} min {secs} s" if minutes else f"in {secs} s"


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo app</title>
<style>
body{{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:#f4f5f7;color:#1f2933}}
header{{background:#1f2933;color:#fff;padding:.7rem 1.5rem;display:flex;align-items:center;
justify-content:space-between}}
header .brand{{font-weight:600}} header .brand span{{color:#9aa5b1;font-weight:400}}
main{{max-width:58rem;margin:1.5rem auto;padding:0 1rem}}
.card{{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.1);
padding:1.2rem 1.5rem;margin-bottom:1.2rem}}
h1{{font-size:1.5rem;margin:0}} h2{{font-size:1rem;margin:1.2rem 0 .4rem;color:#52606d}}
.card>h2:first-child{{margin-top:0}}
.who{{display:flex;gap:1rem;align-items:center}}
.avatar{{width:3.2rem;height:3.2rem;border-radius:50%;background:#2f80ed;color:#fff;
display:flex;align-items:center;justify-content:center;font-size:1.5rem;font-weight:600}}
.muted{{color:#7b8794}} .pills{{list-style:none;padding:0;margin:0;display:flex;gap:.4rem;
flex-wrap:wrap}} .pill{{background:#e6f0fd;color:#1d5bbf;border-radius:999px;
padding:.1rem .7rem;font-size:.9rem}}
.badge{{border-radius:4px;padding:.05rem .45rem;font-size:.8rem;font-weight:600;color:#fff}}
.ok{{background:#2e7d32}} .bad{{background:#c62828}}
button{{background:#fff;color:#1f2933;border:0;border-radius:6px;padding:.35rem .9rem;
font:inherit;cursor:pointer}} button:hover{{background:#e4e7eb}}
table{{border-collapse:collapse;width:100%;font-size:.85rem}}
th{{text-align:left;padding:.25rem 1rem .25rem 0;vertical-align:top;white-space:nowrap;
color:#52606d;font-weight:500}} td{{padding:.25rem 0}}
tr+tr{{border-top:1px solid #eef0f2}} code{{word-break:break-all}}
</style></head><body>
<header><div class="brand">Demo app <span>behind cognito-gateway</span></div>
<form method="post" action="/oauth2/sign_out"><button type="submit">Sign out</button></form>
</header>
<main>
<section class="card">{who}{tokens}</section>
<section class="card"><h2>Identity headers the gateway sent</h2>
<p class="muted">A client cannot forge these: the gateway removes every incoming copy.</p>
<table id="identity">{identity}</table>
<h2>Every other header of <code>{request}</code></h2>
<table id="headers">{others}</table></section>
</main>
<script>
for (const el of document.querySelectorAll(".countdown")) {{
  const tick = () => {{
    const s = Math.max(0, Math.round(el.dataset.at - Date.now() / 1000));
    const m = Math.floor(s / 60);
    el.textContent = s === 0 ? "now" : m >= 60 ? `in ${{Math.floor(m / 60)}} h ${{m % 60}} min`
      : m ? `in ${{m}} min ${{s % 60}} s` : `in ${{s}} s`;
  }};
  tick(); setInterval(tick, 1000);
}}
for (const el of document.querySelectorAll("time")) {{
  el.title = new Date(el.getAttribute("datetime")).toLocaleString();
}}
</script>
</body></html>
"""
