"""gateway.upstream.client streams bodies both ways with bounded memory.

100 MB goes down (from nginx) and up (to an aiohttp app) while this process's resident memory is
sampled; a consumer that stops reading stops the upstream (the client stops reading its socket);
an upstream that stops reading stops the request body (the client stops pulling it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import resource
import time
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from gateway.upstream.client import ReadTimeout, UpstreamClient, WriteTimeout
from tests.support.nginx import RunningNginx, start_nginx
from tests.test_upstream_client_failures import RawExchange, scripted

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

MB = 1024 * 1024
TOTAL = 100 * MB
PIECE = bytes(range(256)) * 256  # 64 KiB
PAGE = resource.getpagesize()
READ_BUFFER = 64 * 1024
# What may sit in the client beyond its mark: one socket read (asyncio reads up to 256 KiB).
ONE_READ = 256 * 1024


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


class PeakMemory:
    """The highest resident set size seen over the samples, above the first one."""

    def __init__(self) -> None:
        self.baseline = self.peak = _rss()

    def sample(self) -> None:
        self.peak = max(self.peak, _rss())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(TOTAL // len(PIECE)):
            out.write(PIECE)
            digest.update(PIECE)
    return path, digest.hexdigest()


@pytest.fixture(scope="module")
def nginx(big_file: tuple[Path, str]) -> Iterator[RunningNginx]:
    server = start_nginx(f"location = /big {{ alias {big_file[0]}; }}")
    yield server
    server.stop()


async def hash_body(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    async for chunk in request.content.iter_any():
        digest.update(chunk)
    return web.Response(text=digest.hexdigest())


@pytest.fixture
async def hashing_app() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_put("/hash", hash_body)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def pieces(count: int, on_pull: Callable[[], None] = lambda: None) -> AsyncIterator[bytes]:
    for _ in range(count):
        on_pull()
        yield PIECE


@contextlib.asynccontextmanager
async def not_reading(answer: bytes = b"") -> AsyncIterator[str]:
    """An upstream that reads the request head, writes `answer`, then neither reads nor closes."""
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        writers.append(writer)
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await asyncio.Event().wait()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in writers:
            writer.close()
        await server.wait_closed()


class TestBoundedMemory:
    """100 MB through the client raises resident memory by a small fraction of that."""

    async def test_download(self, nginx: RunningNginx, big_file: tuple[Path, str]) -> None:
        """A 100 MB download arrives whole, and memory grows by under 20 MB meanwhile."""
        memory = PeakMemory()
        digest = hashlib.sha256()
        size = 0
        async with UpstreamClient(nginx.url, read_buffer_bytes=READ_BUFFER) as client:
            async with await client.request("GET", "/big") as response:
                assert response.content_length == TOTAL
                async for chunk in response:
                    digest.update(chunk)
                    size += len(chunk)
                    if size % MB < len(chunk):
                        memory.sample()
            assert client.idle_connections == 1
        assert (size, digest.hexdigest()) == (TOTAL, big_file[1])
        assert memory.growth < 20 * MB

    @pytest.mark.parametrize("length", [TOTAL, None], ids=["content-length", "chunked"])
    async def test_upload(self, hashing_app: str, length: int | None) -> None:
        """A 100 MB streamed upload arrives whole, and memory grows by under 20 MB meanwhile."""
        memory = PeakMemory()
        pulled = 0

        def pulled_one() -> None:
            nonlocal pulled
            pulled += 1
            if pulled % 16 == 0:
                memory.sample()

        expected = hashlib.sha256()
        for _ in range(TOTAL // len(PIECE)):
            expected.update(PIECE)
        async with UpstreamClient(hashing_app) as client:
            response = await client.request(
                "PUT", "/hash", body=pieces(TOTAL // len(PIECE), pulled_one), body_length=length)
            assert (await response.read()).decode() == expected.hexdigest()
        assert memory.growth < 20 * MB


class TestFlowControl:
    """Each side waits for the slower one instead of buffering."""

    async def test_slow_consumer_stops_the_upstream(self) -> None:
        """While the consumer reads nothing, the client holds one buffer and the upstream waits."""
        sent = 0
        upstream_blocked = asyncio.Event()

        async def firehose(exchange: RawExchange) -> None:
            nonlocal sent
            exchange.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % TOTAL)
            for _ in range(TOTAL // len(PIECE)):
                exchange.send(PIECE)
                sent += len(PIECE)
                if exchange.writer.transport.get_write_buffer_size() > 0:
                    upstream_blocked.set()  # the kernel took no more: the client is not reading
                await exchange.writer.drain()

        async with scripted(firehose) as upstream, \
                UpstreamClient(upstream.url, read_buffer_bytes=READ_BUFFER) as client:
            response = await client.request("GET", "/")
            await _until(lambda: upstream_blocked.is_set()
                         and response.buffered_bytes > READ_BUFFER)
            for _ in range(200):  # ample chances for a client that kept reading to do so
                await asyncio.sleep(0)
            assert response.buffered_bytes <= READ_BUFFER + ONE_READ
            assert sent < TOTAL // 4
            received = sum([len(chunk) async for chunk in response])
            assert received == TOTAL

    async def test_paused_reading_is_not_a_read_timeout(self, nginx: RunningNginx) -> None:
        """A consumer pausing longer than read_timeout does not make the upstream time out."""
        async with UpstreamClient(nginx.url, read_timeout=0.2,
                                  read_buffer_bytes=READ_BUFFER) as client:
            response = await client.request("GET", "/big")
            first = await anext(response)
            await asyncio.sleep(0.5)  # the pause itself is what is tested: time must pass
            rest = sum([len(chunk) async for chunk in response])
            assert len(first) + rest == TOTAL

    async def test_upstream_not_reading_stops_the_body(self) -> None:
        """An upstream that reads nothing makes the client stop pulling the body: WriteTimeout."""
        pulled = 0

        def pulled_one() -> None:
            nonlocal pulled
            pulled += 1

        async with not_reading() as url, \
                UpstreamClient(url, write_timeout=0.3, read_timeout=2) as client:
            started = time.monotonic()
            with pytest.raises(WriteTimeout):
                await client.request("PUT", "/", body=pieces(TOTAL // len(PIECE), pulled_one))
            assert time.monotonic() - started < 5
            assert pulled * len(PIECE) < TOTAL // 4
            assert client.open_connections == 0


class TestEarlyResponse:
    """An upstream may answer before it has read the request body (a 413, a 401)."""

    async def test_upload_stops_and_the_answer_is_returned(self) -> None:
        """The client stops sending, returns the answer, and does not reuse the connection."""
        pulled = 0

        def pulled_one() -> None:
            nonlocal pulled
            pulled += 1

        answer = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 5\r\n\r\nlarge"
        async with not_reading(answer) as url, \
                UpstreamClient(url, read_timeout=5, write_timeout=5) as client:
            response = await client.request(
                "PUT", "/", body=pieces(TOTAL // len(PIECE), pulled_one), body_length=TOTAL)
            assert (response.status, await response.read()) == (413, b"large")
            assert pulled * len(PIECE) < TOTAL // 4
            assert client.open_connections == 0

    async def test_body_owed_after_an_early_head_times_out(self) -> None:
        """After an early head, a body that stops coming still ends in ReadTimeout."""
        answer = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 10\r\n\r\nlarge"
        async with not_reading(answer) as url, \
                UpstreamClient(url, read_timeout=0.3, write_timeout=5) as client:
            response = await client.request(
                "PUT", "/", body=pieces(TOTAL // len(PIECE)), body_length=TOTAL)
            assert response.status == 413
            with pytest.raises(ReadTimeout):
                await response.read()
            assert client.open_connections == 0


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Poll `condition` on the event loop until it holds; fail loudly after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.01)
