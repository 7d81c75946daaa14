#!/usr/bin/python3
"""pgcapture's Python client setup over TLS with a bearer token: Debian's python3-grpcio,
grpc.ssl_channel_credentials with the test CA and the token as call metadata, stubs
generated at test time from proto/pgcapture.proto (PYTHONPATH). Reads COUNT changes of
table t (column id int4), checks their ids are FIRST, FIRST+1, ... and acks them; exits 0.
When the gateway ends the stream instead, prints its status and exits 3.
The token comes from the environment (PGC_TEST_TOKEN), never the command line.
Usage: compat_tls.py HOST:PORT CA_FILE URI FIRST COUNT"""
import os
import queue
import struct
import sys
import time

import grpc

import pgcapture_pb2 as pb


def main():
    addr, ca, uri, first, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    with open(ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    channel = grpc.secure_channel(addr, creds)
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

    requests.put(pb.CaptureRequest(init=pb.CaptureInit(uri=uri)))
    metadata = (("authorization", "Bearer " + os.environ["PGC_TEST_TOKEN"]),)
    stream = capture(request_iter(), timeout=60, metadata=metadata)
    got = 0
    try:
        for msg in stream:
            ch = msg.change
            if ch.table != "t":
                continue
            ident = None
            for fld in ch.new:
                if fld.name == "id":
                    ident = struct.unpack(">i", fld.binary)[0]
            if ident != first + got:
                print("compat_tls: change %d has id %r, expected %d" % (got, ident, first + got),
                      file=sys.stderr)
                sys.exit(1)
            requests.put(pb.CaptureRequest(ack=pb.CaptureAck(checkpoint=msg.checkpoint)))
            got += 1
            if got == count:
                break
    except grpc.RpcError as e:
        print("compat_tls: status %s: %s" % (e.code().name, e.details()))
        sys.exit(3)
    time.sleep(0.5)  # let the acks reach the gateway
    requests.put(None)
    stream.cancel()
    print("compat_tls: %d changes checked and acked" % got)


if __name__ == "__main__":
    main()
