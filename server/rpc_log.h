// File: server/rpc_log.h
// -----------------------------------------------------------------------------
// A server interceptor that writes one JSON log line per RPC when its status is
// sent (method, gRPC code, message if not OK, duration in milliseconds, peer, the call's
// own principal) and
// counts it in the Prometheus metrics.
#ifndef ALIGND_SERVER_RPC_LOG_H_
#define ALIGND_SERVER_RPC_LOG_H_

#include <grpcpp/support/server_interceptor.h>

namespace alignd::server {

class Identifier;
class ServiceMetrics;

// `metrics` may be null (no Prometheus endpoint); `identifier` names each call's principal
// in its line (null: "-"). Both must outlive the server.
class RpcLogFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcLogFactory(ServiceMetrics* metrics = nullptr, const Identifier* identifier = nullptr)
      : metrics_(metrics), identifier_(identifier) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  ServiceMetrics* metrics_;
  const Identifier* identifier_;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_RPC_LOG_H_
