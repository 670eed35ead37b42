"""The worker side: from the gateway's streams to destinations, at least once.

`consumer` reads a consumer group over every partition and acknowledges an entry only once
every destination it routes to (`routing`) accepted it; `deadletters` keeps what failed too
often, `redrive` sends it again; `status` reports streams and groups; `destinations` holds
the `Destination` interface and the built-ins; `config` builds destinations from flags or a
TOML file; `cli` adds `gateway worker`, `gateway status` and `gateway dead-letters`.
"""
