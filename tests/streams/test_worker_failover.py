"""Two workers share the partitions; one is killed mid-stream and nothing is lost or decided twice.

Kafka redelivers what the dead worker had not committed, so some uploads are processed again: the
events it re-emits carry the same ids and the same decisions, which is what lets the sinks write
each image once. The test counts and prints both, and proves the kill hit work in flight (uploads
accepted and not yet processed, offsets not yet committed) and that a replay happened.

A kill can be lucky, so the kill moment varies: `make test` runs one moment, `make test-faults`
(``PHOTOSTREAM_FAILOVER_RUNS=5``) runs five and prints a table of them.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
import uuid
from collections import defaultdict

import pytest
from aiokafka.partitioner import murmur2
from PIL import Image

from photostream.topics import PARTITIONS
from schemas.events import ImageProcessed
from schemas.topics import PHOTO_FAILED, PHOTO_PROCESSED, PHOTO_VARIANTS
from tests.streams.uploads import photo, upload
from tests.streams.workers import OutputReader, uncommitted

pytestmark = pytest.mark.integration

PHOTOGRAPHERS = 8
PHOTOS_EACH = 6

# Share of the stream processed before the kill; the first is the one `make test` runs.
KILL_MOMENTS = (0.25, 0.1, 0.4, 0.5, 0.6)
RUNS = int(os.environ.get("PHOTOSTREAM_FAILOVER_RUNS", "1"))
TABLE: list[dict] = []


def differences(copies: list[ImageProcessed]) -> dict[str, set]:
    """Which decided fields differ between the copies of one upload's ImageProcessed."""
    fields = {"duplicate_of": lambda c: c.duplicate_of, "duplicate_kind": lambda c: c.duplicate_kind}
    fields |= {"phash": lambda c: c.phash}
    fields |= {name: (lambda c, name=name: getattr(c.metadata, name)) for name in c_fields(copies[0].metadata)}
    return {name: values for name, get in fields.items() if len(values := {repr(get(c)) for c in copies}) > 1}


def explain(upload_ids: list[uuid.UUID], by_upload: dict, workers) -> str:
    """For uploads decided wrongly or differently: each copy in the order decided, and the workers' log lines
    about them (the duplicate checks) and about partitions and table recovery, in time order."""
    lines = []
    for upload_id in upload_ids[:4]:
        copies = sorted(by_upload[upload_id], key=lambda c: c.processed_at)
        lines.append(f"{upload_id}: {differences(copies)}")
        lines += [f"    decided {c.processed_at:%H:%M:%S.%f}: {c.duplicate_kind} {c.duplicate_of}" for c in copies]
    ids = {str(upload_id) for upload_id in upload_ids} | {
        str(c.duplicate_of) for upload_id in upload_ids for c in by_upload[upload_id] if c.duplicate_of
    }
    wanted = ("assigned", "revok", "recovery complete", "reading starts", "killed", "stopping")
    logged = []
    for worker in workers.workers:
        for line in worker.output().splitlines():
            if any(upload_id in line for upload_id in ids) or any(word in line.lower() for word in wanted):
                logged.append(f"{worker.log.name}: {line[:300]}")
    return "\n".join(lines + sorted(logged, key=lambda line: line.split(": ", 1)[1])[-300:])


def c_fields(metadata) -> list[str]:
    return list(type(metadata).__dataclass_fields__)


@pytest.fixture(scope="module", autouse=True)
def print_table():
    yield
    if TABLE:
        columns = list(TABLE[0])
        lines = [" | ".join(columns), " | ".join("---" for _ in columns)]
        lines += [" | ".join(str(row[c]) for c in columns) for row in TABLE]
        print("\nworker failover runs:\n" + "\n".join(lines))


def photographers_on_distinct_partitions(unique_name, count: int) -> list[str]:
    """Photographer ids on ``count`` different partitions: each of two workers owns some of them."""
    chosen: dict[int, str] = {}
    while len(chosen) < count:
        name = unique_name("ph")
        chosen.setdefault((murmur2(name.encode()) & 0x7FFFFFFF) % PARTITIONS, name)
    return list(chosen.values())


