"""The example subscribers (Python, Java, Node.js) read photo-ready as a downstream service would.

Each is run as its own program, importing nothing of photostream, against the real broker, on
ImageReady events of uploads this test made through the whole pipeline. What each printed is
compared with photostream's own decoding of the same events. A second run of each, with the same
consumer group and seen-file, shows the rest of the contract: it resumes from its committed
offsets (no offset read twice), a replayed event is recognised as a duplicate by ``event_id``
across the restart, a message that is not Avro is reported with its partition and offset and
does not stop it, and every image is seen once after deduplicating.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer

from schemas.events import ImageReady
from schemas.serde import EventSerde
from schemas.topics import PHOTO_READY
from tests.streams.uploads import photo, upload
from tests.streams.workers import OutputReader
from tests.tools import ROOT, npm_ci, require

pytestmark = pytest.mark.integration

EXAMPLES = ROOT / "examples" / "subscribers"
IDLE_EXIT_SECONDS = 5
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Subscriber:
    language: str
    command: list[str]


@dataclass(frozen=True)
class Run:
    """What one run of a subscriber printed: its JSON lines, its stderr, its exit code."""

    lines: list[dict]
    stderr: str
    returncode: int

    def of(self, photographer: str) -> list[dict]:
        return [line for line in self.lines if line["photographer_id"] == photographer]

    def last_offsets(self) -> dict[int, int]:
        last: dict[int, int] = {}
        for line in self.lines:
            last[line["partition"]] = max(last.get(line["partition"], -1), line["offset"])
        return last


@pytest.fixture(scope="module")
def subscribers() -> list[Subscriber]:
    require("java", "mvn", "node", "npm")
    java = EXAMPLES / "java"
    build = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(java / "pom.xml"), "package"], capture_output=True, text=True, timeout=600
    )
    assert build.returncode == 0, f"the Java subscriber does not build:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    npm_ci(EXAMPLES / "node")
    return [
        Subscriber("python", [sys.executable, str(EXAMPLES / "python" / "subscriber.py")]),
        Subscriber("java", ["java", "-jar", str(java / "target" / "subscriber.jar")]),
        Subscriber("node", ["node", str(EXAMPLES / "node" / "subscriber.js")]),
    ]


def run_all(subscribers: list[Subscriber], bootstrap: str, state: Path) -> dict[str, Run]:
    """Run every subscriber at once until each has been idle for a while; one group and seen-file each."""
    started = {}
    for subscriber in subscribers:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "GROUP_ID": f"{state.name}-{subscriber.language}",
            "SEEN_FILE": str(state / f"{subscriber.language}-seen.txt"),
            "EXIT_WHEN_IDLE_SECONDS": str(IDLE_EXIT_SECONDS),
        }
        started[subscriber.language] = subprocess.Popen(
            subscriber.command, cwd=state, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    runs = {}
    for language, process in started.items():
        try:
            stdout, stderr = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        runs[language] = Run(
            [json.loads(line) for line in stdout.splitlines() if line.strip()], stderr, process.returncode
        )
    return runs


def expected(event: ImageReady) -> dict:
    """The fields every subscriber prints, from photostream's own decoding of the event."""
    return {
        "event_id": event.event_id,
        "upload_id": str(event.upload_id),
        "photographer_id": event.photographer_id,
        "variant_keys": sorted(variant.key for variant in event.variants),
        "ready_at": (event.ready_at - EPOCH) // timedelta(milliseconds=1),
    }


async def upload_until_ready(
    gateway, key: str, ready: OutputReader, photographer: str, seeds: range
) -> list[ImageReady]:
    files = [(f"IMG_{seed:04d}.jpg", photo(seed, size=(900, 600))) for seed in seeds]
    ids = {item["upload_id"] for item in await upload(gateway, key, *files)}

    def all_ready(reader: OutputReader) -> bool:
        return ids <= {str(event.upload_id) for event in reader.of(PHOTO_READY, {photographer})}

    assert await asyncio.to_thread(ready.poll_until, all_ready, 120), f"not every upload became ready: {ids}"
    events = {e.event_id: e for e in ready.of(PHOTO_READY, {photographer}) if str(e.upload_id) in ids}
    return list(events.values())


