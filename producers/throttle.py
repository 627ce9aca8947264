"""Failed authentications per client address, to slow down key guessing and 401 floods.

A client address that failed ``limit`` times within the last ``window`` seconds is
blocked until the oldest of those failures leaves the window. Blocked requests are not
counted again, so a client that waits as told gets back in. IPv6 clients are counted per
/64, the block one host usually owns. Addresses are remembered in a bounded cache: a
flood from very many addresses forgets the quietest first rather than grow memory.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import deque
from collections.abc import Callable

from cachetools import TTLCache

# Client addresses tracked at once.
MAX_CLIENTS = 100_000


def client_id(remote: str | None) -> str:
    """What failures are counted against: the IPv4 address, or the IPv6 /64."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return remote or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class FailureLimiter:
    """Counts failures per client in a sliding window and says when a client must wait."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Block a client after ``limit`` failures within ``window`` seconds; ``clock`` for tests."""
        self._limit = limit
        self._window = window
        self._clock = clock
        # An entry lives a window past its last failure; by then every timestamp in it has expired.
        self._failures: TTLCache[str, deque[float]] = TTLCache(maxsize=max_clients, ttl=window, timer=clock)

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.get(client)
        if failures is None:
            return deque(maxlen=self._limit)
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        return failures

    def retry_after(self, remote: str | None) -> int | None:
        """Whole seconds the client must wait, or None when it may try."""
        now = self._clock()
        failures = self._recent(client_id(remote), now)
        if len(failures) < self._limit:
            return None
        return max(1, math.ceil(failures[0] + self._window - now))

    def failed(self, remote: str | None) -> None:
        """Count one failure of the client."""
        client = client_id(remote)
        now = self._clock()
        failures = self._recent(client, now)
        failures.append(now)
        self._failures[client] = failures  # (re)sets the entry's expiry: a window after this failure
