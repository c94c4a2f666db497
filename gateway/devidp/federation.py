"""Federated sign-in: the simulated external provider, and the pool's side of its response.

/oauth2/authorize with identity_provider= or idp_identifier= remembers the request under a
RelayState and sends the browser to `/simulated-idp/<name>/sign-in`, which stands in for the
provider's own page (a real pool would redirect to the SAML or OIDC provider instead). A user
of that provider signs in there; the page then redirects to `/oauth2/idpresponse` with a
one-time code, where the pool does what Cognito does with a provider's response: it links the
provider's user to a pool user named `<ProviderName>_<user id>` (created at the first sign-in,
with the `identities` claim and the automatic group `<pool id>_<ProviderName>`), opens a
hosted-UI session and returns to the app with an authorization code.

Real Cognito receives SAML responses at /saml2/idpresponse (POST) and OIDC and social ones at
/oauth2/idpresponse; the simulation uses the latter for every provider type.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from gateway.devidp.authorize import parse_authorize, sign_in_with_session
from gateway.devidp.model import User, UserPool
from gateway.devidp.providers import IdentityProvider, ProviderUser, provider_sign_in_path
from gateway.devidp.responses import error_page, html_page, redirect
from gateway.devidp.signin_page import provider_page
from gateway.devidp.state import state_of

PROVIDER_BAD_CREDENTIALS = "Incorrect user ID or password."
_EXPIRED = "This sign-in request is unknown or has expired. Start again from the app."


async def provider_sign_in_form(request: web.Request) -> web.Response:
    """GET /simulated-idp/{provider}/sign-in?RelayState=: the provider's sign-in page."""
    provider, relay_state = _pending(request, request.query.get("RelayState", ""))
    if provider is None:
        return html_page(_EXPIRED, status=400)
    return _provider_page(provider, relay_state, error=None)


async def provider_sign_in_submit(request: web.Request) -> web.Response:
    """POST /simulated-idp/{provider}/sign-in: check the provider's credentials, then send
    the browser back to the pool's /oauth2/idpresponse."""
    form = await request.post()
    sent_relay = form.get("RelayState")
    provider, relay_state = _pending(request, sent_relay if isinstance(sent_relay, str) else "")
    if provider is None:
        return html_page(_EXPIRED, status=400)
    user_id, password = form.get("user_id"), form.get("password")
    user = provider.user(user_id) if isinstance(user_id, str) else None
    if (user is None or not isinstance(password, str)
            or not secrets.compare_digest(password.encode(), user.password.encode())):
        return _provider_page(provider, relay_state, error=PROVIDER_BAD_CREDENTIALS)
    st = state_of(request)
    code = st.grants.assert_federated(relay_state, provider.name, user.user_id)
    return redirect(f"{st.base_url}/oauth2/idpresponse?"
                    f"{urlencode({'code': code, 'state': relay_state})}")


async def idp_response(request: web.Request) -> web.Response:
    """GET /oauth2/idpresponse: the provider's answer; sign the linked user in to the app."""
    st = state_of(request)
    taken = st.grants.take_federation(request.query.get("code", ""),
                                      request.query.get("state", ""))
    if taken is None:
        return error_page()
    pending, assertion = taken
    req = parse_authorize(st, dict(parse_qsl(pending.authorize_query)))
    if isinstance(req, web.Response):
        return req  # the client changed meanwhile: the same answer /authorize would give
    provider = st.pool.provider(assertion.provider)
    provider_user = provider.user(assertion.user_id) if provider is not None else None
    if provider is None or provider_user is None:
        return error_page()
    return sign_in_with_session(request, req, linked_user(st.pool, provider, provider_user))


def linked_user(pool: UserPool, provider: IdentityProvider, who: ProviderUser) -> User:
    """The pool user of a provider's user, created at the first sign-in like Cognito does.

    Mapped attributes (email, the provider user's attributes) are refreshed at every sign-in.
    """
    username = f"{provider.name}_{who.user_id}"
    user = pool.user(username)
    if user is None:
        user = User(
            username=username,
            password=secrets.token_urlsafe(32),  # never usable: federated users have none
            groups=[f"{pool.pool_id}_{provider.name}"],
            identities=[{
                "userId": who.user_id,
                "providerName": provider.name,
                "providerType": provider.type,
                "issuer": provider.issuer,
                "primary": "true",
                "dateCreated": str(int(time.time() * 1000)),
            }],
        )
        pool.users.append(user)
    user.email = who.email
    user.email_verified = who.email_verified
    user.attributes = dict(who.attributes)
    return user


def _pending(request: web.Request, relay_state: str) -> tuple[IdentityProvider | None, str]:
    """The provider of the path, when a live pending sign-in for it has that RelayState."""
    st = state_of(request)
    pending = st.grants.federation(relay_state)
    name = request.match_info["provider"]
    if pending is None or pending.provider != name:
        return None, relay_state
    return st.pool.provider(name), relay_state


def _provider_page(provider: IdentityProvider, relay_state: str, *,
                   error: str | None) -> web.Response:
    return html_page(provider_page(provider=provider.name, provider_type=provider.type,
                                   action=provider_sign_in_path(provider.name),
                                   relay_state=relay_state, error=error))
