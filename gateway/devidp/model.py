"""The user pool the dev IdP serves: users, app clients and resource servers.

Constructing a `User`, `AppClient` or `UserPool` checks the same configuration rules Cognito's
CreateUserPoolClient enforces and raises `ValueError` listing every problem at once, each as
`<field>: <problem>`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from gateway.devidp.providers import COGNITO, IdentityProvider, ProviderUser

FLOWS = ("code", "implicit", "client_credentials")

# Scopes every Cognito user pool knows without a resource server.
STANDARD_SCOPES = ("openid", "email", "phone", "profile", "aws.cognito.signin.user.admin")
MAX_ROTATION_GRACE_SECONDS = 60

_SUB_NAMESPACE = uuid.UUID("6f1d2c3e-8a47-4e9b-9d0c-1b2a3c4d5e6f")



@dataclass
class User:
    """A user pool user who signs in with a username and password."""

    username: str
    password: str
    sub: str | None = None
    email: str | None = None
    email_verified: bool = False
    groups: list[str] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)
    # Set only on users the pool created at a federated sign-in (the ID token's `identities`).
    identities: list[dict[str, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        problems = []
        if not self.username:
            problems.append("username: must not be empty")
        if not self.password:
            problems.append("password: must not be empty")
        for name in self.attributes:
            if name in {"sub", "email", "email_verified", "cognito:username", "username"}:
                problems.append(f"attributes.{name}: set through its own field, not attributes")
        if problems:
            raise ValueError("; ".join(problems))
        if self.sub is None:
            self.sub = str(uuid.uuid5(_SUB_NAMESPACE, self.username))

    @property
    def subject(self) -> str:
        """The user's `sub`: the configured one, or a stable UUID derived from the username."""
        return self.sub or str(uuid.uuid5(_SUB_NAMESPACE, self.username))

    @property
    def federated(self) -> bool:
        """True for a user linked to an external provider (no password sign-in, like Cognito's
        EXTERNAL_PROVIDER status)."""
        return bool(self.identities)


@dataclass
class AppClient:
    """An app client: its secret (None = public), OAuth flows, scopes, URLs and token lifetimes."""

    client_id: str
    client_secret: str | None = None
    allowed_flows: list[str] = field(default_factory=lambda: ["code"])
    allowed_scopes: list[str] = field(default_factory=lambda: ["openid", "email", "profile"])
    callback_urls: list[str] = field(default_factory=list)
    logout_urls: list[str] = field(default_factory=list)
    enabled: bool = True
    access_token_validity_seconds: int = 3600
    id_token_validity_seconds: int = 3600
    refresh_token_validity_seconds: int = 30 * 86400
    auth_code_validity_seconds: int = 300
    refresh_token_rotation: bool = False
    rotation_grace_seconds: int = 0
    revocation_enabled: bool = True
    client_name: str | None = None  # shown on the hosted UI's sign-in page
    supported_identity_providers: list[str] = field(default_factory=lambda: [COGNITO])

    def __post_init__(self) -> None:
        problems = client_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def is_public(self) -> bool:
        """True when the client has no secret (it authenticates with its client_id alone)."""
        return self.client_secret is None

    @property
    def display_name(self) -> str:
        """The name the hosted UI shows: client_name, else the client id."""
        return self.client_name or self.client_id


def client_problems(client: AppClient) -> list[str]:
    """Every configuration rule the client breaks, as `<field>: <problem>`."""
    problems = []
    if not client.client_id:
        problems.append("client_id: must not be empty")
    if client.client_secret == "":
        problems.append("client_secret: must not be empty (leave it out for a public client)")
    problems += _flow_problems(client)
    if not client.allowed_scopes:
        problems.append("allowed_scopes: must name at least one scope")
    return problems + _lifetime_problems(client) + _hosted_ui_problems(client)


def _flow_problems(client: AppClient) -> list[str]:
    problems = []
    unknown = [f for f in client.allowed_flows if f not in FLOWS]
    if unknown:
        problems.append(f"allowed_flows: unknown {unknown}, expected some of {list(FLOWS)}")
    if not client.allowed_flows:
        problems.append("allowed_flows: must name at least one flow")
    if "client_credentials" in client.allowed_flows:
        if client.client_secret is None:
            problems.append("allowed_flows: client_credentials requires a client_secret")
        if {"code", "implicit"} & set(client.allowed_flows):
            problems.append(
                "allowed_flows: client_credentials cannot be combined with code or implicit"
            )
    if {"code", "implicit"} & set(client.allowed_flows) and not client.callback_urls:
        problems.append("callback_urls: the code and implicit flows need at least one")
    return problems


def _lifetime_problems(client: AppClient) -> list[str]:
    problems = []
    for name in (
        "access_token_validity_seconds",
        "id_token_validity_seconds",
        "refresh_token_validity_seconds",
        "auth_code_validity_seconds",
    ):
        if getattr(client, name) < 1:
            problems.append(f"{name}: must be at least 1")
    if not 0 <= client.rotation_grace_seconds <= MAX_ROTATION_GRACE_SECONDS:
        problems.append(f"rotation_grace_seconds: must be 0-{MAX_ROTATION_GRACE_SECONDS}")
    return problems


def _hosted_ui_problems(client: AppClient) -> list[str]:
    problems = []
    if client.client_name == "":
        problems.append("client_name: must not be empty (leave it out for none)")
    if len(set(client.supported_identity_providers)) != len(client.supported_identity_providers):
        problems.append("supported_identity_providers: names a provider twice")
    return problems


