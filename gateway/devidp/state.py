"""The state one running IdP shares across its handlers."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.devidp.faults import FaultBook
from gateway.devidp.grants import GrantStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.devidp.keys import SigningKeys
    from gateway.devidp.model import UserPool


@dataclass
class IdpState:
    """The pool, its keys, the remembered grants, armed faults and request counters."""

    pool: UserPool
    keys: SigningKeys
    base_url: str = ""
    now: Callable[[], float] = time.time
    grants: GrantStore = field(default_factory=GrantStore)
    faults: FaultBook = field(default_factory=FaultBook)
    token_requests: Counter[str] = field(default_factory=Counter)
    started_at: float = 0.0  # the users' creation date in the Cognito API's answers

    def __post_init__(self) -> None:
        self.grants.now = self.now
        self.started_at = self.started_at or self.now()

    @property
    def issuer(self) -> str:
        """The pool's issuer URL: base URL + pool id, like cognito-idp.<region>.amazonaws.com."""
        return f"{self.base_url}/{self.pool.pool_id}"


STATE = web.AppKey("devidp_state", IdpState)


def state_of(request: web.Request) -> IdpState:
    """The IdP state of the application serving the request."""
    return request.app[STATE]


def faults_of(request: web.Request) -> FaultBook:
    """The fault book of the application serving the request."""
    return request.app[STATE].faults
