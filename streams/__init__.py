"""Faust agents and the pure image library they call (decode, metadata, hashes, variants)."""
