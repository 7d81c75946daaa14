/* The gRPC method paths ("/<package>.<Service>/<Method>") of the services the roles serve
 * and call: proto/pgcapture.proto's DBLogGateway, DBLogController and
 * DBLogControllerAdmin, and grpc.health.v1. Written here once; tests/unit/test_proto.c
 * checks the pgcapture ones against the generated service descriptors. */
#ifndef PGC_RPC_METHODS_H
#define PGC_RPC_METHODS_H

#define RPC_METHOD_CAPTURE "/pgcapture.DBLogGateway/Capture"
#define RPC_METHOD_PULL_DUMP_INFO "/pgcapture.DBLogController/PullDumpInfo"
#define RPC_METHOD_SCHEDULE "/pgcapture.DBLogController/Schedule"
#define RPC_METHOD_STOP_SCHEDULE "/pgcapture.DBLogController/StopSchedule"
#define RPC_METHOD_SET_SCHEDULE_COOL_DOWN "/pgcapture.DBLogController/SetScheduleCoolDown"
#define RPC_METHOD_ADMIN_STATUS "/pgcapture.DBLogControllerAdmin/Status"
#define RPC_METHOD_HEALTH_CHECK "/grpc.health.v1.Health/Check"
#define RPC_METHOD_HEALTH_WATCH "/grpc.health.v1.Health/Watch"

#endif
