#!/usr/bin/python3
"""A Capture client written as an independent implementation would be: Debian's
python3-grpcio and stubs generated at test time from proto/pgcapture.proto (PYTHONPATH).
Reads the four changes test_gateway_python_client_compat writes, checks their values and
acks them.  Usage: compat_capture.py HOST:PORT URI"""
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
    params.update({"TableRegex": "^t$", "SomethingUnknown": 1})
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
        if ch.schema != "public" or ch.table != "t":
            fail("unexpected table %s.%s" % (ch.schema, ch.table))
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
        if msg.checkpoint.lsn == 0 or len(msg.checkpoint.data) == 0:
            fail("change %d: checkpoint %r" % (got, msg.checkpoint))
        requests.put(pb.CaptureRequest(ack=pb.CaptureAck(checkpoint=msg.checkpoint)))
        got += 1
        if got == len(want):
            break
    # Let the acks reach the gateway before closing the stream.
    import time
    time.sleep(0.5)
    requests.put(None)
    stream.cancel()
    print("compat_capture: %d changes checked and acked" % got)


if __name__ == "__main__":
    main()
