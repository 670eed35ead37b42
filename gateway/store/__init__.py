"""Where entries go and stay: the group commit, the writers (one node, a cluster), the
RESP connection, dedupe, the disk spool and its replay, the rejected stream, rate-limit
state in Redis."""
