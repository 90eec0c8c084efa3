// experiment_stats_bench: GetExperimentStatistics on an experiment of 100 sessions x 10,000
// metric events (issue 22's goal: served in < 200 ms). The experiment is written straight
// into a real SQLite data directory (10 groups x 10 seeds by default, ended sessions whose
// logs are what a 784-256-128-10 FA run logs every 10 steps: loss, accuracy and the
// alignment figures of both hidden layers, a validation and a test evaluation every 50
// metric steps), then timed three ways in one run:
//   reference   merely reading the 1M events from storage (Storage::ReadMetrics, in-process)
//   in-process  ExperimentStatisticsImpl on a SessionManager over that directory
//   gRPC        a real alignd on 127.0.0.1 (ephemeral port) over the same directory, called
//               with a C++ stub (so what is timed is the server, not a client's interpreter)
// for three requests: "plot" (every figure, every_steps 1000), "four" (train.loss,
// validation.error_rate, eval.error_rate and alignment.h1.update_angle_mean at every step)
// and "all" (every figure at every step: ~2.4M summaries). Each is called --calls times; the
// first call is reported apart (cold), median and p90 over the rest. Prints whether the goal
// is met and writes --out (JSON). Numbers only: nothing here asserts a time.
//
//   experiment_stats_bench --alignd build/server/alignd [--sessions 100] [--groups 10]
//                          [--events 10000] [--calls 9] [--out build/bench/experiments.json]
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "alignd/v1/experiments.grpc.pb.h"
#include "google/protobuf/util/time_util.h"
#include "server/experiments/experiment_impl.h"
#include "server/sessions/dataset_store.h"
#include "server/sessions/session_manager.h"
#include "server/storage/sqlite_storage.h"

extern char** environ;

namespace {

namespace v1 = alignd::v1;
using alignd::server::Storage;
using alignd::server::StoredMetric;
using Clock = std::chrono::steady_clock;

constexpr double kGoalMs = 200;
const char* const kExperiment = "experiments/bench";

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "experiment_stats_bench: %s\n", what.c_str());
  std::exit(1);
}

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Median and p90 (nearest rank) of the calls after the first; the first is the cold one.
struct Timing {
  double cold = 0, median = 0, p90 = 0;
  size_t bytes = 0;
};
Timing Time(int calls, const std::function<size_t()>& call) {
  Timing t;
  std::vector<double> ms;
  for (int i = 0; i < calls; ++i) {
    const auto a = Clock::now();
    t.bytes = call();
    const double d = Ms(a, Clock::now());
    if (i == 0)
      t.cold = d;
    else
      ms.push_back(d);
  }
  if (ms.empty()) ms.push_back(t.cold);
  std::sort(ms.begin(), ms.end());
  t.median = ms.size() % 2 ? ms[ms.size() / 2] : (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]) / 2;
  t.p90 = ms[std::min(ms.size() - 1, static_cast<size_t>(std::ceil(0.9 * ms.size())) - 1)];
  return t;
}

