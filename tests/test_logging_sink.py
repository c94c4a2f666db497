"""The log sink when its destination fails: /dev/full answers every write with ENOSPC, as a
full disk does."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import pytest

from gateway.observability.logging import (
    configure_logging,
    count_dropped_lines,
    flush_logs,
    get_logger,
    write_rendered,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

FULL = Path("/dev/full")
log = get_logger("tests.sink")


@pytest.fixture
def full_disk() -> Iterator[TextIO]:
    """A text stream on /dev/full that writes through (nothing waits in a buffer)."""
    if not FULL.exists():
        pytest.fail("/dev/full is missing: the disk-full tests need it")
    with io.TextIOWrapper(FULL.open("wb", buffering=0), write_through=True) as stream:
        yield stream


@pytest.fixture
def dropped(full_disk: TextIO) -> list[int]:
    """The gateway's log on a full disk; the counts of lost lines as they are reported."""
    configure_logging("info", stream=full_disk)
    counts: list[int] = []
    count_dropped_lines(counts.append)
    return counts


def test_logging_on_a_full_disk_never_raises_and_counts_the_lost_lines(
        dropped: list[int], capsys: pytest.CaptureFixture[str]) -> None:
    """Every write fails: the callers never see it, each lost line is counted, and stderr
    hears of it once, without a traceback."""
    for n in range(5):
        log.warning("something_happened", n=n)
    write_rendered('{"event": "request"}')
    flush_logs()
    assert sum(dropped) == 6
    complaint = capsys.readouterr().err
    assert complaint.count("\n") == 1, complaint
    assert "ENOSPC" in complaint
    assert "Traceback" not in complaint


@pytest.mark.usefixtures("dropped")
def test_the_first_line_after_the_disk_recovers_says_how_many_were_lost(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Once writes succeed again, a `log_lines_dropped` line with the count comes first, then
    the lines go on as usual."""
    log.warning("lost_one")
    log.warning("lost_two")
    recovered = io.StringIO()
    sink = logging.getLogger().handlers[0]
    assert isinstance(sink, logging.StreamHandler)
    sink.setStream(recovered)  # space was freed
    log.info("back")
    lines = [json.loads(line) for line in recovered.getvalue().splitlines()]
    assert [(line["event"], line.get("count")) for line in lines] == [
        ("log_lines_dropped", 2), ("back", None)]
    assert lines[0]["level"] == "warning"
    assert capsys.readouterr().err.count("\n") == 1


async def test_queued_access_lines_lost_to_a_full_disk_raise_nothing_in_the_loop(
        dropped: list[int]) -> None:
    """Access lines flushed later by the event loop are dropped and counted, not raised into
    the loop's exception handler."""
    loop = asyncio.get_running_loop()
    failures: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: failures.append(context))
    for n in range(3):
        write_rendered(json.dumps({"event": "request", "n": n}))
    deadline = loop.time() + 2.0  # the flush is due ACCESS_FLUSH_SECONDS after the first line
    while sum(dropped) < 3:
        assert loop.time() < deadline, "the scheduled flush did not run within 2 s"
        await asyncio.sleep(0.01)
    assert failures == []
    assert sum(dropped) == 3
