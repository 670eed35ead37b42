from tests.conftest import stream_messages

async def test_track(client, redis):
    r = await client.post("/v1/track", json={"userId": "u1", "event": "E", "properties": {"a": 1}})
    assert r.status == 200, await r.text()
    assert await r.json() == {"success": True}
    msgs = await stream_messages(redis)
    print(msgs)
    assert msgs[0]["event"] == "E"
