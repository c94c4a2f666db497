"""`cognito-gateway sessions list|revoke --sub SUB`: one user's sessions, and ending them all.

The configured store decides how, and the command says which before it acts:

* `redis`: the user's index (gateway/sessions/index.py) names each of their sessions. `list`
  prints them (a short hash of the id, when it started, when it ends; never a token).
  `revoke` deletes every one at once, so each replica's next request with such a cookie finds
  nothing (no replica keeps a session in memory: the Redis store reads it per request), then
  revokes their refresh tokens at the IdP (`/oauth2/revoke`), so no copy can be refreshed.
* `cookie`: sessions live only in the browsers holding them: nothing to list or delete.
  `revoke` finds the user by `sub` (ListUsers) and signs them out at Cognito
  (AdminUserGlobalSignOut) through gateway/aws, with the SDK's credentials. Every replica
  re-checks a session with the IdP at least every `session.revalidate_seconds` by refreshing
  it, which then fails: the user's sessions end everywhere within that window.

Every revoke logs `event="sessions_revoked"` with `sub_hash` (a SHA-256 prefix: the sub itself
is never logged), `count` (sessions ended with Redis; users signed out at Cognito with the
cookie store) and `store`; a revoke that fails logs `sessions_revoke_failed`. The operator's
terminal gets words: which of the two will happen, then what happened.
Exit status: 0 done, 1 failed (why, in words), 2 bad configuration.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, TextIO

from gateway.app import session_store
from gateway.aws import open_cognito_idp
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.cognito.provider import IdentityProvider
from gateway.config import Settings, load_settings
from gateway.errors import ConfigError, ConfigProblem, GatewayError, IdPError, TokenEndpointError
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.sessions.cipher import Cipher
from gateway.sessions.cookies import CookiePolicy
from gateway.sessions.redis_keys import user_hash
from gateway.sessions.redis_store import RedisSessionStore, StoredSession

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "list_sessions", "revoke_sessions", "run"]

log = get_logger(__name__)
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_CONFIG: Final = 2
SUB_HASH_LENGTH: Final = 16
ID_SHOWN: Final = 12  # characters of a session id's hash that list shows


def sub_hash(sub: str) -> str:
    """How logs name a user: a prefix of the hash that tags their index key in Redis."""
    return user_hash(sub)[:SUB_HASH_LENGTH]


def run(action: str, sub: str, config: Path | None, *, out: TextIO, err: TextIO) -> int:
    """The command: load the config as `run` does, then list or revoke; the exit status."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"cognito-gateway: {exc}", file=err)
        return EXIT_CONFIG
    command = list_sessions if action == "list" else revoke_sessions
    return asyncio.run(command(settings, sub, out=out, err=err))


async def list_sessions(settings: Settings, sub: str, *, out: TextIO, err: TextIO,
                        clock: Clock = SYSTEM_CLOCK) -> int:
    """Print the user's live sessions (Redis store only)."""
    if settings.session.store != "redis":
        print("The cookie store keeps each session in the browser that holds it: there is no "
              "list to read. `cognito-gateway sessions revoke --sub` still ends them (a global "
              "sign-out at Cognito).", file=err)
        return EXIT_FAILED
    store = _redis_store(settings, clock)
    try:
        found = await store.sessions_of(sub)
    except GatewayError as exc:
        print(f"cognito-gateway: cannot list the sessions: {_in_words(exc)}", file=err)
        return EXIT_FAILED
    finally:
        await store.close()
    print(f"{len(found)} live session(s) of this user in Redis ({store.topology}):", file=out)
    if found:
        print(f"  {'session':<{ID_SHOWN}}  {'started':<23}  ends", file=out)
    for stored in found:
        print(f"  {_describe(stored)}", file=out)
    return EXIT_OK


async def revoke_sessions(settings: Settings, sub: str, *, out: TextIO, err: TextIO,
                          clock: Clock = SYSTEM_CLOCK) -> int:
    """End every session of the user on every replica (see the module docstring)."""
    if settings.session.store == "redis":
        return await _revoke_in_redis(settings, sub, out=out, err=err, clock=clock)
    return await _revoke_at_cognito(settings, sub, out=out, err=err)


