"""New request ids: the shape uuid4().hex had, never repeated, not shared with a forked child."""

from __future__ import annotations

import os
import re

from gateway.observability.request_id import ID_BYTES, POOL_BYTES, RandomIds, new_request_id

HEX_ID = re.compile(r"[0-9a-f]{32}")


def test_ids_are_32_hex_digits_and_never_repeat_across_refills() -> None:
    """Ids over several refills of the random pool are all distinct and uuid4().hex-shaped."""
    ids = RandomIds()
    made = [ids() for _ in range(5 * POOL_BYTES // ID_BYTES + 7)]
    assert all(HEX_ID.fullmatch(i) for i in made)
    assert len(set(made)) == len(made)


def test_a_forked_child_never_repeats_its_parents_next_ids() -> None:
    """After fork the child draws from fresh random bytes, not from the parent's pool."""
    new_request_id()  # the pool holds unused bytes now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.close(read_end)
        os.write(write_end, " ".join(new_request_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child = pipe.read().decode().split()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    parent = [new_request_id() for _ in range(3)]
    assert len(child) == 3
    assert set(child).isdisjoint(parent)
