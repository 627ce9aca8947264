"""photostream: a photo-ingestion pipeline on Kafka.

This package holds what every service shares: settings and the command line.
The services themselves live in ``producers``, ``streams`` and ``sinks``.
"""

__version__ = "0.1.0"
