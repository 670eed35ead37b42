"""The worker side: from the gateway's streams to destinations, at least once.

- `consumer`: a consumer group over every partition; acknowledges an entry once every
  destination it routes to accepted it; reclaims, counts attempts, dead-letters.
- `dispatch` and `routing`: which destinations a message reaches (`integrations`), and
  sending a batch to each of them.
- `destinations`: the `Destination` interface and the built-ins (`http`, `file`, `stdout`).
- `config`: destinations from the command line or a TOML file.
- `deadletters` and `redrive`: what a group gave up on, and sending it again.
- `status`: stream lengths, pending counts and lag.
- `cli` and `run`: `gateway worker`, `gateway status`, `gateway dead-letters`.
"""
