"""A local stand-in for an Amazon Cognito user pool, served over real HTTP.

It reproduces the hosted UI (/login, /logout, /error), the OAuth 2.0 endpoints
(/oauth2/authorize, /oauth2/token, /oauth2/userInfo, /oauth2/revoke), the issuer's discovery
document and JWKS, with Cognito's token shapes and error responses, the user pools API actions
the gateway calls (POST /: ListUsers, AdminUserGlobalSignOut), plus test hooks under /_admin/.
It shares no code with the rest of the gateway on purpose: a bug in a shared helper would hide
on both sides.
"""

from __future__ import annotations

from gateway.devidp.model import AppClient, User, UserPool, demo_pool
from gateway.devidp.poolfile import load_pool
from gateway.devidp.server import DevIdp

__all__ = ["AppClient", "DevIdp", "User", "UserPool", "demo_pool", "load_pool"]