@dataclass
class UserPool:
    """A user pool: its id and region, users, app clients and resource servers."""

    pool_id: str = "local-1_DevPool01"
    region: str = "local-1"
    users: list[User] = field(default_factory=list)
    clients: list[AppClient] = field(default_factory=list)
    resource_servers: dict[str, list[str]] = field(default_factory=dict)
    identity_providers: list[IdentityProvider] = field(default_factory=list)
    # True (ENABLED, Cognito's default): an unknown user gets "Incorrect username or
    # password." like a wrong password; False (LEGACY): "User does not exist."
    prevent_user_existence_errors: bool = True

    def __post_init__(self) -> None:
        problems = pool_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def known_scopes(self) -> frozenset[str]:
        """The standard scopes plus every `<resource server>/<scope>` custom scope."""
        servers = self.resource_servers.items()
        custom = {f"{rs}/{scope}" for rs, scopes in servers for scope in scopes}
        return frozenset(STANDARD_SCOPES) | custom

    def client(self, client_id: str) -> AppClient | None:
        """The app client with that id, or None."""
        return next((c for c in self.clients if c.client_id == client_id), None)

    def user(self, username: str) -> User | None:
        """The user with that username; case-insensitive like a default Cognito pool."""
        wanted = username.casefold()
        return next((u for u in self.users if u.username.casefold() == wanted), None)

    def provider(self, name: str) -> IdentityProvider | None:
        """The external identity provider with that ProviderName (exact, like Cognito)."""
        return next((p for p in self.identity_providers if p.name == name), None)

    def provider_by_identifier(self, identifier: str) -> IdentityProvider | None:
        """The provider one of whose identifiers is `identifier` (case-insensitive)."""
        wanted = identifier.casefold()
        return next((p for p in self.identity_providers
                     if any(i.casefold() == wanted for i in p.identifiers)), None)


def pool_problems(pool: UserPool) -> list[str]:
    """Every rule the pool breaks across its users and clients, as `<field>: <problem>`."""
    problems = []
    if "_" not in pool.pool_id:
        problems.append("pool_id: must look like <region>_<id>")
    seen_users: set[str] = set()
    for i, user in enumerate(pool.users):
        if user.username.casefold() in seen_users:
            problems.append(f"users[{i}].username: {user.username!r} is defined twice")
        seen_users.add(user.username.casefold())
    seen_clients: set[str] = set()
    known = pool.known_scopes
    for i, client in enumerate(pool.clients):
        if client.client_id in seen_clients:
            problems.append(f"clients[{i}].client_id: {client.client_id!r} is defined twice")
        seen_clients.add(client.client_id)
        unknown = [s for s in client.allowed_scopes if s not in known]
        if unknown:
            problems.append(
                f"clients[{i}].allowed_scopes: {unknown} are neither standard scopes nor "
                "defined in resource_servers"
            )
        if "client_credentials" in client.allowed_flows and not any(
            "/" in s for s in client.allowed_scopes
        ):
            problems.append(
                f"clients[{i}].allowed_scopes: client_credentials needs at least one custom scope"
            )
    for rs, scopes in pool.resource_servers.items():
        if not rs or not scopes:
            problems.append(f"resource_servers.{rs}: needs an identifier and at least one scope")
    problems += _federation_problems(pool)
    return problems


def _federation_problems(pool: UserPool) -> list[str]:
    problems = []
    names: set[str] = set()
    identifiers: set[str] = set()
    for i, provider in enumerate(pool.identity_providers):
        if provider.name in names:
            problems.append(f"identity_providers[{i}].name: {provider.name!r} is defined twice")
        names.add(provider.name)
        for identifier in provider.identifiers:
            if identifier.casefold() in identifiers:
                problems.append(f"identity_providers[{i}].identifiers: {identifier!r} is "
                                "already another provider's")
            identifiers.add(identifier.casefold())
    for i, client in enumerate(pool.clients):
        unknown = [n for n in client.supported_identity_providers
                   if n != COGNITO and n not in names]
        if unknown:
            # CreateUserPoolClient: "The provider <name> does not exist for User Pool <id>".
            problems.append(f"clients[{i}].supported_identity_providers: {unknown} do not exist "
                            f"in the pool (known: {[COGNITO, *sorted(names)]})")
    return problems


def demo_pool(callback_url: str, logout_url: str) -> UserPool:
    """The demo pool: user `demo`, a simulated SAML provider `PartnerSAML` with user
    `carol@partner.example`, and one confidential code-flow client for those URLs that
    offers both."""
    return UserPool(
        users=[
            User(
                username="demo",
                password="demo-password-1",
                email="demo@example.com",
                email_verified=True,
                groups=["demo-users", "admins"],
                attributes={"name": "Demo User"},
            )
        ],
        clients=[
            AppClient(
                client_id="demo-client",
                client_secret="demo-client-secret",
                client_name="Demo app",
                allowed_flows=["code"],
                callback_urls=[callback_url],
                logout_urls=[logout_url],
                supported_identity_providers=[COGNITO, "PartnerSAML"],
            )
        ],
        identity_providers=[
            IdentityProvider(
                name="PartnerSAML",
                type="SAML",
                identifiers=["partner.example"],
                issuer="urn:partner.example:idp",
                users=[
                    ProviderUser(
                        user_id="carol@partner.example",
                        password="carol-password-1",
                        email="carol@partner.example",
                        attributes={"name": "Carol Partner"},
                    )
                ],
            )
        ],
    )
