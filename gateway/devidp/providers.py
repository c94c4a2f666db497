"""External identity providers of a user pool (SAML, OIDC, social) and their users.

The stand-in cannot reach a real SAML or OIDC provider, so each provider is simulated by a
sign-in page of its own (gateway/devidp/federation.py) where its users sign in with the
provider's user id and a password. What Cognito does with the result is faithful: the pool
creates a linked user `<ProviderName>_<user id>` with an `identities` claim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

COGNITO = "COGNITO"  # the pool's own users, as identity_provider= and SupportedIdentityProviders
SOCIAL_TYPES = ("Google", "Facebook", "LoginWithAmazon", "SignInWithApple")
PROVIDER_TYPES = ("SAML", "OIDC", *SOCIAL_TYPES)
_PROVIDER_NAME = re.compile(r"[^_\s/?#%]{1,32}")


def provider_sign_in_path(name: str) -> str:
    """Where the stand-in serves the simulated sign-in page of provider `name`."""
    return f"/simulated-idp/{name}/sign-in"


@dataclass
class ProviderUser:
    """A user of a simulated external identity provider, known by the provider's own id."""

    user_id: str
    password: str
    email: str | None = None
    email_verified: bool = False
    attributes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if not self.user_id:
            problems.append("user_id: must not be empty")
        if not self.password:
            problems.append("password: must not be empty")
        for name in self.attributes:
            if name in {"sub", "email", "email_verified", "cognito:username", "username",
                        "identities"}:
                problems.append(f"attributes.{name}: set through its own field, not attributes")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class IdentityProvider:
    """An external IdP of the pool (SAML, OIDC or social), simulated by a local sign-in page.

    `name` is Cognito's ProviderName: what identity_provider= selects, and the prefix of the
    usernames of its users (`<name>_<user id>`). `identifiers` are the alternative names
    idp_identifier= selects (SAML and OIDC only). `issuer` is the provider's entity id or
    issuer, copied into the `identities` claim.
    """

    name: str
    type: str = "SAML"
    identifiers: list[str] = field(default_factory=list)
    issuer: str | None = None
    users: list[ProviderUser] = field(default_factory=list)

    def __post_init__(self) -> None:
        problems = provider_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def user(self, user_id: str) -> ProviderUser | None:
        """The provider's user with that id (exact match: providers' ids are their own)."""
        return next((u for u in self.users if u.user_id == user_id), None)


def provider_problems(provider: IdentityProvider) -> list[str]:
    """Every rule of Cognito's CreateIdentityProvider the provider breaks."""
    problems = []
    if not _PROVIDER_NAME.fullmatch(provider.name):
        problems.append("name: 1-32 characters, no underscore or whitespace (usernames are "
                        "<name>_<user id>)")
    if provider.name == COGNITO:
        problems.append(f"name: {COGNITO} is the user pool itself, not an external provider")
    if provider.type not in PROVIDER_TYPES:
        problems.append(f"type: unknown {provider.type!r}, expected one of {list(PROVIDER_TYPES)}")
    elif provider.type in SOCIAL_TYPES and provider.name != provider.type:
        problems.append(f"name: a {provider.type} provider must be named {provider.type}")
    if provider.identifiers and provider.type not in {"SAML", "OIDC"}:
        problems.append("identifiers: only SAML and OIDC providers have identifiers")
    seen: set[str] = set()
    for i, user in enumerate(provider.users):
        if user.user_id in seen:
            problems.append(f"users[{i}].user_id: {user.user_id!r} is defined twice")
        seen.add(user.user_id)
    return problems
