import os
import uuid

from legion.core.ids import request_id


def test_request_ids_are_version_4_uuids_in_hex_and_never_repeat() -> None:
    ids = [request_id() for _ in range(2000)]  # several refills of the pool
    assert len(set(ids)) == len(ids)
    for rid in ids:
        parsed = uuid.UUID(rid.decode("ascii"))
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and parsed.hex.encode() == rid


def test_a_forked_child_does_not_hand_out_its_parents_next_ids() -> None:
    request_id()  # the parent holds a partly used pool
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, b"".join(request_id() for _ in range(4)))
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read, "rb") as pipe:
        theirs = pipe.read()
    mine = b"".join(request_id() for _ in range(4))
    assert len(theirs) == len(mine) == 128
    assert {theirs[i : i + 32] for i in range(0, 128, 32)}.isdisjoint(mine[i : i + 32] for i in range(0, 128, 32))
