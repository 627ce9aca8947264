"""Every published version of each schema, kept as files so a change can be checked without git.

Layout: ``history/<Record>.v<N>.avsc`` for N = 1, 2, 3, ... with no gap, one file per published
version of ``<Record>.avsc``. The newest entry is a byte-for-byte copy of the current file, so any
edit to a schema, even to a ``doc``, needs a new entry: the file's text is what a schema registry
registers as a new version. Published entries are never edited, renumbered or removed: a topic may
still hold messages written with any of them, and single-object encoding names its writer only by
fingerprint, which ``schemas.catalog`` finds among these files.

The checks compare files only, so they work the same in a shallow clone, a tarball or an installed
wheel. Each current schema must read data written with every published version (backward
compatibility, transitively: Confluent's ``BACKWARD_TRANSITIVE``). The events of the topics other
services subscribe to (``SUBSCRIBABLE_TOPICS``) must also be readable with every published version
(forward compatibility too, so ``FULL_TRANSITIVE``): a subscriber still on an older copy of a schema
keeps reading new events, once it has their writer schema (found by fingerprint, see
docs/subscribers.md). ``photo-variants`` is internal, and its consumer is deployed with the workers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources.abc import Traversable

from schemas.catalog import HISTORY_DIR, PACKAGE, parse_schema_text
from schemas.compat import backward_incompatibilities
from schemas.errors import SchemaLoadError
from schemas.topics import EVENT_BY_TOPIC, SUBSCRIBABLE_TOPICS

SUBSCRIBED_RECORDS = frozenset(EVENT_BY_TOPIC[topic].__name__ for topic in SUBSCRIBABLE_TOPICS)
"""Records read by other services: checked in both directions against every published version."""

_ENTRY = re.compile(r"(?P<record>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<number>[1-9][0-9]*)\.avsc")


@dataclass(frozen=True, slots=True)
class PublishedVersion:
    """One entry of ``history/``.

    Attributes:
        record: The schema's file stem, e.g. ``UploadReceived``.
        number: Its version, counted from 1.
        data: The file's bytes.
    """

    record: str
    number: int
    data: bytes

    @property
    def path(self) -> str:
        """Where the entry lives, relative to the repository."""
        return entry_path(self.record, self.number)


def entry_path(record: str, number: int) -> str:
    """The repository path of version ``number`` of ``record``.

    Args:
        record: The schema's file stem.
        number: The version.

    Returns:
        E.g. ``schemas/history/UploadReceived.v2.avsc``.
    """
    return f"{PACKAGE}/{HISTORY_DIR}/{record}.v{number}.avsc"


def _avsc(folder: Traversable) -> list[Traversable]:
    if not folder.is_dir():
        return []
    return sorted((f for f in folder.iterdir() if f.is_file() and f.name.endswith(".avsc")), key=lambda f: f.name)


def current_records(root: Traversable) -> list[str]:
    """The stems of the current schema files in ``root``, sorted.

    Args:
        root: The ``schemas`` package folder (or a copy of it).

    Returns:
        E.g. ``["ImageProcessed", ..., "VariantRendered"]``.
    """
    return [f.name.removesuffix(".avsc") for f in _avsc(root)]


def published_versions(root: Traversable) -> dict[str, list[PublishedVersion]]:
    """Read ``history/``, grouped by schema, oldest version first.

    Args:
        root: The ``schemas`` package folder (or a copy of it).

    Returns:
        File stem to its entries; files not named ``<Record>.v<N>.avsc`` are left out (see
        ``stray_entries``).
    """
    versions: dict[str, list[PublishedVersion]] = {}
    for f in _avsc(root / HISTORY_DIR):
        match = _ENTRY.fullmatch(f.name)
        if match:
            entry = PublishedVersion(match["record"], int(match["number"]), f.read_bytes())
            versions.setdefault(entry.record, []).append(entry)
    return {record: sorted(entries, key=lambda e: e.number) for record, entries in versions.items()}


def stray_entries(root: Traversable) -> list[str]:
    """Files in ``history/`` that are not a version of a current schema.

    ``schemas.catalog`` loads every ``history/*.avsc`` as a writer, so a misnamed file would be
    shipped but never checked.

    Args:
        root: The ``schemas`` package folder (or a copy of it).

    Returns:
        One line per such file; empty when there is none.
    """
    records = set(current_records(root))
    problems = []
    for f in _avsc(root / HISTORY_DIR):
        where = f"{PACKAGE}/{HISTORY_DIR}/{f.name}"
        match = _ENTRY.fullmatch(f.name)
        if match is None:
            problems.append(f"{where}: name it <Record>.v<N>.avsc, N counted from 1")
        elif match["record"] not in records:
            problems.append(f"{where}: there is no {PACKAGE}/{match['record']}.avsc it could be a version of")
    return problems


def history_problems(root: Traversable, record: str) -> list[str]:
    """Check one schema against its published versions.

    Args:
        root: The ``schemas`` package folder (or a copy of it).
        record: The schema's file stem, e.g. ``UploadReceived``.

    Returns:
        One line per problem, each saying what to do: no published version, a gap in the
        numbering, a current file that differs from its newest entry, an entry that is not a
        version of this record, an entry whose data the current schema cannot read, or, for a
        subscribed record, an entry that cannot read the current schema's data. Empty when the
        history is complete and every version is readable both ways where it must be.
    """
    current_path = f"{PACKAGE}/{record}.avsc"
    current = (root / f"{record}.avsc").read_bytes()
    entries = published_versions(root).get(record, [])
    if not entries:
        return [f"{current_path} has no published version: copy it to {entry_path(record, 1)}"]
    problems = []
    numbers = [e.number for e in entries]
    if numbers != list(range(1, len(entries) + 1)):
        listed = ", ".join(f"v{n}" for n in numbers)
        problems.append(
            f"{PACKAGE}/{HISTORY_DIR}/ has {record} {listed}: versions count 1, 2, 3, ... with none"
            " missing; restore the missing ones, published versions are never removed or renumbered"
        )
    newest = entries[-1]
    if newest.data != current:
        problems.append(
            f"{current_path} changed since its newest published version {newest.path}: copy"
            f" {current_path} to {entry_path(record, newest.number + 1)} (never edit a published version)"
        )
    current_text = current.decode("utf-8")
    name = parse_schema_text(current_text).name
    for entry in entries:
        try:
            old_name = parse_schema_text(entry.data.decode("utf-8")).name
        except (SchemaLoadError, UnicodeDecodeError) as exc:
            problems.append(f"{entry.path}: {exc}")
            continue
        if old_name != name:
            problems.append(f"{entry.path} defines {old_name}, {current_path} defines {name}")
            continue
        problems.extend(
            f"{current_path} cannot read data written with {entry.path}: {problem}"
            for problem in backward_incompatibilities(entry.data.decode("utf-8"), current_text)
        )
        if record in SUBSCRIBED_RECORDS:
            problems.extend(
                f"a subscriber on {entry.path} cannot read data written with {current_path}: {problem}"
                for problem in backward_incompatibilities(current_text, entry.data.decode("utf-8"))
            )
    return problems
