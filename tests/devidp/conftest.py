"""Fixtures for the dev IdP tests: a real DevIdp on a free port and a browser-like client."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import pytest

from gateway.devidp import DevIdp
from gateway.devidp.keys import SigningKeys
from tests.support.clock import ManualClock

from .flows import Flows, make_pool

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture(scope="session")
def shared_keys() -> SigningKeys:
    """One key pair for the whole run: RSA generation would dominate the suite's time."""
    return SigningKeys.generate()


@pytest.fixture
def clock() -> ManualClock:
    """The IdP's time: tests move it instead of sleeping past lifetimes."""
    return ManualClock()


@pytest.fixture
async def idp(shared_keys: SigningKeys, clock: ManualClock) -> AsyncIterator[DevIdp]:
    """A started DevIdp with a fresh pool."""
    server = DevIdp(make_pool(), keys=shared_keys, now=clock.time)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that keeps cookies for 127.0.0.1 like a browser would."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


@pytest.fixture
def flows(idp: DevIdp, http: aiohttp.ClientSession) -> Flows:
    """Helpers that walk the hosted-UI and token flows."""
    return Flows(idp, http)
