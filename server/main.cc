// alignd: the training service. See README.md and docs/ARCHITECTURE.md.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
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

#include "server/dataset_service.h"
#include "server/dataset_store.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/rpc_log.h"
#include "server/session_manager.h"
#include "server/sqlite_storage.h"
#include "server/training_service.h"

namespace {

std::string DefaultDataDir() {
  if (const char* s = std::getenv("XDG_STATE_HOME"); s && *s) return std::string(s) + "/alignd";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/state/alignd";
  return "./alignd-data";
}

std::atomic<int> g_signal{0};
void OnSignal(int sig) { g_signal = sig; }

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
  app.add_option("--listen", listen,
                 "address to serve on; port 0 picks a free one (printed on stdout)")
      ->capture_default_str();
  app.add_option("--data_dir", data_dir,
                 "where data sets, sessions, metric logs and checkpoints live")
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
  CLI11_PARSE(app, argc, argv);
  // Every line on stderr is JSON from here on, a crash included.
  InstallCrashHandler(argv[0]);
  RouteLibraryLogs();
  if (mo.max_running < 1 || mo.max_threads < 1 || mo.max_queued < 0 || heartbeat_ms < 10 ||
      max_receive_mib < 2) {
    std::cerr << "alignd: --max_running >= 1, --max_threads >= 1, --max_queued >= 0, "
                 "--heartbeat_ms >= 10, --max_receive_mib >= 2\n";
    return 2;
  }

  limits.cache_bytes = cache_mib << 20;
  auto storage = OpenSqliteStorage(data_dir);
  if (!storage.ok()) {
    LogError("cannot open the data directory", {{"error", storage.status().ToString()}});
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
    auto m = ServiceMetrics::Start(metrics_listen, &sessions);
    if (!m.ok()) {
      LogError("cannot serve metrics", {{"error", m.status().ToString()}});
      return 1;
    }
    metrics = std::move(*m);
  }
  DatasetServiceImpl dataset_service(&sessions);
  TrainingServiceImpl training_service(&sessions, std::chrono::milliseconds(heartbeat_ms));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(max_receive_mib << 20);
  builder.RegisterService(&dataset_service);
  builder.RegisterService(&training_service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<RpcLogFactory>(metrics.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    LogError("cannot listen", {{"address", listen}});
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  const std::string host = listen.substr(0, listen.rfind(':'));
  // The first line is for scripts and tests: the address to call. The second, when metrics are
  // on, the metrics port.
  std::cout << "alignd listening on " << host << ":" << port << std::endl;
  if (metrics)
    std::cout << "alignd metrics on " << host << ":" << metrics->port() << "/metrics" << std::endl;
  LogInfo("serving", {{"address", host + ":" + std::to_string(port)},
                      {"data_dir", data_dir},
                      {"max_running", mo.max_running},
                      {"max_threads", mo.max_threads}});

  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  while (g_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));

  LogInfo("shutting down", {{"signal", g_signal.load()}});
  server->GetHealthCheckService()->SetServingStatus(false);
  sessions.Shutdown();  // running sessions checkpoint and are stored QUEUED
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000)));
  LogInfo("stopped");
  return 0;
}
