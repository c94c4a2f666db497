"""Names of the session store's Redis keys, chosen so that a Redis Cluster can serve them.

A Cluster spreads keys over 16384 hash slots and refuses a script or transaction whose keys
sit in different slots (CROSSSLOT). A key's slot is the CRC16 of the whole key, unless the key
holds a *hash tag*: then only the text between the first `{` and the next `}` is hashed. Both
keys of one session carry the same tag, the hash of its id, so they always share a slot:

    cognito-gateway:{<sha256(sid)>}:session    the sealed session
    cognito-gateway:{<sha256(sid)>}:lock       its refresh lock (owner token, short expiry)

while different sessions still spread evenly over the cluster. A user's index of sessions
(a sorted set of session-id hashes scored by expiry) is tagged by the hash of the user's `sub`:

    cognito-gateway:user:{<sha256(sub)>}

Ids and subs are only ever hashed (SHA-256, hex), so neither a session id (a bearer
credential) nor a user id appears in clear in Redis, in its logs or in a `MONITOR`. Standalone
and Sentinel deployments ignore the tags; the same names work everywhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

PREFIX = "cognito-gateway"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """The keys of one session: `session` and `lock` share a hash slot."""

    session: str
    lock: str

    @classmethod
    def for_session(cls, sid: str) -> SessionKeys:
        """The keys of the session whose id is `sid`."""
        tag = "{" + session_hash(sid) + "}"
        return cls(session=f"{PREFIX}:{tag}:session", lock=f"{PREFIX}:{tag}:lock")


def session_hash(sid: str) -> str:
    """The hash of a session id: its hash tag, and its member in the user's index."""
    return _digest(sid)


def user_index_key(sub: str) -> str:
    """The key of the sorted set indexing the sessions of the user whose subject is `sub`."""
    return f"{PREFIX}:user:{{{_digest(sub)}}}"
