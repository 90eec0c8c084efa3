// alignd: the training service. See README.md and docs/ARCHITECTURE.md.
#include <grpc/grpc.h>
#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/version.h"
#include "server/api/dataset_service.h"
#include "server/api/training_service.h"
#include "server/net/auth.h"
#include "server/net/log.h"
#include "server/net/metrics.h"
#include "server/net/probe_health.h"
#include "server/net/rpc_log.h"
#include "server/net/tls.h"
#include "server/sessions/cluster.h"
#include "server/sessions/dataset_store.h"
#include "server/sessions/session_manager.h"
#include "server/storage/migrate.h"
#include "server/storage/pg_storage.h"
#include "server/storage/sqlite_storage.h"

namespace {

std::string DefaultDataDir() {
  if (const char* s = std::getenv("XDG_STATE_HOME"); s && *s) return std::string(s) + "/alignd";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/state/alignd";
  return "./alignd-data";
}

std::atomic<int> g_signal{0};
void OnSignal(int sig) { g_signal = sig; }
std::atomic<bool> g_reload{false};
void OnHangup(int) { g_reload = true; }

// A server builder option that drops every plugin (server reflection) from its builder.
class HealthOnly : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->clear();
  }
};

// alignd migrate: exit 0 when everything is copied (or there already), 1 on an error or a
// session that differs in the destination, 2 on bad arguments.
int RunMigrate(const std::string& from_dir, const std::string& uri, const std::string& blobs) {
  using namespace alignd::server;
  if (!IsPostgresUri(uri)) {
    std::cerr << "alignd migrate: --storage takes postgresql://...\n";
    return 2;
  }
  if (!std::filesystem::exists(std::filesystem::path(from_dir) / "alignd.db")) {
    std::cerr << "alignd migrate: " << from_dir << " is no alignd data directory (no alignd.db)\n";
    return 2;
  }
  auto from = OpenSqliteStorage(from_dir);
  if (!from.ok()) {
    std::cerr << "alignd migrate: --from: " << from.status().message() << "\n";
    return 1;
  }
  auto to = OpenPostgresStorage({uri, blobs, 2, 60000, "migrate"});
  if (!to.ok()) {
    std::cerr << "alignd migrate: " << to.status().message() << "\n";
    return 1;
  }
  auto report = Migrate(from->get(), to->get(),
                        [](const std::string& line) { std::cout << line << std::endl; });
  if (!report.ok()) {
    std::cerr << "alignd migrate: " << report.status().ToString() << "\n";
    return 1;
  }
  std::cout << "migrated: " << report->datasets_copied << " data sets and "
            << report->sessions_copied << " sessions copied (" << report->events << " events, "
            << report->checkpoints << " checkpoints, " << report->snapshots << " snapshots, "
            << report->bytes << " bytes), " << report->datasets_skipped << " data sets and "
            << report->sessions_skipped << " sessions there already";
  if (!report->conflicts.empty()) {
    std::cout << "; " << report->conflicts.size()
              << " sessions differ in the destination and were left alone:";
    for (const std::string& c : report->conflicts) std::cout << " " << c;
    std::cout << std::endl;
    return 1;
  }
  std::cout << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace alignd::server;
  CLI::App app{
      "alignd: a gRPC training service for backpropagation and the feedback-alignment family"};
  std::string listen = "127.0.0.1:50051";
  std::string data_dir = DefaultDataDir();
  SessionManagerOptions mo;
  mo.max_running = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  mo.max_threads = mo.max_running;
  DatasetLimits limits;
  int max_receive_mib = 8;
  int heartbeat_ms = 1000;
  double grace_s = 10;
  std::string metrics_listen = "127.0.0.1:9464";
  TlsFiles tls;
  bool insecure = false;
  std::string token_file;
  std::string health_listen;
  int64_t quota_stored_mib = 0;
  MetricsOptions metrics_options;
  MetricsSecurity& metrics_security = metrics_options.security;
  bool metrics_insecure = false;
  app.add_option("--listen", listen,
                 "address to serve on; port 0 picks a free one (printed on stdout)")
      ->capture_default_str();
  app.add_option("--data_dir", data_dir,
                 "where data sets, sessions, metric logs and checkpoints live (the embedded "
                 "store: SQLite and files)")
      ->capture_default_str();
  std::string storage_uri, blobs_dir;
  app.add_option("--storage", storage_uri,
                 "keep records and metric logs in PostgreSQL instead: a libpq URI, "
                 "postgresql://user@host:5432/alignd (needs --blobs; --data_dir is unused)");
  app.add_option("--blobs", blobs_dir,
                 "with --storage: the folder for data set payloads, checkpoints and snapshots "
                 "(a local or a shared volume: every replica on one database mounts the same)");
  std::string replica;
  app.add_option("--replica", replica,
                 "with --storage: this process's name among the replicas (default: "
                 "host/pid/random; in logs and in the database as a session's holder)");
  app.add_option("--lease_ms", mo.lease_ms,
                 "with --storage: a running session's lease; renewed every quarter of it, and "
                 "another replica takes the session over this long after its holder stops "
                 "answering (failover time)")
      ->capture_default_str();
  app.add_option("--max_running", mo.max_running, "sessions trained at once (worker threads)")
      ->capture_default_str();
  app.add_option("--max_threads", mo.max_threads,
                 "training threads at most, summed over running sessions (each asks for "
                 "TrainingConfig.threads; default: the core count)")
      ->capture_default_str();
  app.add_option("--max_queued", mo.max_queued, "QUEUED sessions at most; more: RESOURCE_EXHAUSTED")
      ->capture_default_str();
  app.add_option("--max_sessions", mo.max_sessions, "stored sessions at most")
      ->capture_default_str();
  app.add_option("--checkpoint_every", mo.checkpoint_every, "default steps between checkpoints")
      ->capture_default_str();
  app.add_option("--max_layer_width", mo.max_layer_width, "widest layer a session may ask for")
      ->capture_default_str();
  app.add_option("--max_parameters", mo.max_parameters, "most weights one network may have")
      ->capture_default_str();
  app.add_option(
         "--max_session_bytes", mo.max_session_bytes,
         "memory one session may need (its network's workspaces at its batch size, optimiser "
         "state and data sets); larger: RESOURCE_EXHAUSTED")
      ->capture_default_str();
  app.add_option("--max_dataset_bytes", limits.max_dataset_bytes,
                 "largest data set payload accepted")
      ->capture_default_str();
  int64_t cache_mib = limits.cache_bytes >> 20;
  app.add_option("--dataset_cache_mib", cache_mib,
                 "decoded data sets kept in memory between sessions, MiB")
      ->capture_default_str();
  app.add_option("--max_receive_mib", max_receive_mib,
                 "largest request message, MiB (uploads come in 1 MiB chunks)")
      ->capture_default_str();
  app.add_option("--heartbeat_ms", heartbeat_ms, "heartbeat interval of idle metric streams")
      ->capture_default_str();
  app.add_option("--metrics_listen", metrics_listen,
                 "Prometheus /metrics address (port 0: a free one, printed on stdout; empty: off)")
      ->capture_default_str();
  app.add_option("--grace_s", grace_s, "on SIGTERM: seconds to checkpoint and finish RPCs")
      ->capture_default_str();
  auto* sec = "Security (docs/DEPLOY.md)";
  app.add_option("--tls_cert", tls.cert, "PEM certificate chain: serve TLS only")->group(sec);
  app.add_option("--tls_key", tls.key, "PEM private key of --tls_cert")->group(sec);
  app.add_option("--tls_client_ca", tls.client_ca,
                 "PEM CA bundle: clients must present a certificate it signed (mTLS)")
      ->group(sec);
  app.add_option("--tls_reload_s", tls.reload_s,
                 "seconds between checks of the TLS files for a renewed certificate")
      ->capture_default_str()
      ->group(sec);
  app.add_flag("--insecure", insecure,
               "serve plaintext on an address other machines can reach (loopback is "
               "plaintext by default when no certificate is given)")
      ->group(sec);
  app.add_option("--token_file", token_file,
                 "bearer tokens: lines '<sha256 of token> <principal> <admin|user|viewer>' "
                 "(alignctl token new); needs TLS; re-read on SIGHUP")
      ->group(sec);
  app.add_option("--health_listen", health_listen,
                 "also serve grpc.health.v1 alone, plaintext and without a token, here "
                 "(Kubernetes grpc probes)")
      ->group(sec);
  app.add_option("--metrics_tls_cert", metrics_security.tls_cert,
                 "PEM certificate chain: serve /metrics over HTTPS")
      ->group(sec);
  app.add_option("--metrics_tls_key", metrics_security.tls_key, "PEM key of --metrics_tls_cert")
      ->group(sec);
  app.add_option("--metrics_basic_auth_file", metrics_security.basic_auth_file,
                 "/metrics wants HTTP basic auth: lines '<user> <sha256 of the password>'")
      ->group(sec);
  app.add_option("--metrics_retain_finished_s", metrics_options.retain_finished_s,
                 "per-session metric series last this long after a session ends")
      ->capture_default_str();
  app.add_flag("--metrics_insecure", metrics_insecure,
               "serve /metrics off loopback without TLS and basic auth")
      ->group(sec);
  app.add_option("--quota_active_sessions", mo.quota_active_sessions,
                 "per principal of role user: sessions queued or running at once (0: no limit)")
      ->capture_default_str()
      ->group(sec);
  app.add_option("--quota_stored_mib", quota_stored_mib,
                 "per principal of role user: MiB of data sets stored (0: no limit)")
      ->capture_default_str()
      ->group(sec);
  app.set_version_flag("--version",
                       std::string("alignd ") + ALIGND_VERSION + " (" + ALIGND_REVISION + ")");
  std::string migrate_from, migrate_to, migrate_blobs;
  CLI::App* migrate = app.add_subcommand(
      "migrate",
      "copy an embedded data directory (SQLite and files) into PostgreSQL and a blob folder "
      "for replicas: data sets, sessions, metric logs, checkpoints and snapshots, each "
      "checked by SHA-256 read back; QUEUED and RUNNING sessions arrive QUEUED and resume "
      "from their checkpoints. Stop the alignd that owns the directory first. Safe to run "
      "again: what is there already is skipped, what differs is named and left alone");
  migrate->add_option("--from", migrate_from, "the embedded data directory (alignd --data_dir)")
      ->required();
  migrate->add_option("--storage", migrate_to, "the destination: postgresql://...")->required();
  migrate->add_option("--blobs", migrate_blobs, "the replicas' blob folder (alignd --blobs)")
      ->required();
  CLI11_PARSE(app, argc, argv);
  if (*migrate) return RunMigrate(migrate_from, migrate_to, migrate_blobs);
  // Every line on stderr is JSON from here on, a crash included.
  InstallCrashHandler(argv[0]);
  RouteLibraryLogs();
  if (mo.max_running < 1 || mo.max_threads < 1 || mo.max_queued < 0 || heartbeat_ms < 10 ||
      max_receive_mib < 2 || mo.lease_ms < 100) {
    std::cerr << "alignd: --max_running >= 1, --max_threads >= 1, --max_queued >= 0, "
                 "--heartbeat_ms >= 10, --max_receive_mib >= 2, --lease_ms >= 100\n";
    return 2;
  }

  limits.cache_bytes = cache_mib << 20;
  limits.quota_stored_bytes = quota_stored_mib << 20;

  // Transport and authentication, checked before anything is opened.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (tls.enabled()) {
    if (absl::Status s = CheckTlsFiles(tls); !s.ok()) {
      LogError("cannot serve TLS", {{"error", std::string(s.message())}});
      return 2;
    }
    credentials = TlsCredentials(tls);
    LogInfo("TLS", {{"certificate", DescribeCertificate(tls.cert)},
                    {"client_certificates", tls.client_ca.empty() ? "not requested" : "required"},
                    {"reload_s", tls.reload_s}});
  } else if (IsLoopback(listen) || insecure) {
    credentials = grpc::InsecureServerCredentials();
    if (!IsLoopback(listen))
      LogWarn(
          "PLAINTEXT on an address other machines can reach (--insecure): anyone on the "
          "network can read and drive every session; use --tls_cert and --tls_key",
          {{"address", listen}});
  } else {
    LogError(
        "refusing to serve plaintext on an address other machines can reach: give "
        "--tls_cert and --tls_key, or --insecure if you mean it",
        {{"address", listen}});
    return 2;
  }
  std::shared_ptr<TokenAuthenticator> tokens;
  if (!token_file.empty()) {
    if (!tls.enabled()) {
      LogError(
          "--token_file needs TLS (--tls_cert, --tls_key): bearer tokens never travel in "
          "plaintext");
      return 2;
    }
    auto t = TokenAuthenticator::Open(token_file);
    if (!t.ok()) {
      LogError("cannot read the token file", {{"error", std::string(t.status().message())}});
      return 2;
    }
    tokens = *t;
    credentials->SetAuthMetadataProcessor(tokens);
    LogInfo("bearer tokens", {{"file", token_file}, {"tokens", tokens->size()}});
  } else if (tls.enabled()) {
    LogWarn("TLS without --token_file: every client is an admin");
  }
  const Identifier identifier = tokens != nullptr ? Identifier(tokens) : Identifier();

  if (!storage_uri.empty() && (!IsPostgresUri(storage_uri) || blobs_dir.empty())) {
    std::cerr << "alignd: --storage takes postgresql://... and needs --blobs\n";
    return 2;
  }
  if (storage_uri.empty() && !blobs_dir.empty()) {
    std::cerr << "alignd: --blobs goes with --storage postgresql://...\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Storage>> storage =
      storage_uri.empty()
          ? OpenSqliteStorage(data_dir)
          : OpenPostgresStorage({storage_uri, blobs_dir, 8, mo.lease_ms / 2, replica});
  if (!storage.ok()) {
    LogError(storage_uri.empty() ? "cannot open the data directory" : "cannot open --storage",
             {{"error", storage.status().ToString()}});
    return 1;
  }
  DatasetStore datasets(storage->get(), limits);
  SessionManager sessions(storage->get(), &datasets, mo);
  if (absl::Status s = sessions.Start(); !s.ok()) {
    LogError("cannot load sessions", {{"error", s.ToString()}});
    return 1;
  }
  std::unique_ptr<ServiceMetrics> metrics;
  if (!metrics_listen.empty()) {
    const bool protected_ =
        !metrics_security.tls_cert.empty() && !metrics_security.basic_auth_file.empty();
    if (!IsLoopback(metrics_listen) && !protected_ && !metrics_insecure && !insecure) {
      LogError(
          "refusing to serve /metrics off loopback without TLS and basic auth: give "
          "--metrics_tls_cert, --metrics_tls_key and --metrics_basic_auth_file, or "
          "--metrics_insecure",
          {{"address", metrics_listen}});
      return 2;
    }
    if (metrics_security.tls_cert.empty() != metrics_security.tls_key.empty()) {
      LogError("--metrics_tls_cert and --metrics_tls_key go together");
      return 2;
    }
    if (!metrics_security.tls_cert.empty()) {
      TlsFiles mt{metrics_security.tls_cert, metrics_security.tls_key, "", 10, "--metrics_tls"};
      if (absl::Status s = CheckTlsFiles(mt); !s.ok()) {
        LogError("cannot serve /metrics over TLS", {{"error", std::string(s.message())}});
        return 2;
      }
    }
    auto m = ServiceMetrics::Start(metrics_listen, &sessions, metrics_options);
    if (!m.ok()) {
      LogError("cannot serve metrics", {{"error", m.status().ToString()}});
      return 1;
    }
    metrics = std::move(*m);
  }
  DatasetServiceImpl dataset_service(&sessions, identifier);
  TrainingServiceImpl training_service(&sessions, std::chrono::milliseconds(heartbeat_ms),
                                       identifier);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, credentials, &port);
  builder.SetMaxReceiveMessageSize(max_receive_mib << 20);
  builder.RegisterService(&dataset_service);
  builder.RegisterService(&training_service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  auto rpc_log = std::make_unique<RpcLogFactory>(metrics.get(), &identifier);
  const std::shared_ptr<const std::atomic<int64_t>> calls_in_flight = rpc_log->in_flight();
  interceptors.push_back(std::move(rpc_log));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    LogError("cannot listen", {{"address", listen}});
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  // Probes: the health service alone, on its own plaintext port.
  std::unique_ptr<grpc::Server> health_server;
  ProbeHealth probe_health;
  int health_port = 0;
  if (!health_listen.empty()) {
    grpc::ServerBuilder hb;
    // Health alone: no server reflection (its plugin, registered above, is in every builder
    // made since, and would tell anyone who asks what the TLS port serves).
    hb.SetOption(std::make_unique<HealthOnly>());
    // Its own health service (server/net/probe_health.h), not gRPC's: that one cannot stand alone.
    hb.SetOption(std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(nullptr));
    hb.RegisterService(&probe_health);
    hb.AddListeningPort(health_listen, grpc::InsecureServerCredentials(), &health_port);
    health_server = hb.BuildAndStart();
    if (health_server == nullptr || health_port == 0) {
      LogError("cannot listen for health checks", {{"address", health_listen}});
      return 1;
    }
    probe_health.SetServing(true);
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  LogInfo("serving", {{"address", host + ":" + std::to_string(port)},
                      {"data_dir", storage_uri.empty() ? data_dir : "--blobs " + blobs_dir},
                      {"max_running", mo.max_running},
                      {"max_threads", mo.max_threads},
                      {"version", ALIGND_VERSION},
                      {"revision", ALIGND_REVISION},
                      {"tls", tls.enabled()},
                      {"tokens", tokens != nullptr}});
  // Startup's lines are on stderr before the address is on stdout (not an RPC: it may wait).
  FlushLogs();
  // The first line is for scripts and tests: the address to call. The second, when metrics are
  // on, the metrics port.
  std::cout << "alignd listening on " << host << ":" << port << std::endl;
  if (metrics)
    std::cout << "alignd metrics on " << host << ":" << metrics->port() << "/metrics" << std::endl;
  if (health_server)
    std::cout << "alignd health on " << health_listen.substr(0, health_listen.rfind(':')) << ":"
              << health_port << std::endl;

  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  signal(SIGHUP, OnHangup);
  // Replicas: NOT_SERVING while the database does not answer (a load balancer sends calls
  // to a replica that can serve them; probes see why), SERVING again when it does.
  Cluster* const cluster = storage->get()->cluster();
  bool db_serving = true;
  while (g_signal == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (cluster != nullptr && cluster->Reachable() != db_serving) {
      db_serving = !db_serving;
      server->GetHealthCheckService()->SetServingStatus(db_serving);
      probe_health.SetServing(db_serving);
      if (db_serving)
        LogInfo("postgresql reachable again: serving");
      else
        LogError("postgresql unreachable: health NOT_SERVING until it answers");
    }
    if (g_reload.exchange(false)) {
      // The certificate files are watched (--tls_reload_s); the tokens are read now.
      if (tokens == nullptr) {
        LogInfo("SIGHUP: nothing to reload (no --token_file)");
      } else if (absl::Status s = tokens->Reload(); s.ok()) {
        LogInfo("SIGHUP: token file reloaded", {{"tokens", tokens->size()}});
      } else {
        LogError("SIGHUP: token file not reloaded; the previous tokens stay",
                 {{"error", std::string(s.message())}});
      }
    }
  }

  LogInfo("shutting down", {{"signal", g_signal.load()}});
  server->GetHealthCheckService()->SetServingStatus(false);
  probe_health.SetServing(false);
  sessions.Shutdown();  // running sessions checkpoint and are stored QUEUED
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
      if (calls_in_flight->load() == 0) grpc_server_cancel_all_calls(server->c_server());
    }
  });
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000)));
  stopped = true;
  drain.join();
  probe_health.Shutdown();
  if (health_server) health_server->Shutdown();
  LogInfo("stopped");
  return 0;
}
