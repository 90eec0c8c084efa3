// File: server/net/rpc_log.h
// -----------------------------------------------------------------------------
// A server interceptor that writes one JSON log line per RPC when its status is
// sent (method, gRPC code, message if not OK, duration in milliseconds, peer, the call's
// own principal), counts it in the Prometheus metrics and keeps the number of calls in
// flight (what shutdown waits for).
#ifndef ALIGND_SERVER_NET_RPC_LOG_H_
#define ALIGND_SERVER_NET_RPC_LOG_H_

#include <grpcpp/support/server_interceptor.h>

#include <atomic>
#include <cstdint>
#include <memory>

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

  // Calls from their handler's start until the call is gone, shared so that it can be read
  // after the builder has taken the factory.
  std::shared_ptr<const std::atomic<int64_t>> in_flight() const { return in_flight_; }

 private:
  ServiceMetrics* metrics_;
  const Identifier* identifier_;
  std::shared_ptr<std::atomic<int64_t>> in_flight_ = std::make_shared<std::atomic<int64_t>>(0);
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_NET_RPC_LOG_H_
