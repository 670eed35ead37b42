"""The control plane: the admin listener beside the public one, and what it changes.

The admin listener (`--admin-host`/`--admin-port`) answers only with the admin token
(`token`, `auth`). Its routes manage sources and keys at run time (`api`, kept in Redis by
`store` as `records`); every gateway process holds the whole sources table in memory and
replaces it when the admin API or the sources file changes it (`live`). `gateway sources`
is the command line of the same API (`cli`). Docs: docs/admin.md.

Dependencies: control uses ingest, store and ops, never http; the top level (`gateway.app`,
`gateway.server`) assembles both listeners.
"""
