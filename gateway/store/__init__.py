"""Where entries go and stay: the group commit, the writers (one node, a cluster), the
RESP connection, the dedupe and rate-limit Lua scripts, the disk spool and its replay,
the rejected stream, rate-limit state in Redis, and the gauges read from them when
scraped."""
