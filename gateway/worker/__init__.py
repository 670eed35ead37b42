"""The worker side: from the gateway's streams to destinations, at least once.

- `consumer`: a consumer group over every partition: reads, reclaims, counts attempts.
- `outcomes`: what becomes of a batch read: acknowledged once every destination it routes
  to accepted it, left pending for a retry, or dead-lettered.
- `dispatch` and `routing`: which destinations a message reaches (`integrations`), and
  sending a batch to each of them.
- `destinations`: the `Destination` interface and the built-ins (`http`, `file`, `stdout`).
- `config`: destinations from the command line or a TOML file.
- `deadletters` and `redrive`: what a group gave up on, and sending it again.
- `status`: stream lengths, pending counts and lag.
- `cli`, `settings` and `run`: `gateway worker`, `gateway status`, `gateway dead-letters`.
"""
