// alignd-dashboard: the web dashboard's server, a gRPC client of alignd (dashboard/bridge.h).
//   alignd-dashboard --alignd localhost:50051 --listen 127.0.0.1:8080 [--static_dir DIR]
#include <httplib.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <string_view>
#include <thread>

#include "base/version.h"
#include "client/tls.h"
#include "dashboard/bridge.h"

namespace {
std::atomic<int> g_signal{0};
void OnSignal(int sig) { g_signal = sig; }

// The bundle beside the binary: build/dashboard/web, or <prefix>/share/alignd/dashboard. The
// binary is /proc/self/exe, or argv[0] where /proc is not mounted (a bare chroot).
std::string DefaultStaticDir(const char* argv0) {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec && std::string_view(argv0).find('/') != std::string_view::npos)
    exe = std::filesystem::absolute(argv0, ec);
  if (ec || exe.empty()) return "";
  for (const auto& dir :
       {exe.parent_path() / "web", exe.parent_path().parent_path() / "share/alignd/dashboard"})
    if (std::filesystem::exists(dir / "index.html", ec)) return dir.string();
  return "";
}

// gRPC's retry policy for the reads the bridge makes (5 attempts at most, gRPC's own cap;
// backoff 0.5, 1, 2, 4 s with jitter), on UNAVAILABLE only.
constexpr char kReadRetries[] = R"({"methodConfig": [{
  "name": [
    {"service": "alignd.v1.TrainingService", "method": "GetSession"},
    {"service": "alignd.v1.TrainingService", "method": "ListSessions"},
    {"service": "alignd.v1.TrainingService", "method": "ListMetrics"},
    {"service": "alignd.v1.TrainingService", "method": "GetSnapshot"},
    {"service": "alignd.v1.TrainingService", "method": "ListSnapshots"},
    {"service": "alignd.v1.TrainingService", "method": "ReadSnapshot"},
    {"service": "alignd.v1.TrainingService", "method": "ExportSession"},
    {"service": "alignd.v1.DatasetService", "method": "GetDataset"},
    {"service": "alignd.v1.DatasetService", "method": "ListDatasets"},
    {"service": "grpc.health.v1.Health", "method": "Check"}],
  "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.5s", "maxBackoff": "4s",
                  "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]})";
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"alignd-dashboard: the web dashboard of alignd (an HTTP server and a gRPC client)"};
  std::string listen = "127.0.0.1:8080";
  std::string alignd = "localhost:50051";
  std::string static_dir;
  int threads = 64;
  alignd::dashboard::Limits limits;
  int max_streams = 0;  // 0: three quarters of --threads
  alignd::client::Security sec;
  app.add_option("--listen", listen, "HTTP address; port 0 picks a free one (printed on stdout)")
      ->capture_default_str();
  app.add_option("--alignd", alignd, "the alignd to show")->capture_default_str();
  app.add_option("--static_dir", static_dir,
                 "the built front end (index.html and its bundle); default: web/ beside the "
                 "binary (the build tree) or ../share/alignd/dashboard (installed)");
  app.add_option("--threads", threads,
                 "HTTP worker threads (each live event stream holds one, each open connection "
                 "one while it is busy or idle up to 5 s)")
      ->capture_default_str()
      ->check(CLI::Range(4, 4096));
  app.add_option("--max_streams", max_streams,
                 "live event streams in all (past it: 503 with Retry-After); default three "
                 "quarters of --threads, the rest kept for the API and /healthz");
  app.add_option("--max_streams_per_client", limits.max_streams_per_client,
                 "live event streams per client address (past it: 429 with Retry-After; a page "
                 "holds one)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max_body_bytes", limits.max_body_bytes,
                 "the longest request body (past it: 413); a CreateSessionRequest is ~1 KiB "
                 "plus ~20 bytes a layer")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1024}, size_t{64} << 20));
  app.add_flag("--tls", sec.tls, "speak TLS to alignd (implied by --ca, --cert, --key)");
  app.add_option("--ca", sec.ca, "PEM CA bundle alignd's certificate must chain to");
  app.add_option("--cert", sec.cert, "PEM client certificate, if alignd wants one");
  app.add_option("--key", sec.key, "its key");
  app.set_version_flag("--version", std::string("alignd-dashboard ") + ALIGND_VERSION + " (" +
                                        ALIGND_REVISION + ")");
  CLI11_PARSE(app, argc, argv);
  // Streams hold their threads: at least two are kept for everything else.
  limits.max_streams = max_streams == 0 ? threads * 3 / 4 : max_streams;
  if (limits.max_streams < 1 || limits.max_streams > threads - 2) {
    std::cerr << "alignd-dashboard: --max_streams " << limits.max_streams << " must be in [1, "
              << threads - 2 << "]: each stream holds one of --threads " << threads
              << ", and the API and /healthz need some\n";
    return 2;
  }

  auto creds = alignd::client::ChannelCredentials(sec);
  if (!creds.ok()) {
    std::cerr << "alignd-dashboard: " << creds.status().message() << "\n";
    return 2;
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // gRPC's default backoff grows to 120 s: after an alignd restart the dashboard would show
  // it unreachable for minutes. Browsers retry on their own; reconnect within 2 s.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // A read that finds the connection down (alignd restarting, a handshake that failed) is
  // tried again for up to ~7 s before the browser sees 503: reads only, never a create,
  // pause, cancel or delete, which the user repeats knowingly.
  args.SetServiceConfigJSON(kReadRetries);
  auto channel = grpc::CreateCustomChannel(alignd, *creds, args);

  httplib::Server http;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  alignd::dashboard::AddApiRoutes(http, channel, limits);
  if (static_dir.empty()) static_dir = DefaultStaticDir(argv[0]);
  if (static_dir.empty())
    std::cerr
        << "alignd-dashboard: no front end found (built without npm?): serving the API only\n";
  // The page runs only its own script: a token kept in the browser is worth guarding.
  http.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' data: blob:; style-src 'self' "
                   "'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
  });
  // Types with a charset (and the script not as text/): not brotli'ed at its slowest per
  // request by cpp-httplib (120 ms for app.js).
  for (const auto& [ext, type] : {std::pair{"html", "text/html"},
                                  {"js", "application/javascript"},
                                  {"css", "text/css"},
                                  {"map", "application/json"}})
    http.set_file_extension_and_mimetype_mapping(ext, std::string(type) + "; charset=utf-8");
  if (!static_dir.empty() && !http.set_mount_point("/", static_dir)) {
    std::cerr << "alignd-dashboard: --static_dir " << static_dir << " is not a directory\n";
    return 2;
  }
  const size_t colon = listen.rfind(':');
  const std::string host = listen.substr(0, colon);
  int port = std::atoi(listen.substr(colon + 1).c_str());
  port = port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (port <= 0) {
    std::cerr << "alignd-dashboard: cannot listen on " << listen << "\n";
    return 1;
  }
  std::cout << "alignd-dashboard on http://" << host << ":" << port << "/" << std::endl;
  std::thread server([&] { http.listen_after_bind(); });
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  while (g_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  http.stop();
  server.join();
  return 0;
}
