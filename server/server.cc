// File: server/server.cc
#include "server/server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>

#include <chrono>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/version.h"
#include "server/api/dataset_service.h"
#include "server/api/training_service.h"
#include "server/experiments/experiment_service.h"
#include "server/experiments/session_columns.h"
#include "server/net/log.h"
#include "server/net/rpc_log.h"
#include "server/sessions/cluster.h"
#include "server/storage/pg_storage.h"
#include "server/storage/sqlite_storage.h"

namespace alignd::server {
namespace {

// A server builder option that drops every plugin (server reflection) from its builder.
class HealthOnly : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->clear();
  }
};

// Options that cannot work: logged, and exit 2.
absl::Status Refuse(const std::string& what, nlohmann::json fields = nlohmann::json::object()) {
  LogError(what, std::move(fields));
  return absl::InvalidArgumentError(what);
}
// What failed: logged, and exit 1.
absl::Status Fail(const std::string& what, nlohmann::json fields = nlohmann::json::object()) {
  LogError(what, std::move(fields));
  return absl::UnavailableError(what);
}

std::string Host(const std::string& address) { return address.substr(0, address.rfind(':')); }

// The transport: TLS, or plaintext on loopback (or with --insecure).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerOptions& o) {
  if (o.tls.enabled()) {
    if (absl::Status s = CheckTlsFiles(o.tls); !s.ok())
      return Refuse("cannot serve TLS", {{"error", std::string(s.message())}});
    LogInfo("TLS", {{"certificate", DescribeCertificate(o.tls.cert)},
                    {"client_certificates", o.tls.client_ca.empty() ? "not requested" : "required"},
                    {"reload_s", o.tls.reload_s}});
    return TlsCredentials(o.tls);
  }
  if (IsLoopback(o.listen) || o.insecure) {
    if (!IsLoopback(o.listen))
      LogWarn(
          "PLAINTEXT on an address other machines can reach (--insecure): anyone on the "
          "network can read and drive every session; use --tls_cert and --tls_key",
          {{"address", o.listen}});
    return grpc::InsecureServerCredentials();
  }
  return Refuse(
      "refusing to serve plaintext on an address other machines can reach: give "
      "--tls_cert and --tls_key, or --insecure if you mean it",
      {{"address", o.listen}});
}

