"""The event contract: Avro schemas (``.avsc``) and the one serde module every service uses."""
