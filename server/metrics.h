// File: server/metrics.h
// -----------------------------------------------------------------------------
// Prometheus metrics on their own HTTP port (--metrics_listen, default
// 127.0.0.1:9464, path /metrics): prometheus-cpp's registry and text format, served by
// cpp-httplib (HTTPS and basic auth when asked: MetricsSecurity; prometheus-cpp's own
// server crashes in TLS against Debian 12's OpenSSL 3):
//
//   alignd_rpcs_total{method,code}                 RPCs answered
//   alignd_rpc_duration_seconds{method}            their latency (histogram)
//   alignd_sessions{state}                         sessions by state
//   alignd_session_steps_total{session,rule}       steps trained (rate() = steps/s)
//   alignd_session_loss{session,rule}              the last metric step's batch loss
//   alignd_session_accuracy / _nse                 on that batch
//   alignd_session_eval_error / _eval_nse          the last evaluation
//   alignd_session_update_angle_degrees{session,rule,layer}
//
// The session figures are read from the sessions at scrape time. Thread-safe.
#ifndef ALIGND_SERVER_METRICS_H_
#define ALIGND_SERVER_METRICS_H_

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
#include "server/session_manager.h"

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

class ServiceMetrics {
 public:
  // Serves /metrics on `address` ("host:port", port 0 picks a free one). `sessions` must
  // outlive this. Returns Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ServiceMetrics>> Start(
      const std::string& address, SessionManager* sessions, const MetricsSecurity& security = {});
  ~ServiceMetrics();

  void ObserveRpc(const std::string& method, int code, double seconds);
  int port() const;

 private:
  ServiceMetrics() = default;
  class SessionCollector;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<SessionCollector> sessions_;
  prometheus::Family<prometheus::Counter>* rpcs_ = nullptr;
  prometheus::Family<prometheus::Histogram>* durations_ = nullptr;
  // The HTTP(S) server (cpp-httplib) and the thread it listens on.
  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  int port_ = 0;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_METRICS_H_
