"""Path confusion against Debian's nginx as the upstream: nginx serves static files and resolves
dot segments, `%2e`, merged slashes and the rest in its own way. Every hostile target of
tests/test_path_confusion.py, sent without a session with `public_paths = ["/public/*"]`: no
answer carries a file outside /public/, and none is a 5xx. The public file itself is served."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.nginx import RunningNginx, start_nginx
from tests.support.rawhttp import raw_request
from tests.test_path_confusion import HOSTILE_TARGETS, METHODS, port_of

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.conftest import GatewayFactory, RunningGateway

SECRET_MARK = "secret-file-content-7f3a"
ADMIN_MARK = "admin-panel-content-19c2"
PUBLIC_MARK = "public-file-content-55be"


@pytest.fixture
def nginx_files(tmp_path: Path) -> Iterator[RunningNginx]:
    """nginx serving a root with /secret.txt, /admin/panel and /public/ok.txt."""
    root = tmp_path / "root"
    (root / "admin").mkdir(parents=True)
    (root / "public").mkdir()
    (root / "secret.txt").write_text(SECRET_MARK, encoding="utf-8")
    (root / "admin" / "panel").write_text(ADMIN_MARK, encoding="utf-8")
    (root / "public" / "ok.txt").write_text(PUBLIC_MARK, encoding="utf-8")
    nginx = start_nginx(f"root {root};\nlocation / {{ try_files $uri =404; }}")
    try:
        yield nginx
    finally:
        nginx.stop()


@pytest.fixture
async def gateway(make_gateway: GatewayFactory, nginx_files: RunningNginx) -> RunningGateway:
    return await make_gateway(GATEWAY_AUTH_PUBLIC_PATHS='["/public/*"]',
                              GATEWAY_UPSTREAM_URL=nginx_files.url)


async def test_nginx_behind_the_gateway_never_serves_a_file_outside_public(
        gateway: RunningGateway) -> None:
    port = port_of(gateway)
    leaked, errors = [], []
    for target in HOSTILE_TARGETS:
        for method in METHODS:
            answer = await raw_request(port, f"{method} {target} HTTP/1.1".encode())
            if SECRET_MARK.encode() in answer.body or ADMIN_MARK.encode() in answer.body:
                leaked.append((method, target))
            if answer.status >= 500:
                errors.append((method, target, answer.status))

    assert leaked == []
    assert errors == []
    served = await raw_request(port, b"GET /public/ok.txt HTTP/1.1")
    assert (served.status, PUBLIC_MARK.encode() in served.body) == (200, True)
