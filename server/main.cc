// alignd: the training service. See README.md and docs/ARCHITECTURE.md.
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
#include "server/net/log.h"
#include "server/server.h"
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
  ServerOptions o;
  o.data_dir = DefaultDataDir();
  o.sessions.max_running = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  o.sessions.max_threads = o.sessions.max_running;
  int64_t quota_stored_mib = 0;
  app.add_option("--listen", o.listen,
                 "address to serve on; port 0 picks a free one (printed on stdout)")
      ->capture_default_str();
  app.add_option("--data_dir", o.data_dir,
                 "where data sets, sessions, metric logs and checkpoints live (the embedded "
                 "store: SQLite and files)")
      ->capture_default_str();
  app.add_option("--storage", o.storage_uri,
                 "keep records and metric logs in PostgreSQL instead: a libpq URI, "
                 "postgresql://user@host:5432/alignd (needs --blobs; --data_dir is unused)");
  app.add_option("--blobs", o.blobs_dir,
                 "with --storage: the folder for data set payloads, checkpoints and snapshots "
                 "(a local or a shared volume: every replica on one database mounts the same)");
  app.add_option("--replica", o.replica,
                 "with --storage: this process's name among the replicas (default: "
                 "host/pid/random; in logs and in the database as a session's holder)");
  app.add_option("--lease_ms", o.sessions.lease_ms,
                 "with --storage: a running session's lease; renewed every quarter of it, and "
                 "another replica takes the session over this long after its holder stops "
                 "answering (failover time)")
      ->capture_default_str();
  app.add_option("--max_running", o.sessions.max_running,
                 "sessions trained at once (worker threads)")
      ->capture_default_str();
  app.add_option("--max_threads", o.sessions.max_threads,
                 "training threads at most, summed over running sessions (each asks for "
                 "TrainingConfig.threads; default: the core count)")
      ->capture_default_str();
  app.add_option("--max_queued", o.sessions.max_queued,
                 "QUEUED sessions at most; more: RESOURCE_EXHAUSTED")
      ->capture_default_str();
  app.add_option("--max_sessions", o.sessions.max_sessions, "stored sessions at most")
      ->capture_default_str();
  app.add_option("--checkpoint_every", o.sessions.checkpoint_every,
                 "default steps between checkpoints")
      ->capture_default_str();
  app.add_option("--max_layer_width", o.sessions.max_layer_width,
                 "widest layer a session may ask for")
      ->capture_default_str();
  app.add_option("--max_parameters", o.sessions.max_parameters, "most weights one network may have")
      ->capture_default_str();
  app.add_option(
         "--max_session_bytes", o.sessions.max_session_bytes,
         "memory one session may need (its network's workspaces at its batch size, optimiser "
         "state and data sets); larger: RESOURCE_EXHAUSTED")
      ->capture_default_str();
  app.add_option("--max_dataset_bytes", o.datasets.max_dataset_bytes,
                 "largest data set payload accepted")
      ->capture_default_str();
  int64_t cache_mib = o.datasets.cache_bytes >> 20;
  app.add_option("--dataset_cache_mib", cache_mib,
                 "decoded data sets kept in memory between sessions, MiB")
      ->capture_default_str();
  app.add_option("--max_receive_mib", o.max_receive_mib,
                 "largest request message, MiB (uploads come in 1 MiB chunks)")
      ->capture_default_str();
  app.add_option("--heartbeat_ms", o.heartbeat_ms, "heartbeat interval of idle metric streams")
      ->capture_default_str();
  app.add_option("--metrics_listen", o.metrics_listen,
                 "Prometheus /metrics address (port 0: a free one, printed on stdout; empty: off)")
      ->capture_default_str();
  app.add_option("--grace_s", o.grace_s, "on SIGTERM: seconds to checkpoint and finish RPCs")
      ->capture_default_str();
  auto* sec = "Security (docs/DEPLOY.md)";
  app.add_option("--tls_cert", o.tls.cert, "PEM certificate chain: serve TLS only")->group(sec);
  app.add_option("--tls_key", o.tls.key, "PEM private key of --tls_cert")->group(sec);
  app.add_option("--tls_client_ca", o.tls.client_ca,
                 "PEM CA bundle: clients must present a certificate it signed (mTLS)")
      ->group(sec);
  app.add_option("--tls_reload_s", o.tls.reload_s,
                 "seconds between checks of the TLS files for a renewed certificate")
      ->capture_default_str()
      ->group(sec);
  app.add_flag("--insecure", o.insecure,
               "serve plaintext on an address other machines can reach (loopback is "
               "plaintext by default when no certificate is given)")
      ->group(sec);
  app.add_option("--token_file", o.token_file,
                 "bearer tokens: lines '<sha256 of token> <principal> <admin|user|viewer>' "
                 "(alignctl token new); needs TLS; re-read on SIGHUP")
      ->group(sec);
  app.add_option("--health_listen", o.health_listen,
                 "also serve grpc.health.v1 alone, plaintext and without a token, here "
                 "(Kubernetes grpc probes)")
      ->group(sec);
  app.add_option("--metrics_tls_cert", o.metrics.security.tls_cert,
                 "PEM certificate chain: serve /metrics over HTTPS")
      ->group(sec);
  app.add_option("--metrics_tls_key", o.metrics.security.tls_key, "PEM key of --metrics_tls_cert")
      ->group(sec);
  app.add_option("--metrics_basic_auth_file", o.metrics.security.basic_auth_file,
                 "/metrics wants HTTP basic auth: lines '<user> <sha256 of the password>'")
      ->group(sec);
  app.add_option("--metrics_retain_finished_s", o.metrics.retain_finished_s,
                 "per-session metric series last this long after a session ends")
      ->capture_default_str();
  app.add_flag("--metrics_insecure", o.metrics_insecure,
               "serve /metrics off loopback without TLS and basic auth")
      ->group(sec);
  app.add_option("--quota_active_sessions", o.sessions.quota_active_sessions,
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
  const SessionManagerOptions& mo = o.sessions;
  if (mo.max_running < 1 || mo.max_threads < 1 || mo.max_queued < 0 || o.heartbeat_ms < 10 ||
      o.max_receive_mib < 2 || o.max_receive_mib > 2047 || mo.lease_ms < 100) {
    // gRPC's message limit is an int of bytes: 2047 MiB is the largest that fits.
    std::cerr << "alignd: --max_running >= 1, --max_threads >= 1, --max_queued >= 0, "
                 "--heartbeat_ms >= 10, --max_receive_mib in [2, 2047], --lease_ms >= 100\n";
    return 2;
  }
  if (!o.storage_uri.empty() && (!IsPostgresUri(o.storage_uri) || o.blobs_dir.empty())) {
    std::cerr << "alignd: --storage takes postgresql://... and needs --blobs\n";
    return 2;
  }
  if (o.storage_uri.empty() && !o.blobs_dir.empty()) {
    std::cerr << "alignd: --blobs goes with --storage postgresql://...\n";
    return 2;
  }
  o.datasets.cache_bytes = cache_mib << 20;
  o.datasets.quota_stored_bytes = quota_stored_mib << 20;

  auto server = Server::Start(o);
  if (!server.ok()) return absl::IsInvalidArgument(server.status()) ? 2 : 1;
  // Startup's lines are on stderr before the address is on stdout (not an RPC: it may wait).
  FlushLogs();
  // The first line is for scripts and tests: the address to call. The next ones, when they
  // are on, the metrics and health ports.
  std::cout << "alignd listening on " << (*server)->address() << std::endl;
  if (!(*server)->metrics_address().empty())
    std::cout << "alignd metrics on " << (*server)->metrics_address() << "/metrics" << std::endl;
  if (!(*server)->health_address().empty())
    std::cout << "alignd health on " << (*server)->health_address() << std::endl;

  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  signal(SIGHUP, OnHangup);
  while (g_signal == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    (*server)->Poll();
    if (g_reload.exchange(false)) (*server)->Reload();
  }
  LogInfo("shutting down", {{"signal", g_signal.load()}});
  (*server)->Shutdown();
  LogInfo("stopped");
  return 0;
}
