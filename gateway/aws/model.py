"""Typed views of the Cognito API's answers, built at one boundary from the SDK's dicts.

The SDK returns untyped dicts; `from_api` classmethods are the only code that reads them, and
every value is checked for its type on the way in (a missing or odd value becomes "not set").
The app client's secret is reduced to its SHA-256 digest here and never kept: nothing above this
module can print it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

# UpdateUserPoolClient members that name the client rather than set it.
CLIENT_KEYS = frozenset({"UserPoolId", "ClientId"})


def _str(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) and value else None


def _strs(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key)
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def _int(doc: Mapping[str, Any], key: str) -> int | None:
    value = doc.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _map(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def secret_digest(secret: str) -> bytes:
    """How a client secret is compared: its SHA-256 digest, never the value itself."""
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True)
class TokenValidityUnits:
    """TokenValidityUnits as described; None where the app client does not say."""

    access_token: str | None = None
    id_token: str | None = None
    refresh_token: str | None = None


@dataclass(frozen=True)
class RefreshTokenRotation:
    """RefreshTokenRotation: `enabled` (Feature ENABLED) and its RetryGracePeriodSeconds."""

    enabled: bool
    retry_grace_period_seconds: int


@dataclass(frozen=True)
class AppClientDescription:
    """DescribeUserPoolClient, typed.

    `current_settings` holds every described value that UpdateUserPoolClient accepts (the
    installed SDK's model says which), so an update can carry them all; it never holds
    ClientSecret, which UpdateUserPoolClient does not take.
    """

    user_pool_id: str
    client_id: str
    client_name: str
    secret_sha256: bytes | None = field(repr=False)
    allowed_oauth_flows_user_pool_client: bool
    allowed_oauth_flows: tuple[str, ...]
    allowed_oauth_scopes: tuple[str, ...]
    callback_urls: tuple[str, ...]
    logout_urls: tuple[str, ...]
    supported_identity_providers: tuple[str, ...]
    explicit_auth_flows: tuple[str, ...]
    access_token_validity: int | None
    id_token_validity: int | None
    refresh_token_validity: int | None
    token_validity_units: TokenValidityUnits
    enable_token_revocation: bool
    refresh_token_rotation: RefreshTokenRotation | None
    current_settings: Mapping[str, Any]

    @classmethod
    def from_api(cls, doc: Mapping[str, Any], *, update_members: frozenset[str]
                 ) -> AppClientDescription:
        """From DescribeUserPoolClient's `UserPoolClient`."""
        secret = _str(doc, "ClientSecret")
        units = _map(doc, "TokenValidityUnits")
        rotation = _map(doc, "RefreshTokenRotation")
        revocation = doc.get("EnableTokenRevocation")
        settings = {key: value for key, value in doc.items()
                    if key in update_members and key not in CLIENT_KEYS
                    and key != "ClientSecret" and value is not None}
        return cls(
            user_pool_id=_str(doc, "UserPoolId") or "",
            client_id=_str(doc, "ClientId") or "",
            client_name=_str(doc, "ClientName") or "",
            secret_sha256=secret_digest(secret) if secret else None,
            allowed_oauth_flows_user_pool_client=doc.get("AllowedOAuthFlowsUserPoolClient")
            is True,
            allowed_oauth_flows=_strs(doc, "AllowedOAuthFlows"),
            allowed_oauth_scopes=_strs(doc, "AllowedOAuthScopes"),
            callback_urls=_strs(doc, "CallbackURLs"),
            logout_urls=_strs(doc, "LogoutURLs"),
            supported_identity_providers=_strs(doc, "SupportedIdentityProviders"),
            explicit_auth_flows=_strs(doc, "ExplicitAuthFlows"),
            access_token_validity=_int(doc, "AccessTokenValidity"),
            id_token_validity=_int(doc, "IdTokenValidity"),
            refresh_token_validity=_int(doc, "RefreshTokenValidity"),
            token_validity_units=TokenValidityUnits(
                _str(units, "AccessToken"), _str(units, "IdToken"), _str(units, "RefreshToken")),
            # Cognito documents token revocation as on unless turned off.
            enable_token_revocation=revocation is not False,
            refresh_token_rotation=RefreshTokenRotation(
                _str(rotation, "Feature") == "ENABLED",
                _int(rotation, "RetryGracePeriodSeconds") or 0) if rotation else None,
            current_settings=settings,
        )


@dataclass(frozen=True)
class UserPoolDescription:
    """DescribeUserPool, typed: what the doctor reads of a user pool."""

    user_pool_id: str
    name: str
    arn: str
    domain: str | None            # the prefix of the Cognito domain
    custom_domain: str | None     # a custom domain's host name
    deletion_protection: str | None
    advanced_security_mode: str | None
    tier: str | None

    @classmethod
    def from_api(cls, doc: Mapping[str, Any]) -> UserPoolDescription:
        """From DescribeUserPool's `UserPool`."""
        return cls(
            user_pool_id=_str(doc, "Id") or "",
            name=_str(doc, "Name") or "",
            arn=_str(doc, "Arn") or "",
            domain=_str(doc, "Domain"),
            custom_domain=_str(doc, "CustomDomain"),
            deletion_protection=_str(doc, "DeletionProtection"),
            advanced_security_mode=_str(_map(doc, "UserPoolAddOns"), "AdvancedSecurityMode"),
            tier=_str(doc, "UserPoolTier"),
        )


@dataclass(frozen=True)
class DomainDescription:
    """DescribeUserPoolDomain, typed: a prefix (`myapp`) or custom (`auth.example.com`) domain."""

    domain: str
    user_pool_id: str
    status: str
    custom: bool

    @classmethod
    def from_api(cls, doc: Mapping[str, Any]) -> DomainDescription | None:
        """From DescribeUserPoolDomain's `DomainDescription`; None when it is empty (no domain)."""
        domain = _str(doc, "Domain")
        if domain is None:
            return None
        return cls(
            domain=domain,
            user_pool_id=_str(doc, "UserPoolId") or "",
            status=_str(doc, "Status") or "",
            custom=bool(_map(doc, "CustomDomainConfig")) or "." in domain,
        )

    def url(self, region: str) -> str:
        """The hosted-UI base URL this domain serves."""
        if self.custom:
            return f"https://{self.domain}"
        return f"https://{self.domain}.auth.{region}.amazoncognito.com"


@dataclass(frozen=True)
class ClientSummary:
    """One entry of ListUserPoolClients."""

    client_id: str
    client_name: str

    @classmethod
    def from_api(cls, doc: Mapping[str, Any]) -> ClientSummary:
        """From one of ListUserPoolClients' `UserPoolClients`."""
        return cls(_str(doc, "ClientId") or "", _str(doc, "ClientName") or "")


@dataclass(frozen=True)
class UserSummary:
    """One entry of ListUsers: the user's name, `sub`, whether enabled, and status."""

    username: str
    sub: str | None
    enabled: bool
    status: str | None

    @classmethod
    def from_api(cls, doc: Mapping[str, Any]) -> UserSummary:
        """From one of ListUsers' `Users` (attributes as a list of Name/Value pairs)."""
        attributes = doc.get("Attributes")
        pairs = attributes if isinstance(attributes, list) else []
        sub = next((_str(pair, "Value") for pair in pairs
                    if isinstance(pair, dict) and pair.get("Name") == "sub"), None)
        return cls(_str(doc, "Username") or "", sub, doc.get("Enabled") is not False,
                   _str(doc, "UserStatus"))
