// File: server/rpc_log.h
// -----------------------------------------------------------------------------
// A server interceptor that writes one JSON log line per RPC when its status is
// sent: method, gRPC code, message (if not OK), duration in milliseconds and peer.
#ifndef ALIGND_SERVER_RPC_LOG_H_
#define ALIGND_SERVER_RPC_LOG_H_

#include <grpcpp/support/server_interceptor.h>

namespace alignd::server {

class RpcLogFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_RPC_LOG_H_