// /metrics' own checks (its port may be off loopback only behind TLS and basic auth).
absl::Status CheckMetrics(const ServerOptions& o) {
  const MetricsSecurity& m = o.metrics.security;
  const bool protected_ = !m.tls_cert.empty() && !m.basic_auth_file.empty();
  if (!IsLoopback(o.metrics_listen) && !protected_ && !o.metrics_insecure && !o.insecure)
    return Refuse(
        "refusing to serve /metrics off loopback without TLS and basic auth: give "
        "--metrics_tls_cert, --metrics_tls_key and --metrics_basic_auth_file, or "
        "--metrics_insecure",
        {{"address", o.metrics_listen}});
  if (m.tls_cert.empty() != m.tls_key.empty())
    return Refuse("--metrics_tls_cert and --metrics_tls_key go together");
  if (!m.tls_cert.empty()) {
    TlsFiles mt{m.tls_cert, m.tls_key, "", 10, "--metrics_tls"};
    if (absl::Status s = CheckTlsFiles(mt); !s.ok())
      return Refuse("cannot serve /metrics over TLS", {{"error", std::string(s.message())}});
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& o) {
  std::unique_ptr<Server> s(new Server);
  s->options_ = o;

  // Transport and authentication, checked before anything is opened.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  {
    auto c = Credentials(o);
    if (!c.ok()) return c.status();
    credentials = *std::move(c);
  }
  if (!o.token_file.empty()) {
    if (!o.tls.enabled())
      return Refuse(
          "--token_file needs TLS (--tls_cert, --tls_key): bearer tokens never travel in "
          "plaintext");
    auto t = TokenAuthenticator::Open(o.token_file);
    if (!t.ok())
      return Refuse("cannot read the token file", {{"error", std::string(t.status().message())}});
    s->tokens_ = *t;
    credentials->SetAuthMetadataProcessor(s->tokens_);
    LogInfo("bearer tokens", {{"file", o.token_file}, {"tokens", s->tokens_->size()}});
  } else if (o.tls.enabled()) {
    LogWarn("TLS without --token_file: every client is an admin");
  }
  s->identifier_ =
      std::make_unique<Identifier>(s->tokens_ != nullptr ? Identifier(s->tokens_) : Identifier());

  // Storage, data sets, sessions.
  auto storage = o.storage_uri.empty() ? OpenSqliteStorage(o.data_dir)
                                       : OpenPostgresStorage({o.storage_uri, o.blobs_dir, 8,
                                                              o.sessions.lease_ms / 2, o.replica});
  if (!storage.ok())
    return Fail(o.storage_uri.empty() ? "cannot open the data directory" : "cannot open --storage",
                {{"error", storage.status().ToString()}});
  s->storage_ = *std::move(storage);
  s->datasets_ = std::make_unique<DatasetStore>(s->storage_.get(), o.datasets);
  s->sessions_ =
      std::make_unique<SessionManager>(s->storage_.get(), s->datasets_.get(), o.sessions);
  s->early_stopper_ = std::make_unique<EarlyStopper>(s->storage_.get());
  s->sessions_->SetEarlyStopping(
      [stopper = s->early_stopper_.get()](const v1::Session& session, const core::EvalMetrics& m) {
        return stopper->OnValidation(session, m);
      });
  if (absl::Status st = s->sessions_->Start(); !st.ok())
    return Fail("cannot load sessions", {{"error", st.ToString()}});

  if (!o.metrics_listen.empty()) {
    RETURN_IF_ERROR(CheckMetrics(o));
    auto m = ServiceMetrics::Start(o.metrics_listen, s->sessions_.get(), o.metrics);
    if (!m.ok()) return Fail("cannot serve metrics", {{"error", m.status().ToString()}});
    s->metrics_ = *std::move(m);
    s->metrics_address_ = Host(o.metrics_listen) + ":" + std::to_string(s->metrics_->port());
  }

  // The services on the main port, with the RPC log (and the count of calls in flight that
  // Shutdown waits for).
  s->dataset_service_ = std::make_unique<DatasetServiceImpl>(s->sessions_.get(), *s->identifier_);
  s->training_service_ = std::make_unique<TrainingServiceImpl>(
      s->sessions_.get(), std::chrono::milliseconds(o.heartbeat_ms), *s->identifier_);
  s->experiment_service_ =
      std::make_unique<ExperimentServiceImpl>(s->sessions_.get(), *s->identifier_);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(o.listen, credentials, &port);
  builder.SetMaxReceiveMessageSize(o.max_receive_mib << 20);
  builder.RegisterService(s->dataset_service_.get());
  builder.RegisterService(s->training_service_.get());
  builder.RegisterService(s->experiment_service_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  auto rpc_log = std::make_unique<RpcLogFactory>(s->metrics_.get(), s->identifier_.get());
  s->calls_in_flight_ = rpc_log->in_flight();
  interceptors.push_back(std::move(rpc_log));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || port == 0) return Fail("cannot listen", {{"address", o.listen}});
  s->server_->GetHealthCheckService()->SetServingStatus(true);
  s->address_ = Host(o.listen) + ":" + std::to_string(port);

  // Probes: the health service alone, on its own plaintext port.
  if (!o.health_listen.empty()) {
    grpc::ServerBuilder hb;
    // Health alone: no server reflection (its plugin, registered above, is in every builder
    // made since, and would tell anyone who asks what the TLS port serves).
    hb.SetOption(std::make_unique<HealthOnly>());
    // Its own health service (server/net/probe_health.h), not gRPC's: that one cannot stand
    // alone.
    hb.SetOption(std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(nullptr));
    hb.RegisterService(&s->probe_health_);
    int health_port = 0;
    hb.AddListeningPort(o.health_listen, grpc::InsecureServerCredentials(), &health_port);
    s->health_server_ = hb.BuildAndStart();
    if (s->health_server_ == nullptr || health_port == 0)
      return Fail("cannot listen for health checks", {{"address", o.health_listen}});
    s->probe_health_.SetServing(true);
    s->health_address_ = Host(o.health_listen) + ":" + std::to_string(health_port);
  }
  LogInfo("serving", {{"address", s->address_},
                      {"data_dir", o.storage_uri.empty() ? o.data_dir : "--blobs " + o.blobs_dir},
                      {"max_running", o.sessions.max_running},
                      {"max_threads", o.sessions.max_threads},
                      {"version", ALIGND_VERSION},
                      {"revision", ALIGND_REVISION},
                      {"tls", o.tls.enabled()},
                      {"tokens", s->tokens_ != nullptr}});
  // The experiments' kept statistics columns, filled while nobody waits for them.
  Server* raw = s.get();
  s->warmer_ = std::thread([raw] {
    const auto t0 = std::chrono::steady_clock::now();
    const int read = WarmSessionColumns(*raw->sessions_, raw->warm_stop_);
    if (read > 0)
      LogInfo("experiment statistics warmed",
              {{"sessions", read},
               {"seconds",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}});
  });
  return s;
}

Server::~Server() { Shutdown(); }

void Server::Poll() {
  Cluster* const cluster = storage_->cluster();
  if (cluster == nullptr || cluster->Reachable() == db_serving_) return;
  db_serving_ = !db_serving_;
  server_->GetHealthCheckService()->SetServingStatus(db_serving_);
  probe_health_.SetServing(db_serving_);
  if (db_serving_)
    LogInfo("postgresql reachable again: serving");
  else
    LogError("postgresql unreachable: health NOT_SERVING until it answers");
}

void Server::Reload() {
  if (tokens_ == nullptr) {
    LogInfo("SIGHUP: nothing to reload (no --token_file)");
  } else if (absl::Status s = tokens_->Reload(); s.ok()) {
    LogInfo("SIGHUP: token file reloaded", {{"tokens", tokens_->size()}});
  } else {
    LogError("SIGHUP: token file not reloaded; the previous tokens stay",
             {{"error", std::string(s.message())}});
  }
}

void Server::Shutdown() {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  warm_stop_ = true;
  if (warmer_.joinable()) warmer_.join();
  server_->GetHealthCheckService()->SetServingStatus(false);
  probe_health_.SetServing(false);
  sessions_->Shutdown();  // running sessions checkpoint and are stored QUEUED
  // gRPC's Shutdown(deadline) waits for every connection to close, not only for the calls in
  // flight: a client's idle channel (a dashboard's, a notebook's) held it for the whole
  // --grace_s. Once no call is in flight the connections are closed, as Shutdown itself
  // does at the deadline (grpc_server_cancel_all_calls), so shutdown ends with the work.
  // The first look comes after Shutdown has sent GOAWAY and refuses new calls; a look
  // before it would only close connections that clients open again.
  std::atomic<bool> stopped{false};
  std::thread drain([&] {
    while (!stopped.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (calls_in_flight_->load() == 0) grpc_server_cancel_all_calls(server_->c_server());
    }
  });
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(options_.grace_s * 1000)));
  stopped = true;
  drain.join();
  probe_health_.Shutdown();
  if (health_server_) health_server_->Shutdown();
}

}  // namespace alignd::server
