#!/usr/bin/python3
"""Runs pgcapture's own Python client (the `python/` directory of the Go project, put on
PYTHONPATH by the test) against our gateway in per-change mode, unchanged: reads the four
changes test_gateway_upstream_python_client writes, checks the values the client decoded,
and lets the client ack each one. Usage: compat_upstream.py HOST:PORT URI"""
import asyncio
import sys

from pgcapture import PGCaptureClient

# op (0 INSERT, 1 UPDATE), id, v, n as the upstream decoders return them
WANT = [
    (0, 1, "row 1", 10000000000),
    (0, 2, "row 2", 20000000000),
    (0, 3, "row 3", 30000000000),
    (1, 2, "py", 20000000000),
]


def fail(msg):
    print("compat_upstream: " + msg, file=sys.stderr)
    sys.exit(1)


async def capture(addr, uri, got):
    client = PGCaptureClient(addr, uri, TableRegex="^t$")
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def handler(msg):
        ch = msg["change"]
        got.append((ch["op"], ch["schema"], ch["table"],
                    {f["name"]: f["value"] for f in ch["new"]}))
        if len(got) == len(WANT) and not done.done():
            # The client writes the ack after the handler returns: give it time to.
            loop.call_later(0.5, done.set_result, None)

    task = asyncio.ensure_future(client.capture(handler))
    try:
        await asyncio.wait_for(asyncio.shield(done), 60)
    except asyncio.TimeoutError:
        pass
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


def main():
    addr, uri = sys.argv[1], sys.argv[2]
    got = []
    asyncio.run(capture(addr, uri, got))
    if len(got) != len(WANT):
        fail("received %d changes, expected %d: %r" % (len(got), len(WANT), got))
    for i, ((op, ident, v, n), (gop, schema, table, new)) in enumerate(zip(WANT, got)):
        if (gop, schema, table) != (op, "public", "t"):
            fail("change %d: op %r on %s.%s" % (i, gop, schema, table))
        if new.get("id") != ident or new.get("v") != v or new.get("n") != n:
            fail("change %d: decoded %r, expected id=%r v=%r n=%r" % (i, new, ident, v, n))
    print("compat_upstream: %d changes decoded by pgcapture's client and acked" % len(got))


if __name__ == "__main__":
    main()