async def _revoke_in_redis(settings: Settings, sub: str, *, out: TextIO, err: TextIO,
                           clock: Clock) -> int:
    store = _redis_store(settings, clock)
    print(f"Store redis ({store.topology}): every session of this user is deleted from Redis "
          "now, so every replica refuses its cookie at its next request; then each session's "
          "refresh token is revoked at the identity provider.", file=out, flush=True)
    try:
        found = await store.sessions_of(sub)
        ended = await store.end_sessions(sub, [stored.digest for stored in found])
    except GatewayError as exc:
        _failed(sub, "redis", exc)
        print(f"cognito-gateway: nothing was revoked: {_in_words(exc)}", file=err)
        return EXIT_FAILED
    finally:
        await store.close()
    tokens = [s.session.refresh_token for s in found if s.session and s.session.refresh_token]
    revoked, problem = await _revoke_refresh_tokens(settings, tokens)
    log.info("sessions_revoked", sub_hash=sub_hash(sub), count=ended, store="redis",
             refresh_tokens_revoked=revoked, refresh_tokens_left=len(tokens) - revoked)
    print(f"Ended {ended} session(s) of this user on every replica; revoked {revoked} of "
          f"{len(tokens)} refresh token(s) at the identity provider.", file=out)
    if problem:
        print(f"cognito-gateway: {len(tokens) - revoked} refresh token(s) could not be revoked "
              f"({problem}). The sessions are over regardless; those tokens stay valid at the "
              "IdP until they expire, or sign the user out at Cognito.", file=err)
        return EXIT_FAILED
    return EXIT_OK


async def _revoke_refresh_tokens(settings: Settings, tokens: list[str]) -> tuple[int, str]:
    """Revoke `tokens` at the IdP's revocation endpoint; how many, and what went wrong."""
    if not tokens:
        return 0, ""
    provider = IdentityProvider(settings, Metrics())
    revoked = 0
    try:
        await provider.load()
        if provider.tokens.revocation_endpoint is None:
            return 0, "the identity provider has no revocation endpoint"
        for token in tokens:
            await provider.tokens.revoke(token)
            revoked += 1
    except GatewayError as exc:
        return revoked, _in_words(exc)
    finally:
        await provider.close()
    return revoked, ""


async def _revoke_at_cognito(settings: Settings, sub: str, *, out: TextIO, err: TextIO) -> int:
    pool_id = settings.cognito.user_pool_id
    if not pool_id:
        problem = ConfigProblem("cognito.user_pool_id", "required by `sessions revoke` with the "
                                "cookie store: the global sign-out names the user pool")
        print(f"cognito-gateway: {ConfigError([problem])}", file=err)
        return EXIT_CONFIG
    window = settings.session.revalidate_seconds
    when = (f"within {window} s (session.revalidate_seconds): each replica re-checks every "
            "session with Cognito that often" if window else
            "only when their tokens expire (session.revalidate_seconds = 0: sessions are not "
            "re-checked before): up to the app client's token validity")
    print(f"Store cookie: sessions live in the browsers and cannot be deleted. The user is "
          f"signed out globally at Cognito (AdminUserGlobalSignOut, user pool {pool_id}); "
          f"their sessions then end on every replica {when}.", file=out, flush=True)
    try:
        async with open_cognito_idp(settings.region,
                                    timeout_seconds=settings.cognito.timeout_seconds) as idp:
            users = await idp.users_with_sub(pool_id, sub)
            for user in users:
                await idp.admin_user_global_sign_out(pool_id, user.username)
    except GatewayError as exc:
        _failed(sub, "cookie", exc)
        print(f"cognito-gateway: the user was not signed out: {_in_words(exc)}", file=err)
        return EXIT_FAILED
    if not users:
        print(f"cognito-gateway: no user of user pool {pool_id} has this sub: nothing was "
              "revoked.", file=err)
        return EXIT_FAILED
    log.info("sessions_revoked", sub_hash=sub_hash(sub), count=len(users), store="cookie")
    names = ", ".join(user.username for user in users)
    print(f"Signed out {names} globally at Cognito: every refresh token of theirs is revoked, "
          f"and their sessions end on every replica {when}.", file=out)
    return EXIT_OK


def _redis_store(settings: Settings, clock: Clock) -> RedisSessionStore:
    """The store exactly as each replica builds it (same keys, same Redis)."""
    s = settings.session
    store = session_store(settings, CookiePolicy(s.cookie_name, s.cookie_secure,
                                                 s.cookie_samesite),
                          Cipher(s.secret, clock=clock), clock)
    assert isinstance(store, RedisSessionStore)
    return store


def _describe(stored: StoredSession) -> str:
    shown = stored.digest[:ID_SHOWN]
    if stored.session is None:
        return f"{shown}  (unreadable: no key of session.secret decrypts it)"
    return f"{shown}  {_utc(stored.session.created_at)}  {_utc(stored.session.expires_at)}"


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _in_words(exc: GatewayError) -> str:
    """What went wrong, for the operator's terminal: the IdP's failures by their reason only
    (discovery and JWKS errors carry URLs); the other errors already name no address."""
    if isinstance(exc, IdPError) and not isinstance(exc, TokenEndpointError):
        return f"the identity provider could not be reached: {exc.reason}"
    return str(exc)


def _failed(sub: str, store: str, exc: GatewayError) -> None:
    log.warning("sessions_revoke_failed", sub_hash=sub_hash(sub), store=store,
                error=type(exc).__name__)