// One session's log: step events every 10 steps (9,616 of them at 10,000 events) with the
// alignment figures of two hidden layers, and after every 50 a validation and a test
// evaluation. The values drift as training's do, with per-seed noise.
std::vector<StoredMetric> SessionLog(int group, int seed, int events) {
  std::mt19937_64 rng(1000 * group + seed);
  std::normal_distribution<double> noise(0, 1);
  const double rate = 1.0 + 0.15 * group;  // groups learn at different speeds
  std::vector<StoredMetric> out;
  out.reserve(events);
  int64_t step = 0, seq = 0;
  int metric_steps = 0;
  auto stamp = [&](v1::MetricEvent& e) {
    e.set_seq(++seq);
    *e.mutable_wall_time() =
        google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(1700000000000000 + seq * 2000);
  };
  auto eval = [&](bool validation) {
    StoredMetric m;
    m.step = step;
    stamp(m.event);
    auto* ev = m.event.mutable_eval();
    const double err = 0.02 + 0.6 * std::exp(-rate * step / 20000.0) +
                       0.004 * std::fabs(noise(rng)) + (validation ? 0 : 0.002);
    ev->set_step(step);
    ev->set_epoch(step * 32 / 50000);
    ev->set_examples(validation ? 5000 : 10000);
    ev->set_loss(-std::log(1 - err) + 0.01 * std::fabs(noise(rng)));
    ev->set_accuracy(1 - err);
    ev->set_error_rate(err);
    ev->set_nse(NAN);
    ev->set_validation(validation);
    out.push_back(std::move(m));
  };
  while (static_cast<int>(out.size()) < events) {
    step += 10;
    StoredMetric m;
    m.step = step;
    stamp(m.event);
    auto* s = m.event.mutable_step();
    const double progress = std::exp(-rate * step / 20000.0);
    s->set_step(step);
    s->set_epoch(step * 32 / 50000);
    s->set_loss(std::max(0.001, 0.05 + 2.25 * progress + 0.08 * noise(rng)));
    s->set_accuracy(std::clamp(0.98 - 0.88 * progress + 0.03 * noise(rng), 0.0, 1.0));
    s->set_nse(NAN);
    for (int layer = 1; layer <= 2; ++layer) {
      auto* a = s->add_alignment();
      a->set_layer(layer);
      a->set_update_angle_mean(35 + 10 * layer + 45 * progress + 2 * noise(rng));
      a->set_update_angle_sd(8 + 3 * progress + 0.5 * noise(rng));
      a->set_positive_fraction(std::clamp(0.97 - 0.4 * progress + 0.02 * noise(rng), 0.0, 1.0));
      a->set_weight_angle(50 + 20 * layer + 20 * progress + 0.3 * noise(rng));
      a->set_norm_ratio(0.8 + 0.1 * layer + 0.4 * (1 - progress) + 0.01 * noise(rng));
      a->set_pbp_angle_mean(NAN);
      a->set_pbp_angle_sd(NAN);
    }
    out.push_back(std::move(m));
    if (++metric_steps % 50 == 0) {
      if (static_cast<int>(out.size()) < events) eval(true);
      if (static_cast<int>(out.size()) < events) eval(false);
    }
  }
  return out;
}

// The experiment's record, its ended sessions' records and their logs, as alignd stores them.
void Build(const std::string& dir, int groups, int seeds, int events) {
  auto storage = alignd::server::OpenSqliteStorage(dir);
  if (!storage.ok()) Die(std::string(storage.status().message()));
  v1::Experiment e;
  e.set_name(kExperiment);
  e.set_display_name("bench");
  e.set_state(v1::EXPERIMENT_STATE_SUCCEEDED);
  *e.mutable_create_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
  for (int g = 0; g < groups; ++g) {
    auto* group = e.add_groups();
    group->set_id(absl::StrCat("g", g));
    group->set_rule(v1::RULE_FEEDBACK_ALIGNMENT);
    for (int s = 0; s < seeds; ++s) {
      const std::string name = absl::StrFormat("sessions/bench-%d", g * seeds + s);
      group->add_sessions(name);
      std::vector<StoredMetric> log = SessionLog(g, s, events);
      for (size_t at = 0; at < log.size(); at += 1000) {
        std::vector<StoredMetric> batch(log.begin() + at,
                                        log.begin() + std::min(log.size(), at + 1000));
        if (auto st = (*storage)->AppendMetrics(name, batch); !st.ok())
          Die(std::string(st.message()));
      }
      v1::Session r;
      r.set_name(name);
      r.set_display_name(absl::StrCat("bench g", g, " seed ", s));
      auto* c = r.mutable_config();
      for (int size : {784, 256, 128, 10}) c->mutable_network()->add_sizes(size);
      c->mutable_feedback()->set_rule(v1::RULE_FEEDBACK_ALIGNMENT);
      c->set_batch_size(32);
      c->set_max_steps(log.back().step);
      c->set_metrics_every(10);
      c->set_seed(s + 1);
      r.set_train_dataset("datasets/bench");
      r.set_state(v1::SESSION_STATE_SUCCEEDED);
      r.set_step(log.back().step);
      r.set_total_steps(log.back().step);
      r.set_last_seq(log.back().event.seq());
      *r.mutable_create_time() = e.create_time();
      *r.mutable_start_time() = e.create_time();
      *r.mutable_end_time() = e.create_time();
      for (auto it = log.rbegin(); it != log.rend(); ++it)
        if (it->event.has_step()) {
          *r.mutable_latest_step() = it->event.step();
          break;
        }
      for (auto it = log.rbegin(); it != log.rend(); ++it)
        if (it->event.has_eval()) {
          *r.mutable_latest_eval() = it->event.eval();
          break;
        }
      r.set_experiment(kExperiment);
      r.set_experiment_group(group->id());
      if (auto st = (*storage)->PutSession(r); !st.ok()) Die(std::string(st.message()));
    }
  }
  if (auto st = (*storage)->PutExperiment(e); !st.ok()) Die(std::string(st.message()));
}

