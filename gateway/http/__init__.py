"""HTTP in, answers out: the route table, each route family's handlers (Segment's `/v1`,
pixels, webhooks, Commanders Act, Intilery), body reading, auth, CORS, health, and the
API's own documents. Hands decoded bodies to `gateway.ingest`, entries to `gateway.store`."""
