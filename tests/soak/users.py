"""The soak's users: real sign-ins through the hosted UI, then browsing on a fixed schedule.

Each user is a `ScriptedBrowser` with its own cookie jar, signed in through the gateway, the
stand-in's hosted-UI form and the callback, exactly as a person would. The load is open-loop:
request k of the run is due at `k / rate` seconds after the start and belongs to user
`k mod users`, whatever happened to earlier requests, so a slow gateway cannot slow the load
down (no coordinated omission). Latency is measured from that scheduled time.

A user's tokens are known valid until the `exp` the upstream last reported for them (the
gateway's own statement of its tokens' expiry, in whole seconds, see tests/soak/upstream.py);
a request sent at least VALID_MARGIN before that instant was sent while the user's tokens were
valid. The margin keeps a request that reaches the gateway a moment after the expiry from
counting as one with valid tokens.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from tests.soak.processes import SoakError
from tests.support.browser import Page, ScriptedBrowser

if TYPE_CHECKING:
    import contextlib

    from tests.soak.stack import Credentials, Stack

VALID_MARGIN = 0.2
PAGE_HEADERS = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
API_HEADERS = {"Accept": "application/json", "Sec-Fetch-Mode": "cors",
               "X-Requested-With": "XMLHttpRequest"}
_PAGE_CODE = re.compile(r"Error: <code>([A-Za-z0-9_.:-]{1,64})</code>")
_JSON_CODE = re.compile(r'"error":\s*"([A-Za-z0-9_.:-]{1,64})"')
_QUERY = re.compile(r"\?[^\s),]*")


@dataclass
class SoakUser:
    """One signed-in person: credentials, browser, and what the soak knows of their tokens."""

    index: int
    credentials: Credentials
    browser: ScriptedBrowser
    valid_until: float = 0.0  # wall clock; 0 before sign-in


@dataclass(frozen=True)
class RequestRecord:
    """One request of the load: when it was due, sent and answered, and what came back.

    Times are seconds from the start of traffic (monotonic clock). `status` is 0 when no HTTP
    answer arrived (then `cause` says what the client saw). `tokens_valid` tells whether the
    user's tokens were known valid when the request was sent.
    """

    user: int
    kind: str
    scheduled: float
    sent: float
    finished: float
    status: int
    cause: str
    request_id: str
    tokens_valid: bool

    @property
    def latency(self) -> float:
        """Seconds from the scheduled send time to the answer."""
        return self.finished - self.scheduled

    @property
    def outcome(self) -> str:
        """`<status> <cause>`, e.g. "200 ok", "302 sign_in_redirect", "503 idp_unavailable"."""
        return f"{self.status} {self.cause}"


def error_code(page: Page) -> str:
    """The gateway's error code from a JSON body or an error page, or "-" when there is none."""
    match = _JSON_CODE.search(page.text) or _PAGE_CODE.search(page.text)
    return match.group(1) if match else "-"


def classify(page: Page, username: str, authorize_url: str) -> str:
    """Why the answer is what it is, in one bounded word (see RequestRecord.outcome)."""
    if 200 <= page.status < 300:
        return "ok" if page.headers.get("X-Soak-User") == username else "identity_mismatch"
    if 300 <= page.status < 400:
        location = page.headers.get("Location", "")
        return "sign_in_redirect" if location.startswith(authorize_url) else "redirect"
    return error_code(page)


def client_failure(exc: BaseException) -> str:
    """What the client saw when no HTTP answer arrived."""
    if isinstance(exc, TimeoutError):
        return "client_timeout"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "client_disconnected"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "client_connection_error"
    return "client_error"


def without_queries(message: str) -> str:
    """`message` with every URL query cut off: a callback's query holds the one-time code."""
    return _QUERY.sub("?...", message)


def token_exp(page: Page) -> float | None:
    """The token expiry the upstream reported on a successful answer."""
    value = page.headers.get("X-Soak-Token-Exp", "")
    try:
        return float(value) if value else None
    except ValueError:
        return None


async def open_users(stack: Stack, exits: contextlib.AsyncExitStack, *,
                     request_timeout: float) -> list[SoakUser]:
    """One user per credential of the stack, each with an open browser that `exits` closes."""
    return [SoakUser(i, credentials,
                     await exits.enter_async_context(ScriptedBrowser(timeout=request_timeout)))
            for i, credentials in enumerate(stack.users)]


async def sign_in_all(stack: Stack, users: list[SoakUser], *, concurrency: int,
                      spread: float) -> None:
    """Sign every user in through the hosted UI, at most `concurrency` at a time, the starts
    spread evenly over `spread` seconds (so their tokens expire, and refresh, evenly spread).

    Raises SoakError naming how many failed, and how the first one failed, unless all succeed.
    """
    gate = asyncio.Semaphore(concurrency)
    start = time.monotonic()

    async def sign_in(user: SoakUser) -> str | None:
        await asyncio.sleep(max(0.0, start + user.index * spread / len(users) - time.monotonic()))
        async with gate:
            try:
                page = await user.browser.sign_in(f"{stack.gateway_url}/app/home",
                                                  user.credentials.username,
                                                  user.credentials.password)
            except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
                return without_queries(f"{type(exc).__name__}: {exc}")
            if classify(page, user.credentials.username, stack.authorize_url) != "ok":
                return without_queries(f"ended on {page.status} {error_code(page)} at {page.url}")
            user.valid_until = token_exp(page) or 0.0
            return None

    failures = [f for f in await asyncio.gather(*(sign_in(u) for u in users)) if f]
    if failures:
        raise SoakError(f"{len(failures)} of {len(users)} sign-ins failed; first: {failures[0]}")


@dataclass
class OpenLoad:
    """Requests at a fixed total rate, spread evenly over the users, recorded as they end."""

    stack: Stack
    users: list[SoakUser]
    rate: float
    duration: float
    seed: int
    records: list[RequestRecord] = field(default_factory=list)
    max_send_lag: float = 0.0

    async def run(self, start: float) -> None:
        """Send every request on its schedule from monotonic time `start`; wait for all."""
        rng = random.Random(self.seed)  # noqa: S311 - a reproducible mix
        pending: set[asyncio.Task[None]] = set()
        for k in range(int(self.duration * self.rate)):
            scheduled = k / self.rate
            delay = start + scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            user = self.users[k % len(self.users)]
            kind = "page" if rng.random() < 0.5 else "api"
            task = asyncio.create_task(self._send(user, kind, k, start, scheduled))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)

    async def _send(self, user: SoakUser, kind: str, k: int, start: float,
                    scheduled: float) -> None:
        sent = time.monotonic() - start
        self.max_send_lag = max(self.max_send_lag, sent - scheduled)
        tokens_valid = time.time() < user.valid_until - VALID_MARGIN
        url = f"{self.stack.gateway_url}/app/{kind}/{k % 50}"
        headers = PAGE_HEADERS if kind == "page" else API_HEADERS
        try:
            page = await user.browser.request("GET", url, headers=headers,
                                              follow_redirects=False)
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, cause, request_id = 0, client_failure(exc), "-"
        else:
            status = page.status
            cause = classify(page, user.credentials.username, self.stack.authorize_url)
            request_id = page.headers.get("X-Request-Id", "-")
            exp = token_exp(page) if cause == "ok" else None
            if exp is not None:
                user.valid_until = max(user.valid_until, exp)
        self.records.append(RequestRecord(user.index, kind, scheduled, sent,
                                          time.monotonic() - start, status, cause, request_id,
                                          tokens_valid))