def near_copy(data: bytes) -> bytes:
    image = Image.open(io.BytesIO(data))
    out = io.BytesIO()
    image.resize((image.width * 9 // 10, image.height * 9 // 10)).save(out, "JPEG", quality=70)
    return out.getvalue()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kill_after", KILL_MOMENTS[:RUNS], ids=lambda share: f"kill-after-{share:.0%}")
async def test_a_killed_worker_loses_nothing_and_decides_nothing_twice(
    gateway, workers, local_stack, unique_name, kill_after
):
    names = photographers_on_distinct_partitions(unique_name, PHOTOGRAPHERS)
    keys = {name: await gateway.services.keys.create(name) for name in names}
    reader = OutputReader(local_stack.kafka)
    who = set(names)
    first_worker, _second = workers.start(), workers.start()
    originals: dict[str, bytes] = {}
    expected_duplicate: dict[uuid.UUID, uuid.UUID] = {}
    accepted: list[uuid.UUID] = []

    def processed_ids(r: OutputReader) -> set[uuid.UUID]:
        return {event.upload_id for event in r.of(PHOTO_PROCESSED, who)}

    try:
        # Every photographer's first photo, processed before anything breaks.
        for index, name in enumerate(names):
            originals[name] = photo(1000 + index, size=(1600, 1200))
            (item,) = await upload(gateway, keys[name], ("first.jpg", originals[name]))
            accepted.append(uuid.UUID(item["upload_id"]))
        firsts = dict(zip(names, accepted, strict=True))
        assert reader.poll_until(lambda r: processed_ids(r) >= set(accepted), timeout=120), workers.logs()

        # A stream of distinct photos from everyone at once; one worker dies part-way through.
        async def send_all(name: str, offset: int) -> list[uuid.UUID]:
            files = [(f"{i}.jpg", photo(offset + i, size=(1600, 1200))) for i in range(PHOTOS_EACH)]
            return [uuid.UUID(item["upload_id"]) for item in await upload(gateway, keys[name], *files)]

        batches = await asyncio.gather(*(send_all(name, 2000 + 100 * i) for i, name in enumerate(names)))
        stream = [upload_id for batch in batches for upload_id in batch]
        accepted.extend(stream)
        threshold = max(1, round(len(stream) * kill_after))
        assert reader.poll_until(lambda r: len(processed_ids(r) & set(stream)) >= threshold, timeout=120)
        first_worker.kill()
        killed_at = time.monotonic()
        # What the kill hit: uploads accepted and not processed yet, offsets not committed yet.
        in_flight = len(set(stream) - processed_ids(reader))
        lag = await asyncio.to_thread(uncommitted, local_stack.kafka, workers.app_id)

        # Near-copies of each first photo, sent after the kill: the duplicate table must have
        # followed the dead worker's partitions to the survivor.
        for name in names:
            (item,) = await upload(gateway, keys[name], ("again.jpg", near_copy(originals[name])))
            copy_id = uuid.UUID(item["upload_id"])
            accepted.append(copy_id)
            expected_duplicate[copy_id] = firsts[name]

        done = reader.poll_until(lambda r: processed_ids(r) >= set(accepted), timeout=240)
        recovered_in = time.monotonic() - killed_at
        events = reader.of(PHOTO_PROCESSED, who)
        failures = reader.of(PHOTO_FAILED, who)
        variants = reader.of(PHOTO_VARIANTS, who)
    finally:
        reader.close()

    by_upload: dict[uuid.UUID, list[ImageProcessed]] = defaultdict(list)
    for event in events:
        by_upload[event.upload_id].append(event)
    lost = set(accepted) - set(by_upload)
    replayed = sum(len(copies) - 1 for copies in by_upload.values())
    inconsistent = [
        upload_id
        for upload_id, copies in by_upload.items()
        if len({(c.duplicate_of, c.duplicate_kind, c.phash, c.metadata) for c in copies}) > 1
    ]
    # A replay that decided or rendered differently would make a second image of one upload.
    digests: dict[tuple[uuid.UUID, str, str], set[str]] = defaultdict(set)
    for variant in variants:
        digests[(variant.upload_id, variant.variant, variant.format)].add(variant.sha256)
    doubled = set(inconsistent) | {key[0] for key, shas in digests.items() if len(shas) > 1}
    row = {
        "kill after": f"{kill_after:.0%}",
        "accepted": len(accepted),
        "processed": len(by_upload),
        "in flight at the kill": in_flight,
        "uncommitted at the kill": lag,
        "lost": len(lost),
        "doubled": len(doubled),
        "replayed": replayed,
        "failed": len(failures),
        "done after the kill (s)": f"{recovered_in:.1f}",
    }
    TABLE.append(row)
    print(f"\nworker failover: {row}")
    assert done, workers.logs()
    assert in_flight > 0, "the kill landed when nothing was in flight: it proves nothing"
    assert lag > 0, "every offset was committed at the kill: nothing could be replayed"
    assert replayed > 0, "no upload was processed again: replay safety was not exercised"
    assert not lost
    assert not failures
    assert not inconsistent, explain(inconsistent, by_upload, workers)
    assert set(by_upload) == set(accepted)
    wrong = [
        copy_id
        for copy_id, original_id in expected_duplicate.items()
        if {c.duplicate_of for c in by_upload[copy_id]} != {original_id}
    ]
    assert not wrong, explain(wrong, by_upload, workers)
    assert all(c.duplicate_of is None for upload_id in stream for c in by_upload[upload_id])
    # Every variant rendered twice is byte-identical: a replay rewrites the same objects.
    assert not doubled
    assert len(digests) == 5 * len(accepted)
    assert all(len(shas) == 1 for shas in digests.values())
