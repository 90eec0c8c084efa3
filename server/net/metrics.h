// File: server/net/metrics.h
// -----------------------------------------------------------------------------
// Prometheus metrics on their own HTTP port (--metrics_listen, default
// 127.0.0.1:9464, path /metrics): prometheus-cpp's registry and text format, served by
// cpp-httplib (HTTPS and basic auth when asked: MetricsSecurity; prometheus-cpp's own
// server crashes in TLS against Debian 12's OpenSSL 3). Names as operators expect them
// (docs/DEPLOY.md, "Metrics", lists every one):
//
//   grpc_server_started_total{grpc_service,grpc_method,grpc_type}     go-grpc-prometheus's
//   grpc_server_handled_total{...,grpc_code="OK"}                      names and labels; methods
//   grpc_server_handling_seconds{...} (histogram)                      we do not serve: "unknown"
//   alignd_build_info{version,revision}                                1
//   alignd_sessions{state}                                             sessions by state
//   alignd_log_lines_dropped_total                                     stderr not read (log.h)
//   per session {session,rule}, while it runs and --metrics_retain_finished_s after it ends:
//   alignd_session_steps_total (steps this process trained: rate() = steps/s), _step,
//   _total_steps, _loss, _accuracy_ratio, _nse, _eval_error_ratio, _eval_nse,
//   _update_angle_degrees{layer}
//
// The session figures are read from the sessions at scrape time. Thread-safe.
#ifndef ALIGND_SERVER_NET_METRICS_H_
#define ALIGND_SERVER_NET_METRICS_H_

#include <google/protobuf/descriptor.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "server/sessions/session_manager.h"

namespace httplib {
class Server;
}

namespace alignd::server {

// How /metrics is protected off loopback (docs/DEPLOY.md): TLS from a certificate and
// key, and HTTP basic auth from a file of "user sha256(password)" lines.
struct MetricsSecurity {
  std::string tls_cert;
  std::string tls_key;
  std::string basic_auth_file;
};

// "user sha256hex" lines (# comments) -> user -> hash; InvalidArgument naming the line.
absl::StatusOr<std::map<std::string, std::string>> ParseBasicAuthFile(const std::string& path);

struct MetricsOptions {
  MetricsSecurity security;
  // Per-session series last this long after a session ends (then only alignd_sessions
  // counts it).
  double retain_finished_s = 300;
};

// An RPC's labels: its service, method and kind, or "unknown" for what this binary does not
// serve.
struct RpcLabels {
  std::string service = "unknown";
  std::string method = "unknown";
  std::string type = "unknown";
};
RpcLabels LabelsOf(const std::string& path);  // "/alignd.v1.TrainingService/CreateSession"
// The descriptor of "/package.Service/Method" if it is one of the generated services
// linked into this binary; null otherwise (the RPC log and LabelsOf).
const google::protobuf::MethodDescriptor* ServedMethod(const std::string& path);

class ServiceMetrics {
 public:
  // Serves /metrics on `address` ("host:port", port 0 picks a free one). `sessions` must
  // outlive this. Returns Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ServiceMetrics>> Start(const std::string& address,
                                                               SessionManager* sessions,
                                                               const MetricsOptions& options = {});
  ~ServiceMetrics();

  void ObserveStart(const RpcLabels& labels);
  void ObserveHandled(const RpcLabels& labels, int code, double seconds);
  int port() const;

 private:
  ServiceMetrics() = default;
  class SessionCollector;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<SessionCollector> sessions_;
  prometheus::Family<prometheus::Counter>* started_ = nullptr;
  prometheus::Family<prometheus::Counter>* handled_ = nullptr;
  prometheus::Family<prometheus::Histogram>* handling_ = nullptr;
  // The HTTP(S) server (cpp-httplib) and the thread it listens on.
  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  int port_ = 0;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_NET_METRICS_H_
