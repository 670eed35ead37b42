"""Other vendors' message formats mapped to Segment messages (no HTTP, no Redis):
Commanders Act's events and Intilery's bodies. Their routes live in `gateway.http`."""
