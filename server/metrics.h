// File: server/metrics.h
// -----------------------------------------------------------------------------
// Prometheus metrics on their own HTTP port (--metrics_listen, default
// 127.0.0.1:9464, path /metrics), with prometheus-cpp:
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
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/session_manager.h"

namespace alignd::server {

class ServiceMetrics {
 public:
  // Serves /metrics on `address` ("host:port", port 0 picks a free one). `sessions` must
  // outlive this. Returns Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ServiceMetrics>> Start(const std::string& address,
                                                               SessionManager* sessions);
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
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_METRICS_H_
