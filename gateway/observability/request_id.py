"""The request id: chosen once per request, on its log lines, sent upstream, returned.

It is the client's `X-Request-Id` when that is a sane token (<= 128 characters of
`[A-Za-z0-9._:-]`), else a new random one.
"""

from __future__ import annotations

import re
import uuid

from aiohttp import web

_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

REQUEST_ID = web.RequestKey("request_id", str)


def request_id_of(request: web.BaseRequest) -> str:
    incoming = request.headers.get("X-Request-Id", "")
    return incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex
