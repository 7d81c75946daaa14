#!/usr/bin/python3
"""A Capture client written as an independent implementation would be: Debian's
python3-grpcio and stubs generated at test time from proto/pgcapture.proto (PYTHONPATH).
Reads the five changes test_gateway_python_client_compat writes, checks their values and
the shape of a REPLICA IDENTITY FULL update (docs/protocol.md, "Rows and values": the
unchanged TOAST column filled in `new`, NULL columns absent from `old`) and acks them.
Usage: compat_capture.py HOST:PORT URI"""
import hashlib
import queue
import struct
import sys

import grpc
from google.protobuf import struct_pb2

import pgcapture_pb2 as pb


def fail(msg):
    print("compat_capture: " + msg, file=sys.stderr)
    sys.exit(1)


def fields(row):
    out = {}
    for f in row:
        kind = f.WhichOneof("value")
        out[f.name] = (f.oid, kind, f.binary if kind == "binary" else f.text if kind else None)
    return out


# The 102,400-byte body of tf, as the test writes it: md5(i::text) for i in 1..3200.
BODY = "".join(hashlib.md5(str(i).encode()).hexdigest() for i in range(1, 3201)).encode()


def check_full_update(ch):
    """tf (id int, n int, note text, body text), REPLICA IDENTITY FULL: UPDATE of n from 1
    to 2 leaving the TOASTed body unchanged and note NULL."""
    if ch.table != "tf" or ch.op != pb.Change.UPDATE:
        fail("change 4: %s op %d, expected an UPDATE of tf" % (ch.table, ch.op))
    new, old = fields(ch.new), fields(ch.old)
    if [f.name for f in ch.new] != ["id", "n", "note", "body"]:
        fail("tf new fields %r" % [f.name for f in ch.new])
    if [f.name for f in ch.old] != ["id", "n", "body"]:
        fail("tf old fields %r (NULL note must be absent)" % [f.name for f in ch.old])
    if struct.unpack(">i", new["n"][2])[0] != 2 or struct.unpack(">i", old["n"][2])[0] != 1:
        fail("tf n: new %r old %r" % (new["n"], old["n"]))
    if new["note"][1] is not None:
        fail("tf new note %r, expected NULL" % (new["note"],))
    for row, f in (("new", new), ("old", old)):
        if f["body"][0] != 25 or f["body"][1] != "binary" or f["body"][2] != BODY:
            fail("tf %s body: %d bytes, not the 102400 written" % (row, len(f["body"][2] or b"")))


def main():
    addr, uri = sys.argv[1], sys.argv[2]
    channel = grpc.insecure_channel(addr)
    capture = channel.stream_stream(
        "/pgcapture.DBLogGateway/Capture",
        request_serializer=pb.CaptureRequest.SerializeToString,
        response_deserializer=pb.CaptureMessage.FromString,
    )
    requests = queue.Queue()

    def request_iter():
        while True:
            r = requests.get()
            if r is None:
                return
            yield r

    params = struct_pb2.Struct()
    params.update({"TableRegex": "^tf?$", "SomethingUnknown": 1})
    requests.put(pb.CaptureRequest(init=pb.CaptureInit(uri=uri, parameters=params)))
    stream = capture(request_iter(), timeout=60)
    want = [
        (pb.Change.INSERT, 1, b"row 1", 10000000000),
        (pb.Change.INSERT, 2, b"row 2", 20000000000),
        (pb.Change.INSERT, 3, b"row 3", 30000000000),
        (pb.Change.UPDATE, 2, b"py", 20000000000),
    ]
    got = 0
    for msg in stream:
        ch = msg.change
        if ch.schema != "public" or ch.table != ("t" if got < len(want) else "tf"):
            fail("unexpected table %s.%s" % (ch.schema, ch.table))
        if msg.checkpoint.lsn == 0 or len(msg.checkpoint.data) == 0:
            fail("change %d: checkpoint %r" % (got, msg.checkpoint))
        if got == len(want):
            check_full_update(ch)
            requests.put(pb.CaptureRequest(ack=pb.CaptureAck(checkpoint=msg.checkpoint)))
            got += 1
            break
        op, ident, v, n = want[got]
        f = fields(ch.new)
        if ch.op != op:
            fail("change %d: op %d, expected %d" % (got, ch.op, op))
        if f["id"][0] != 23 or struct.unpack(">i", f["id"][2])[0] != ident:
            fail("change %d: id %r" % (got, f["id"]))
        if f["v"][0] != 25 or f["v"][2] != v:
            fail("change %d: v %r" % (got, f["v"]))
        if f["n"][0] != 20 or struct.unpack(">q", f["n"][2])[0] != n:
            fail("change %d: n %r" % (got, f["n"]))
        requests.put(pb.CaptureRequest(ack=pb.CaptureAck(checkpoint=msg.checkpoint)))
        got += 1
    if got != len(want) + 1:
        fail("the stream ended after %d changes of %d" % (got, len(want) + 1))
    # Let the acks reach the gateway before closing the stream.
    import time
    time.sleep(0.5)
    requests.put(None)
    stream.cancel()
    print("compat_capture: %d changes checked and acked" % got)


if __name__ == "__main__":
    main()
