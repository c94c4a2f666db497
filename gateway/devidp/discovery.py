"""The issuer's OpenID discovery document and JWKS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.devidp.responses import json_response
from gateway.devidp.state import IdpState, state_of

if TYPE_CHECKING:
    from aiohttp import web


def discovery_document(st: IdpState) -> dict[str, object]:
    """Exactly Cognito's field set: endpoints on the hosted-UI domain, jwks_uri on the issuer."""
    domain = st.base_url
    return {
        "authorization_endpoint": f"{domain}/oauth2/authorize",
        "end_session_endpoint": f"{domain}/logout",
        "id_token_signing_alg_values_supported": ["RS256"],
        "issuer": st.issuer,
        "jwks_uri": f"{st.issuer}/.well-known/jwks.json",
        "response_types_supported": ["code", "token"],
        "revocation_endpoint": f"{domain}/oauth2/revoke",
        "scopes_supported": ["openid", "email", "phone", "profile"],
        "subject_types_supported": ["public"],
        "token_endpoint": f"{domain}/oauth2/token",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "userinfo_endpoint": f"{domain}/oauth2/userInfo",
    }


async def openid_configuration(request: web.Request) -> web.Response:
    """GET <issuer>/.well-known/openid-configuration."""
    return json_response(discovery_document(state_of(request)))


async def jwks(request: web.Request) -> web.Response:
    """GET <issuer>/.well-known/jwks.json: the current ID and access token keys."""
    return json_response(state_of(request).keys.jwks())