struct Request {
  std::string label;
  v1::GetExperimentStatisticsRequest req;
};

std::vector<Request> Requests() {
  std::vector<Request> out(3);
  out[0].label = "plot";  // every figure, every 1000 steps
  out[0].req.set_every_steps(1000);
  out[1].label = "four";
  for (const char* f :
       {"train.loss", "validation.error_rate", "eval.error_rate", "alignment.h1.update_angle_mean"})
    out[1].req.add_figures(f);
  out[2].label = "all";  // every figure at every step
  for (auto& r : out) r.req.set_name(kExperiment);
  return out;
}

// Starts alignd on `dir`; returns its pid and address (its first line of output).
// `log`: where alignd's stderr goes ("" for nowhere).
pid_t StartAlignd(const std::string& alignd, const std::string& dir, std::string* address,
                  const std::string& log = "") {
  int fds[2];
  if (pipe(fds) != 0) Die("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_addopen(&fa, 2, log.empty() ? "/dev/null" : log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> args = {alignd, "--listen",         "127.0.0.1:0", "--data_dir",
                                   dir,    "--metrics_listen", "127.0.0.1:0"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, alignd.c_str(), &fa, nullptr, argv.data(), environ) != 0)
    Die("cannot start " + alignd);
  close(fds[1]);
  std::string line;
  char c;
  while (read(fds[0], &c, 1) == 1 && c != '\n') line += c;
  close(fds[0]);
  const size_t space = line.rfind(' ');
  if (line.find("listening") == std::string::npos || space == std::string::npos)
    Die("alignd did not start: '" + line + "'");
  *address = line.substr(space + 1);
  return pid;
}

std::string Row(const std::string& what, const Timing& t, bool goal) {
  return absl::StrFormat(
      "  %-34s cold %8.1f   median %8.1f   p90 %8.1f   %7.2f MB%s\n", what, t.cold, t.median, t.p90,
      t.bytes / 1e6,
      goal ? (t.median < kGoalMs && t.p90 < kGoalMs ? "   goal met" : "   goal NOT met") : "");
}

}  // namespace

