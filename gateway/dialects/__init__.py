"""Other vendors' tracking APIs, each an adapter in front of the same ingest path."""
