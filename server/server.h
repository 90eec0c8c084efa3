// File: server/server.h
// -----------------------------------------------------------------------------
// Server: one alignd process put together from its options (tensorflow/serving's
// Server::Options + BuildAndStart): the transport's credentials and tokens, the storage
// (embedded or PostgreSQL), the data sets and sessions, the two gRPC services with their RPC
// log, /metrics, and the plaintext probe port. main.cc parses flags into ServerOptions, starts
// a Server, and turns signals into Poll, Reload and Shutdown.
//
// Thread-compatible: one thread (main's) drives it.
#ifndef ALIGND_SERVER_SERVER_H_
#define ALIGND_SERVER_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/experiments/early_stopping.h"
#include "server/net/auth.h"
#include "server/net/metrics.h"
#include "server/net/probe_health.h"
#include "server/net/tls.h"
#include "server/sessions/dataset_store.h"
#include "server/sessions/session_manager.h"
#include "server/storage/storage.h"

namespace grpc {
class Server;
}

namespace alignd::server {

class DatasetServiceImpl;
class TrainingServiceImpl;
class ExperimentServiceImpl;

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // port 0: a free one
  // The embedded store's folder; or PostgreSQL (storage_uri) and a blob folder for replicas.
  std::string data_dir;
  std::string storage_uri, blobs_dir, replica;
  SessionManagerOptions sessions;
  DatasetLimits datasets;
  int max_receive_mib = 8;
  int heartbeat_ms = 1000;                        // idle metric streams
  double grace_s = 10;                            // SIGTERM: time to checkpoint and finish calls
  std::string metrics_listen = "127.0.0.1:9464";  // empty: no /metrics
  MetricsOptions metrics;
  bool metrics_insecure = false;  // /metrics off loopback without TLS and basic auth
  TlsFiles tls;
  bool insecure = false;      // plaintext off loopback
  std::string token_file;     // bearer tokens (needs TLS)
  std::string health_listen;  // the plaintext probe port; empty: none
};

class Server {
 public:
  // Checks the options, opens the storage, loads the sessions and serves. What is wrong is
  // logged as it is found; the status says how to exit: InvalidArgument for options that
  // cannot work (exit 2), anything else for what failed (exit 1).
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();

  // Where it listens, as host:port with the port it got (empty when off).
  const std::string& address() const { return address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  const std::string& health_address() const { return health_address_; }

  // Called every few tens of milliseconds: replicas report NOT_SERVING while the database
  // does not answer, SERVING again when it does.
  void Poll();
  // SIGHUP: the token file is read again (the certificate files are watched on their own).
  void Reload();
  // SIGTERM: NOT_SERVING, running sessions checkpoint and are stored QUEUED, calls in flight
  // get until --grace_s, then the ports close. Idempotent.
  void Shutdown();

 private:
  Server() = default;

  ServerOptions options_;
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<DatasetStore> datasets_;
  std::unique_ptr<EarlyStopper> early_stopper_;  // outlives the manager that calls it
  std::unique_ptr<SessionManager> sessions_;
  std::unique_ptr<ServiceMetrics> metrics_;
  std::shared_ptr<TokenAuthenticator> tokens_;
  std::unique_ptr<Identifier> identifier_;
  std::unique_ptr<DatasetServiceImpl> dataset_service_;
  std::unique_ptr<TrainingServiceImpl> training_service_;
  std::unique_ptr<ExperimentServiceImpl> experiment_service_;
  std::shared_ptr<const std::atomic<int64_t>> calls_in_flight_;
  std::unique_ptr<grpc::Server> server_;
  ProbeHealth probe_health_;
  std::unique_ptr<grpc::Server> health_server_;
  std::string address_, metrics_address_, health_address_;
  bool db_serving_ = true;
  bool shut_down_ = false;
  // Experiments' statistics: the kept columns filled at start (session_columns.h).
  std::atomic<bool> warm_stop_{false};
  std::thread warmer_;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_SERVER_H_