int main(int argc, char** argv) {
  std::string alignd, out_path, dir;
  int sessions = 100, groups = 10, events = 10000, calls = 9;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die("missing value of " + a);
      return argv[++i];
    };
    if (a == "--alignd")
      alignd = next();
    else if (a == "--out")
      out_path = next();
    else if (a == "--dir")
      dir = next();
    else if (a == "--sessions")
      sessions = std::stoi(next());
    else if (a == "--groups")
      groups = std::stoi(next());
    else if (a == "--events")
      events = std::stoi(next());
    else if (a == "--calls")
      calls = std::stoi(next());
    else
      Die("usage: experiment_stats_bench --alignd PATH [--sessions N] [--groups G] [--events E] "
          "[--calls C] [--out FILE] [--dir DIR]");
  }
  if (alignd.empty()) Die("--alignd is required");
  if (groups < 1 || sessions < groups || sessions % groups != 0 || calls < 2)
    Die("--sessions must be a multiple of --groups, --calls >= 2");
  const bool own_dir = dir.empty();
  if (own_dir) dir = absl::StrCat("/tmp/alignd_experiment_bench_", getpid());
  std::filesystem::remove_all(dir);
  const int seeds = sessions / groups;

  auto t0 = Clock::now();
  Build(dir, groups, seeds, events);
  std::printf(
      "experiment_stats_bench: %d sessions (%d groups x %d seeds) x %d events written "
      "to %s/alignd.db in %.1f s (%.0f MB)\n",
      sessions, groups, seeds, events, dir.c_str(), Ms(t0, Clock::now()) / 1000,
      std::filesystem::file_size(std::filesystem::path(dir) / "alignd.db") / 1e6);
  std::fflush(stdout);

  const std::vector<Request> requests = Requests();
  std::vector<std::string> inproc_bytes;  // each request's answer, to compare with gRPC's
  bool same = true;  // every call's answer equal to the first's, gRPC's to in-process ones
  std::string report;
  std::string json = absl::StrFormat(
      "{\"sessions\": %d, \"groups\": %d, \"events_per_session\": %d, \"calls\": %d, "
      "\"goal_ms\": %g, \"rows\": [",
      sessions, groups, events, calls, kGoalMs);
  auto add_json = [&](const std::string& what, const Timing& t) {
    json += absl::StrFormat(
        "%s{\"what\": \"%s\", \"cold_ms\": %.3f, \"median_ms\": %.3f, \"p90_ms\": %.3f, "
        "\"bytes\": %d}",
        json.back() == '[' ? "" : ", ", what, t.cold, t.median, t.p90, t.bytes);
  };
  {
    auto opened = alignd::server::OpenSqliteStorage(dir);
    if (!opened.ok()) Die(std::string(opened.status().message()));
    std::unique_ptr<Storage> storage = std::move(*opened);
    // Reference: the 1M events merely read from storage (decoded, nothing computed).
    const Timing read = Time(std::max(3, calls / 3), [&] {
      size_t n = 0;
      for (int k = 0; k < sessions; ++k) {
        auto log = storage->ReadMetrics(absl::StrFormat("sessions/bench-%d", k), 1, events);
        if (!log.ok()) Die(std::string(log.status().message()));
        n += log->size();
      }
      if (n != static_cast<size_t>(sessions) * events) Die("short read");
      return size_t{0};
    });
    report +=
        Row(absl::StrCat("reference: read ", sessions * events / 1000, "k events"), read, false);
    add_json("reference_read", read);
    // In-process: the Impl on a session manager over the same storage.
    alignd::server::DatasetStore datasets(storage.get(), alignd::server::DatasetLimits{});
    alignd::server::SessionManager manager(storage.get(), &datasets,
                                           alignd::server::SessionManagerOptions{});
    if (auto st = manager.Start(); !st.ok()) Die(std::string(st.message()));
    for (const Request& r : requests) {
      std::string answer;
      const Timing t = Time(calls, [&] {
        v1::ExperimentStatistics stats;
        auto st = alignd::server::ExperimentStatisticsImpl(
            manager, alignd::server::Caller::Anonymous(), r.req, &stats);
        if (!st.ok()) Die(std::string(st.message()));
        std::string now = stats.SerializeAsString();
        same = same && (answer.empty() || now == answer);
        answer = std::move(now);
        return answer.size();
      });
      inproc_bytes.push_back(answer);
      report += Row(absl::StrCat("in-process Impl, ", r.label), t, false);
      add_json(absl::StrCat("inprocess_", r.label), t);
    }
    manager.Shutdown();
  }
  // gRPC: a real alignd on the same directory (the storage above is closed: one process).
  std::string address;
  const pid_t pid = StartAlignd(alignd, dir, &address);
  {
    grpc::ChannelArguments ca;
    ca.SetMaxReceiveMessageSize(512 << 20);
    auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), ca);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)))
      Die("cannot connect to alignd at " + address);
    auto stub = v1::ExperimentService::NewStub(channel);
    for (size_t i = 0; i < requests.size(); ++i) {
      std::string answer;
      const Timing t = Time(calls, [&] {
        grpc::ClientContext ctx;
        v1::ExperimentStatistics stats;
        const grpc::Status st = stub->GetExperimentStatistics(&ctx, requests[i].req, &stats);
        if (!st.ok()) Die("GetExperimentStatistics: " + st.error_message());
        std::string now = stats.SerializeAsString();
        same = same && (answer.empty() || now == answer);
        answer = std::move(now);
        return answer.size();
      });
      same = same && answer == inproc_bytes[i];
      report += Row(absl::StrCat("gRPC alignd, ", requests[i].label), t, true);
      add_json(absl::StrCat("grpc_", requests[i].label), t);
    }
  }
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  // Restarted: alignd reads the experiments' logs into its kept columns on a thread of its
  // own at start ("experiment statistics warmed" in its log); the first call once it has.
  {
    const std::string log = dir + "/alignd-warm.log";
    const pid_t again = StartAlignd(alignd, dir, &address, log);
    const auto t0 = std::chrono::steady_clock::now();
    double warmed_s = -1;
    while (warmed_s < 0 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120)) {
      std::ifstream in(log);
      const std::string text((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
      if (text.find("experiment statistics warmed") != std::string::npos)
        warmed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (warmed_s < 0) Die("alignd did not say its statistics were warmed within 120 s");
    grpc::ChannelArguments ca;
    ca.SetMaxReceiveMessageSize(512 << 20);
    auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), ca);
    auto stub = v1::ExperimentService::NewStub(channel);
    grpc::ClientContext ctx;
    v1::ExperimentStatistics stats;
    const auto c0 = std::chrono::steady_clock::now();
    const grpc::Status st = stub->GetExperimentStatistics(&ctx, requests[0].req, &stats);
    const double first_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - c0).count();
    if (!st.ok()) Die("GetExperimentStatistics: " + st.error_message());
    same = same && stats.SerializeAsString() == inproc_bytes[0];
    report += absl::StrFormat(
        "  %-34s first call %8.1f ms (after its start-up read, %.1f s from start)%s\n",
        absl::StrCat("gRPC alignd restarted, ", requests[0].label), first_ms, warmed_s,
        first_ms < kGoalMs ? "   goal met" : "   goal NOT met");
    json += absl::StrFormat(
        ", {\"what\": \"grpc_restarted_warmed_%s\", \"first_ms\": %.3f, \"warmed_s\": %.3f}",
        requests[0].label, first_ms, warmed_s);
    kill(again, SIGTERM);
    waitpid(again, &status, 0);
  }
  if (own_dir) std::filesystem::remove_all(dir);

  std::printf(
      "GetExperimentStatistics, %d sessions x %d events (ms; first call cold, median and p90 "
      "of the other %d; goal < %.0f ms served by alignd, warm):\n%s",
      sessions, events, calls - 1, kGoalMs, report.c_str());
  std::printf(
      "  plot: every figure every 1000 steps; four: 4 figures every step; all: every "
      "figure every step\n  every answer identical (cold and warm calls, gRPC and in-process): "
      "%s\n",
      same ? "yes" : "NO");
  json += absl::StrFormat("], \"identical\": %s}\n", same ? "true" : "false");
  if (!out_path.empty()) {
    std::filesystem::create_directories(std::filesystem::path(out_path).parent_path());
    std::ofstream(out_path) << json;
  }
  return same ? 0 : 1;
}
