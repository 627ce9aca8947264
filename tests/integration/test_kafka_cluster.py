"""A three-broker cluster loses a broker to ``kill -9`` under a steady stream of uploads.

The cluster is this module's own (three KRaft nodes in a temporary var dir, on ports of its own,
with its own S3), so the shared single-broker stack is never touched. The whole pipeline runs
on it: the real gateway in process, answering 202 only once Kafka acknowledged the event
(``acks=all``, idempotent, topics at 3 replicas with 2 in sync), a Faust worker and the sinks as
processes. A moment into the stream the leader of the busiest partition of photo-uploads is
killed, at a moment when the worker holds uncommitted uploads and a request is waiting for its
acknowledgement; uploads go on through the failover and after it. Then a plain consumer reads
photo-uploads: every acknowledged upload must be there exactly once, and no upload may have
been refused; and downstream every acknowledged upload must end (ImageReady or
ProcessingFailed) with one image in ClickHouse and one ImageReady content.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from photostream.config import GatewaySettings, S3Settings, StackSettings
from photostream.samples import sample_photo
from photostream.stack import Stack
from photostream.stack.kafka_broker import describe_cluster
from photostream.topics import ensure_topics
from producers.gateway import create_app
from schemas.events import ImageReady, ProcessingFailed
from schemas.topics import PHOTO_FAILED, PHOTO_READY, PHOTO_UPLOADS
from tests.gateway_client import auth, form, gateway_services
from tests.pipeline import Sinks
from tests.streams.test_worker_fresh_start import consuming
from tests.streams.workers import OutputReader, WorkerGroup, end_offset, uncommitted

pytestmark = pytest.mark.integration

BROKERS = 3
# One photographer sends 3 of every 5 photos, so one partition is clearly the busiest.
SENDERS = ("busy", "busy", "busy", "quiet-a", "quiet-b")
UPLOADS_PER_SECOND = 8
BEFORE_KILL = 6.0  # seconds of uploads before the kill
AFTER_FAILOVER = 6.0  # seconds of uploads once the cluster has moved on without the dead broker
FAILOVER_TIMEOUT = 60.0
DB = "photostream"
APP_ID = "test-cluster-processing"


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_block(size: int, *, twins: bool = False) -> int:
    """The first of ``size`` consecutive free ports (below the ephemeral range); with ``twins`` each +10000 too."""
    rng = random.Random()
    while True:
        base = rng.randrange(20000, 30000 - size)
        ports = range(base, base + size)
        if all(_bindable(port) and (not twins or _bindable(port + 10000)) for port in ports):
            return base


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Stack]:
    """Three Kafka brokers and an S3 server of this module's own, stopped at its end."""
    kafka = _free_block(2 * BROKERS)
    seaweed = _free_block(4, twins=True)  # SeaweedFS serves gRPC on each port + 10000
    settings = StackSettings(
        var_dir=tmp_path_factory.mktemp("cluster") / "var",
        kafka_brokers=BROKERS,
        kafka_port=kafka,
        kafka_controller_port=kafka + 1,
        kafka_heap="384m",
        s3_port=seaweed,
        seaweed_master_port=seaweed + 1,
        seaweed_volume_port=seaweed + 2,
        seaweed_filer_port=seaweed + 3,
        start_timeout=180,
    )
    stack = Stack(settings, S3Settings(endpoint_url=f"http://127.0.0.1:{seaweed}"))
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


