"""A TCP proxy that cuts connections mid-request, for tests of resumable uploads."""

from __future__ import annotations

import contextlib
import socket
import threading


class CuttingProxy:
    """Forwards to a local port and breaks the connection once ``cut_after`` bytes went from client to server.

    The cut lands mid-request: the server has taken part of a request body and not the rest.
    ``sent`` counts every byte clients sent through the proxy, cut or not.
    """

    def __init__(self, upstream_port: int, cut_after: int, *, once: bool = False) -> None:
        """Listen on a free port; with ``once``, connections made after the cut pass untouched."""
        self.cut_after = cut_after
        self.once = once
        self.forwarded = 0  # client bytes counted towards the cut
        self.sent = 0
        self.cut = threading.Event()
        self._upstream = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._upstream))
            cutting = not (self.once and self.cut.is_set())
            threading.Thread(target=self._pump, args=(client, server, True, cutting), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool, cutting: bool) -> None:
        try:
            while data := source.recv(65536):
                if cutting:
                    room = self.cut_after - self.forwarded
                    if room <= 0 or self.cut.is_set():
                        break
                    data = data[:room]
                    self.forwarded += len(data)
                if upstream:
                    self.sent += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            if cutting and self.forwarded >= self.cut_after:
                self.cut.set()
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def close(self) -> None:
        """Stop accepting connections."""
        self._listener.close()
