"""The event contract: Avro schemas (``.avsc``) and the one serde module every service uses.

Import the records from ``schemas.events``, topic names from ``schemas.topics``, the serde from
``schemas.serde`` and its errors from ``schemas.errors``. The package imports fastavro only;
confluent-kafka's registry client is loaded lazily when a registry URL is configured.
"""
