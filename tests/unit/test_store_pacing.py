import asyncio
import itertools
import time

from bridge.core.pacing import KeyedLocks, Pacer
from bridge.store import SqliteRecord


async def test_sqlite_record_states_survive_reopen(tmp_path):
    path = tmp_path / "done.sqlite"
    store = SqliteRecord(path)
    # Never handed to QQ: no entry, it may run when it comes back.
    assert store.lookup("a").state == "new"
    await store.started("a")
    assert store.lookup("a").state == "started"
    await store.finish("a", b'{"code":0}')
    await store.close()
    store = SqliteRecord(path)
    seen = store.lookup("a")
    assert (seen.state, seen.reply) == ("done", b'{"code":0}')
    await store.close()


async def test_sqlite_record_prunes_old_records(tmp_path):
    store = SqliteRecord(tmp_path / "d.sqlite", ttl=0.0)
    await store.started("old")
    await asyncio.sleep(0.01)
    store.prune()
    assert store.lookup("old").state == "new"
    await store.close()


async def test_keyed_locks_keep_arrival_order_per_key():
    locks = KeyedLocks()
    order: list[str] = []

    async def work(key: str, tag: str, delay: float) -> None:
        async with locks.hold(key):
            await asyncio.sleep(delay)
            order.append(tag)

    await asyncio.gather(
        work("g1", "a1", 0.03), work("g1", "a2", 0.0), work("g2", "b1", 0.0), work("g1", "a3", 0.0)
    )
    assert [t for t in order if t.startswith("a")] == ["a1", "a2", "a3"]
    assert order[0] == "b1"  # another conversation does not wait behind g1
    assert len(locks) == 0


async def test_pacer_spaces_sends_per_target_and_globally():
    pacer = Pacer(global_interval=0.0, per_target=0.05)
    stamps: dict[str, list[float]] = {"a": [], "b": []}

    async def send(key: str) -> None:
        await pacer.wait(key)
        stamps[key].append(time.monotonic())

    await asyncio.gather(*(send(k) for k in "aabab"))
    a = stamps["a"]
    assert all(later - earlier >= 0.045 for earlier, later in itertools.pairwise(a))
    # b is not held back by a's interval: its first send needs no sleep, so it goes before
    # a's second (an order, not a duration, so a loaded machine cannot break it).
    assert stamps["b"][0] < a[1]

    glob = Pacer(global_interval=0.03, per_target=0.0)
    t0 = time.monotonic()
    for k in "xyz":
        await glob.wait(k)
    assert time.monotonic() - t0 >= 0.055


async def test_pacer_keeps_the_interval_after_a_late_wake_up():
    """A sleep that ends late must not shorten the distance to the next send of the target.

    The loop is blocked while the second send sleeps, so it wakes ~45 ms late; the third
    send's reserved slot then lies only ~5 ms after the second really went out.
    """
    pacer = Pacer(global_interval=0.0, per_target=0.05)
    went: list[float] = []

    async def send() -> None:
        await pacer.wait("a")
        went.append(time.monotonic())

    await send()
    second = asyncio.create_task(send())
    await asyncio.sleep(0)  # the second send reserves its slot and sleeps
    time.sleep(0.095)  # noqa: ASYNC251 -- a busy loop on purpose: the second send wakes late
    await second
    await send()
    assert went[2] - went[1] >= 0.045, [b - a for a, b in itertools.pairwise(went)]


async def test_pacer_global_interval_holds_across_targets_after_late_wake_ups():
    pacer = Pacer(global_interval=0.04, per_target=0.0)
    went: list[float] = []

    async def send(key: str) -> None:
        await pacer.wait(key)
        went.append(time.monotonic())

    tasks = [asyncio.create_task(send(k)) for k in "xyzw"]
    await asyncio.sleep(0)
    time.sleep(0.07)  # noqa: ASYNC251 -- blocks the loop: y and z wake late, together
    await asyncio.gather(*tasks)
    assert all(b - a >= 0.035 for a, b in itertools.pairwise(sorted(went)))


async def test_pacer_off_does_not_wait():
    pacer = Pacer(0, 0)
    t0 = time.monotonic()
    for _ in range(1000):
        await pacer.wait("k")
    assert time.monotonic() - t0 < 1.0