def produce(bootstrap: str, key: str, value: bytes) -> tuple[int, int]:
    """Produce one message and return its (partition, offset)."""
    delivered = []
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    producer.produce(
        PHOTO_READY, key=key.encode(), value=value, on_delivery=lambda err, msg: delivered.append((err, msg))
    )
    assert producer.flush(30) == 0
    ((error, message),) = delivered
    assert error is None, error
    return message.partition(), message.offset()


async def test_subscribers_in_three_languages_decode_resume_and_deduplicate(
    subscribers, make_gateway, workers, sinks, local_stack, unique_name, tmp_path
):
    bootstrap = local_stack.kafka.bootstrap_servers
    gateway = await make_gateway()
    photographer = unique_name("subscriber")
    key = await gateway.services.keys.create(photographer)
    state = tmp_path / unique_name("example-subscriber")
    state.mkdir()
    ready = OutputReader(local_stack.kafka, [PHOTO_READY])
    sinks.start()
    workers.start()
    try:
        first = await upload_until_ready(gateway, key, ready, photographer, range(1, 4))
        first_runs = await asyncio.to_thread(run_all, subscribers, bootstrap, state)

        second = await upload_until_ready(gateway, key, ready, photographer, range(4, 6))
        # A replay, as after a sink's crash: the same event again, byte for byte, after the new ones.
        replayed = first[0]
        produce(bootstrap, photographer, EventSerde().encode(replayed, PHOTO_READY))
        bad_partition, bad_offset = produce(bootstrap, photographer, b"not an Avro event")
        second_runs = await asyncio.to_thread(run_all, subscribers, bootstrap, state)
    finally:
        ready.close()

    logs = "\n".join(f"--- {lang}\n{run.stderr[-3000:]}" for lang, run in {**first_runs, **second_runs}.items())
    for language in (subscriber.language for subscriber in subscribers):
        one, two = first_runs[language], second_runs[language]
        assert one.returncode == two.returncode == 0, f"{language} exited {one.returncode}, {two.returncode}\n{logs}"

        # The first run decoded each event of the first uploads exactly as photostream does.
        new_in_one = [line for line in one.of(photographer) if not line["duplicate"]]
        assert sorted(({k: line[k] for k in expected(first[0])} for line in new_in_one), key=str) == sorted(
            (expected(event) for event in first), key=str
        ), language

        # The second run resumed where the first committed: no offset of any partition read twice.
        last = one.last_offsets()
        reread = [line for line in two.lines if line["offset"] <= last.get(line["partition"], -1)]
        assert reread == [], (
            f"{language} read again what it had committed: {[(r['partition'], r['offset']) for r in reread[:5]]}"
        )

        # Its new images are exactly the second uploads; the replay is known as a duplicate across the restart.
        mine = two.of(photographer)
        new_in_two = [line for line in mine if not line["duplicate"]]
        assert sorted(({k: line[k] for k in expected(second[0])} for line in new_in_two), key=str) == sorted(
            (expected(event) for event in second), key=str
        ), language
        assert [line["event_id"] for line in mine if line["duplicate"]] == [replayed.event_id], language

        # Once each, after deduplicating, over both runs.
        seen = [line["event_id"] for line in new_in_one + new_in_two]
        assert sorted(seen) == sorted(event.event_id for event in first + second), language

        # The bad message was named, with its partition and offset, and the subscriber went on.
        named = [
            line
            for line in two.stderr.splitlines()
            if re.search(rf"partition\W{{0,3}}{bad_partition}\b", line)
            and re.search(rf"offset\W{{0,3}}{bad_offset}\b", line)
        ]
        assert named, f"{language} did not report the bad message at {bad_partition}/{bad_offset}:\n{two.stderr}"