def _gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (exited, or a zombie waiting for its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def _wait_for(condition: Callable[[], object], what: str, timeout: float = FAILOVER_TIMEOUT) -> object:
    """Poll a blocking ``condition`` off the event loop until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := await asyncio.to_thread(condition):
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:g}s")


def _leader(admin: AdminClient, partition: int) -> int:
    return admin.list_topics(PHOTO_UPLOADS, timeout=10).topics[PHOTO_UPLOADS].partitions[partition].leader


@pytest.fixture
def pipeline(cluster, tmp_path) -> Iterator[tuple[WorkerGroup, Sinks]]:
    """A Faust worker and the sinks on the cluster, as processes; stopped at the end."""
    kafka = cluster.settings.kafka_settings()
    workers = WorkerGroup(kafka, cluster.s3_settings, APP_ID, tmp_path)
    sinks = Sinks(kafka, cluster.s3_settings, tmp_path)
    try:
        workers.start()
        sinks.start(timeout=120)
        deadline = time.monotonic() + 120
        while not consuming(workers):  # so the kill hits a worker mid-stream, not one still starting
            assert workers.workers[0].process.poll() is None, workers.logs()
            assert time.monotonic() < deadline, workers.logs()
            time.sleep(0.2)
        yield workers, sinks
    finally:
        workers.stop_all()
        sinks.stop()


async def _downstream(ready_reader: OutputReader, sinks: Sinks, ids: set[str]) -> dict[str, int]:
    """Wait until every acknowledged upload ended downstream, then count what subscribers and analysts see."""

    def ended(reader: OutputReader) -> bool:
        return ids <= {str(e.upload_id) for e in (*reader.events[PHOTO_READY], *reader.events[PHOTO_FAILED])}

    await asyncio.to_thread(ready_reader.poll_until, ended, 180)
    await asyncio.to_thread(ready_reader.poll_until, lambda r: False, 2)
    ready = [e for e in ready_reader.events[PHOTO_READY] if isinstance(e, ImageReady)]
    failed = {str(e.upload_id) for e in ready_reader.events[PHOTO_FAILED] if isinstance(e, ProcessingFailed)}
    completed = {str(e.upload_id) for e in ready}
    reader = sinks.reader()
    try:
        # This module's sinks have a ClickHouse of their own: every image in it is from this test.
        deadline = time.monotonic() + 30
        while (images := (await reader.query(f"SELECT count() FROM {DB}.images FINAL")).rows[0][0]) < len(completed):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        await reader.close()
    return {
        "completed": len(completed & ids),
        "processing failed": len(failed & ids),
        "lost downstream": len(ids - completed - failed),
        "doubled downstream": max(0, images - len(completed)) + len({e.event_id for e in ready}) - len(completed),
    }


@pytest.mark.timeout(360)
async def test_a_broker_killed_mid_stream_loses_nothing(cluster, pipeline, aiohttp_client):
    started = time.monotonic()
    workers, sinks = pipeline
    kafka = cluster.settings.kafka_settings()
    assert kafka.bootstrap_servers.count(",") == BROKERS - 1
    assert kafka.replication_factor == 3
    ensure_topics(kafka)
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers, "log_level": 0})
    topic = admin.list_topics(PHOTO_UPLOADS, timeout=10).topics[PHOTO_UPLOADS]
    # The topics the worker and the sinks created (their processes were told through the environment).
    for name in (PHOTO_UPLOADS, PHOTO_READY, f"{APP_ID}-duplicates-changelog"):
        partitions = admin.list_topics(name, timeout=10).topics[name].partitions.values()
        assert {len(partition.replicas) for partition in partitions} == {3}, name
        (configs,) = admin.describe_configs([ConfigResource("topic", name)]).values()
        assert configs.result(timeout=10)["min.insync.replicas"].value == "2", name

    settings = GatewaySettings(daily_quota=100_000)
    services = gateway_services(kafka, cluster.s3_settings, settings)
    gateway = await aiohttp_client(create_app(settings, services))
    keys = {who: await services.keys.create(who) for who in set(SENDERS)}
    reader = OutputReader(kafka, [PHOTO_UPLOADS])
    ready_reader = OutputReader(kafka, [PHOTO_READY, PHOTO_FAILED])

    acknowledged: list[tuple[str, float]] = []  # (upload_id, when its 202 came)
    refused: list[str] = []
    waits: list[float] = []

    pending: set[int] = set()  # requests sent and not answered yet
    sending = asyncio.Event()

    async def upload(index: int) -> None:
        who = SENDERS[index % len(SENDERS)]
        photo = sample_photo(index, size=(160, 120))
        sent = time.monotonic()
        pending.add(index)
        sending.set()
        try:
            response = await gateway.post("/v1/uploads", data=form((f"{index}.jpg", photo)), headers=auth(keys[who]))
            body = await response.json()
        except Exception as exc:  # noqa: BLE001 - any failure is counted, not raised mid-stream
            refused.append(f"{index}: {exc!r}")
            return
        finally:
            pending.discard(index)
        waits.append(time.monotonic() - sent)
        if response.status == 202:
            acknowledged.append((body["uploads"][0]["upload_id"], time.monotonic()))
        else:
            refused.append(f"{index}: {response.status} {body}")

    stop = asyncio.Event()

    async def steady_stream() -> None:
        # A new upload every tick whether or not the earlier ones were answered, as clients do.
        requests = []
        index = 0
        while not stop.is_set():
            requests.append(asyncio.create_task(upload(index)))
            index += 1
            await asyncio.sleep(1 / UPLOADS_PER_SECOND)
        await asyncio.gather(*requests)

    stream = asyncio.create_task(steady_stream())
    try:
        await asyncio.sleep(BEFORE_KILL)

        def busiest() -> int:
            ends = {p: end_offset(reader.consumer, PHOTO_UPLOADS, p) for p in topic.partitions}
            return max(ends, key=lambda p: ends[p])

        partition = await asyncio.to_thread(busiest)
        leader = await asyncio.to_thread(_leader, admin, partition)
        victim = cluster.kafka.nodes[leader - 1]
        pid = victim.process.pid()
        assert pid is not None
        # Strike while work is in flight: the worker holds uploads it has not committed, and a request is
        # between its bytes and its answer (its event on its way to the brokers).
        deadline = time.monotonic() + 20
        while (uncommitted_at_kill := await asyncio.to_thread(uncommitted, kafka, APP_ID)) == 0:
            assert time.monotonic() < deadline, "the worker never had uncommitted uploads"
        sending.clear()
        await asyncio.wait_for(sending.wait(), 5)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        requests_at_kill = len(pending)

        await _wait_for(lambda: _gone(pid), f"broker {leader} (pid {pid}) exits")
        survivors = {node.node for node in cluster.kafka.nodes} - {leader}

        def lists_survivors() -> bool:
            description = describe_cluster(kafka.bootstrap_servers)
            return description is not None and {node.id for node in description.nodes} == survivors

        await _wait_for(lists_survivors, f"the cluster lists only brokers {sorted(survivors)}")
        new_leader = await _wait_for(
            lambda: next(iter({_leader(admin, partition)} & survivors), None), "another broker leads"
        )
        failover = time.monotonic() - killed_at
        await asyncio.sleep(AFTER_FAILOVER)
    finally:
        stop.set()
        await stream

    ids = {upload_id for upload_id, _ in acknowledged}
    reader.poll_until(lambda r: ids <= {str(e.upload_id) for e in r.events[PHOTO_UPLOADS]}, 60)
    reader.poll_until(lambda r: False, 2)  # a doubled event would sit right behind the first
    reader.close()
    read = Counter(str(event.upload_id) for event in reader.events[PHOTO_UPLOADS])
    try:
        downstream = await _downstream(ready_reader, sinks, ids)
    finally:
        ready_reader.close()
    counts = {
        "acknowledged": len(acknowledged),
        "requests in flight at the kill": requests_at_kill,
        "uncommitted at the kill": uncommitted_at_kill,
        "acknowledged after the kill": sum(1 for _, at in acknowledged if at > killed_at),
        "failed": len(refused),
        "lost": len(ids - read.keys()),
        "doubled": sum(n - 1 for n in read.values() if n > 1),
        "unacknowledged events": len(read.keys() - ids),
        **downstream,
    }
    exited = [w for w in workers.workers if w.process.poll() is not None]
    print(
        f"\n3 brokers, kill -9 of broker {leader} (leader of photo-uploads/{partition}): {counts}; "
        f"broker {new_leader} leads since, failover {failover:.1f}s, slowest answer {max(waits):.1f}s, "
        f"whole test {time.monotonic() - started:.0f}s, workers exited {len(exited)}"
    )
    assert len(ids) == len(acknowledged), "every photo is new content, so every upload has its own id"
    assert refused == []
    assert counts["lost"] == 0
    assert counts["doubled"] == 0
    assert counts["unacknowledged events"] == 0
    assert counts["lost downstream"] == 0, workers.logs() + sinks.logs()
    assert counts["doubled downstream"] == 0
    assert counts["completed"] == len(ids)  # every photo is a valid JPEG
    assert counts["acknowledged after the kill"] > UPLOADS_PER_SECOND * AFTER_FAILOVER / 2
    assert new_leader != leader
    assert counts["requests in flight at the kill"] > 0
    assert counts["uncommitted at the kill"] > 0
