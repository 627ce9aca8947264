"""The contract package pulls in no Kafka client; the registry adapter is loaded only on demand."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KAFKA_CLIENTS = ("confluent_kafka", "aiokafka", "kafka", "faust", "mode")


def _modules_after(code: str) -> set[str]:
    # A fresh interpreter: this test process has already imported confluent_kafka elsewhere.
    script = textwrap.dedent(code) + "\nimport sys\nprint('\\n'.join(sys.modules))\n"
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return {name.split(".")[0] for name in out.split()}


def test_single_object_path_imports_no_kafka_client() -> None:
    modules = _modules_after(
        """
        import schemas, schemas.catalog, schemas.compat, schemas.errors, schemas.events, schemas.history, schemas.serde
        import schemas.single_object, schemas.topics
        from schemas.serde import EventSerde
        from tests.schemas.samples import ALL_EVENTS, topic_of
        serde = EventSerde()
        for event in ALL_EVENTS:
            assert serde.decode(serde.encode(event, topic_of(event)), topic_of(event)) == event
        """
    )
    assert not modules & set(KAFKA_CLIENTS), modules & set(KAFKA_CLIENTS)


def test_registry_path_imports_confluent_kafka_lazily() -> None:
    modules = _modules_after(
        """
        from schemas.serde import EventSerde
        EventSerde("mock://lazy")
        """
    )
    assert "confluent_kafka" in modules
