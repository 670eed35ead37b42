"""A Segment-style event collection gateway: HTTP tracking API into Redis Streams."""

__version__ = "0.1.0"
