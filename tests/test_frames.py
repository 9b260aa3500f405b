"""What waits in the supervisor for a worker's next frame (runtime/frames.py)."""
from consecution.runtime.frames import FORWARD, Frames

PLACEMENT = {0: 0, 1: 1, 2: 0, 3: 1}  # task -> worker


def group(task, n, group_id):
    return [task, "lines", 0, "default", [f"v{i}" for i in range(n)], list(range(100, 100 + n)), group_id, group_id,
            True]


def test_a_frame_takes_its_workers_deliveries_then_a_shuffles_bound_to_its_task_up_to_the_budget():
    frames = Frames(PLACEMENT, 2)
    shuffle = frames.shared([0, 1])  # worker 0 has task 0, worker 1 task 1
    frames.delivery(2, ("a",), "default", "s", 0, 7, (70,))
    for word in "bcd":
        frames.delivery(shuffle, (word,), "default", "s", 0, 8, (80,))
    batch, groups, blobs, n, forwarded = frames.take(0, 3)
    assert [d[0] for d in batch] == [2, 0, 0] and [d[1] for d in batch] == [("a",), ("b",), ("c",)]
    assert (groups, blobs, n, forwarded) == ([], [], 3, 0)
    batch, *_ = frames.take(1, 3)  # what the shuffle has left goes to the worker that asks next
    assert [(d[0], d[1]) for d in batch] == [(1, ("d",))]


def test_a_record_group_is_split_where_the_budget_ends_and_its_parts_ids_xor_to_the_groups():
    frames = Frames(PLACEMENT, 2)
    frames.records(group(0, 10, 0xABCDEF))
    first, *_ = frames.take(0, 4)[1]
    second, *_ = frames.take(0, 4)[1]
    third, *_ = frames.take(0, 4)[1]
    assert [len(part[5]) for part in (first, second, third)] == [4, 4, 2]
    assert first[4] + second[4] + third[4] == [f"v{i}" for i in range(10)]
    assert first[7] ^ second[7] ^ third[7] == 0xABCDEF and all(part[6] == 0xABCDEF for part in (first, second, third))
    assert all(part[8] is True for part in (first, second, third))  # flat, as sent
    assert frames.take(0, 4)[:3] == ([], [], [])


def test_forwarded_blobs_ride_on_top_up_to_forward_and_a_frame_not_sent_is_put_back_first():
    frames = Frames(PLACEMENT, 2)
    for i in range(3):
        frames.forward(1, FORWARD // 2, b"blob%d" % i)
    frames.delivery(1, ("x",), "default", "s", 0, 9, (90,))
    batch, groups, blobs, n, forwarded = frames.take(1, 10)
    assert [b for _, b in blobs] == [b"blob0", b"blob1"] and forwarded == FORWARD and n == FORWARD + 1
    frames.put_back(1, batch, groups, blobs)
    batch, _, blobs, _, _ = frames.take(1, 10)
    assert [b for _, b in blobs] == [b"blob0", b"blob1"] and [d[1] for d in batch] == [("x",)]


def test_a_dead_workers_queues_are_dropped_and_counted():
    frames = Frames(PLACEMENT, 2)
    frames.delivery(1, ("x",), "default", "s", 0, 9, (90,))
    frames.records(group(3, 5, 0x1234))
    frames.forward(1, 7, b"blob")
    assert frames.drop(1) == (1 + 5 + 7, 7)
    assert frames.take(1, 100)[:3] == ([], [], [])
