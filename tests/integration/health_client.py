#!/usr/bin/python3
"""A grpc.health.v1 client as any operator's tooling would be: Debian's python3-grpcio and
messages generated at test time from proto/health.proto (PYTHONPATH).
  health_client.py HOST:PORT check SERVICE    prints SERVING, NOT_SERVING or the error code
  health_client.py HOST:PORT watch SERVICE S  prints each status as it comes, for S seconds"""
import sys

import grpc

import health_pb2 as pb


def main():
    addr, verb, service = sys.argv[1], sys.argv[2], sys.argv[3]
    channel = grpc.insecure_channel(addr)
    name = pb.HealthCheckResponse.ServingStatus.Name
    if verb == "check":
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=pb.HealthCheckRequest.SerializeToString,
            response_deserializer=pb.HealthCheckResponse.FromString,
        )
        try:
            print(name(check(pb.HealthCheckRequest(service=service), timeout=5).status))
        except grpc.RpcError as e:
            print("code=" + e.code().name)
        return
    watch = channel.unary_stream(
        "/grpc.health.v1.Health/Watch",
        request_serializer=pb.HealthCheckRequest.SerializeToString,
        response_deserializer=pb.HealthCheckResponse.FromString,
    )
    try:
        for resp in watch(pb.HealthCheckRequest(service=service), timeout=float(sys.argv[4])):
            print(name(resp.status), flush=True)
    except grpc.RpcError as e:
        print("code=" + e.code().name, flush=True)


if __name__ == "__main__":
    main()
