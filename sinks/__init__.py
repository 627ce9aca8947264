"""Sink consumers: variant objects into S3, metadata and timings into ClickHouse."""
