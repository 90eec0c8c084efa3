// File: client/watch.cc
#include "client/watch.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "alignd/v1/rule_names.h"
#include "client/cli.h"
#include "client/table.h"

namespace alignd::client {

void WatchRow::Seed(const v1::Session& s) {
  session = s;
  if (s.has_latest_step()) {
    last_step = s.latest_step();
    has_step = true;
  }
  if (s.has_latest_eval()) last_eval = s.latest_eval();
}

void WatchRow::Apply(const v1::MetricEvent& e) {
  if (e.has_step()) {
    last_step = e.step();
    has_step = true;
    session.set_step(e.step().step());
  }
  if (e.has_eval()) last_eval = e.eval();
  if (e.has_heartbeat()) session.set_state(e.heartbeat());
  if (e.has_end()) {
    Seed(e.end());
    ended = true;
  }
  if (e.has_step()) {
    const double t = static_cast<double>(e.wall_time().seconds()) + 1e-9 * e.wall_time().nanos();
    progress.emplace_back(t, e.step().step());
    while (progress.size() > 2 && t - progress.front().first > 30.0) progress.pop_front();
  }
}

double WatchRow::StepsPerSecond() const {
  if (progress.size() < 2) return NAN;
  const double dt = progress.back().first - progress.front().first;
  const double ds = static_cast<double>(progress.back().second - progress.front().second);
  if (dt <= 0 || ds <= 0) return NAN;
  return ds / dt;
}

double WatchRow::EtaSeconds() const {
  const int64_t left = session.total_steps() - session.step();
  if (left <= 0) return 0;
  const double rate = StepsPerSecond();
  return std::isnan(rate) ? NAN : left / rate;
}

std::string FormatDuration(double s) {
  if (std::isnan(s)) return "-";
  const int64_t t = static_cast<int64_t>(std::llround(s));
  if (t < 60) return absl::StrCat(t, "s");
  if (t < 3600) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%dh%02dm", t / 3600, (t / 60) % 60);
}

namespace {
std::string StateName(v1::SessionState s) {
  std::string n = v1::SessionState_Name(s);
  return n.rfind("SESSION_STATE_", 0) == 0 ? n.substr(14) : n;
}
}  // namespace

std::string RenderWatch(const std::map<std::string, WatchRow>& rows,
                        const std::vector<std::string>& names, bool tty) {
  Table t({"SESSION", "RULE", "STATE", "PROGRESS", ">STEPS/S", ">ETA", ">LOSS", ">ACC/NSE", ">EVAL",
           ">ANGLE"});
  for (const auto& n : names) {
    const auto it = rows.find(n);
    if (it == rows.end()) continue;
    const WatchRow& r = it->second;
    const int64_t total = r.session.total_steps();
    const double frac = total > 0 ? static_cast<double>(r.session.step()) / total : 0;
    std::string bar(16, ' ');
    for (int i = 0; i < static_cast<int>(frac * 16 + 1e-9) && i < 16; ++i) bar[i] = '#';
    const double acc =
        std::isnan(r.last_step.accuracy()) ? r.last_step.nse() : r.last_step.accuracy();
    const double eval =
        std::isnan(r.last_eval.error_rate()) ? r.last_eval.nse() : r.last_eval.error_rate();
    const double angle =
        r.last_step.alignment_size() ? r.last_step.alignment(0).update_angle_mean() : NAN;
    const double rate = r.StepsPerSecond();
    t.AddRow(
        {n, v1::RuleShortName(r.session.config().feedback().rule()), StateName(r.session.state()),
         absl::StrCat("[", bar, "] ", static_cast<int>(frac * 100), "%"),
         std::isnan(rate) ? "-" : absl::StrFormat("%.0f", rate),
         r.ended ? "-" : FormatDuration(r.EtaSeconds()), r.has_step ? Num(r.last_step.loss()) : "-",
         r.has_step ? Num(acc) : "-", r.last_eval.examples() ? Num(eval) : "-",
         std::isnan(angle) ? "-" : absl::StrFormat("%.1f deg", angle)});
  }
  return t.Render(tty);
}

Watcher::Watcher(std::vector<std::string> names, bool quiet, bool jsonl)
    : names_(std::move(names)), tty_(isatty(1)), quiet_(quiet), jsonl_(jsonl) {}

int Watcher::Run() {
  stub_ = v1::TrainingService::NewStub(G().Channel());
  for (const auto& n : names_) {
    v1::GetSessionRequest req;
    req.set_name(n);
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::Session s;
    if (auto st = stub_->GetSession(&ctx, req, &s); !st.ok()) Fail(st, "watch " + n);
    rows_[n].Seed(s);
    // The table needs the newest figures (the record has them) and the recent steps for the
    // rate, not the whole log: it follows from near the end. A JSON line per event is the
    // whole log.
    start_seq_[n] = jsonl_ ? 1 : std::max<int64_t>(1, s.last_seq() - kRecentEvents + 1);
  }
  std::vector<std::thread> threads;
  for (const auto& n : names_) threads.emplace_back([this, n] { Follow(n); });
  std::thread painter;
  if (!jsonl_ && !quiet_)
    painter = std::thread([this] {
      while (!AllEnded()) {
        Paint();
        std::this_thread::sleep_for(std::chrono::milliseconds(tty_ ? 200 : 5000));
      }
    });
  for (auto& t : threads) t.join();
  if (painter.joinable()) painter.join();
  if (!jsonl_ && !quiet_) Paint();
  int failed = 0;
  for (auto& [n, r] : rows_) failed += r.session.state() == v1::SESSION_STATE_FAILED;
  return failed ? 1 : 0;
}

// Streams one session's metrics; on a dropped connection resumes from the last seq.
void Watcher::Follow(const std::string& name) {
  int64_t next_seq = start_seq_.at(name);
  int backoff_ms = 100;
  auto lost_since = Clock::now();
  while (true) {
    grpc::ClientContext ctx;
    v1::StreamMetricsRequest req;
    req.set_parent(name);
    req.set_start_seq(next_seq);
    auto reader = stub_->StreamMetrics(&ctx, req);
    v1::MetricEvent e;
    while (reader->Read(&e)) {
      backoff_ms = 100;
      lost_since = Clock::now();
      std::lock_guard<std::mutex> lock(mu_);
      if (jsonl_) {
        std::printf("{\"session\":\"%s\",\"event\":%s}\n", name.c_str(), Json(e, false).c_str());
        std::fflush(stdout);
      }
      rows_[name].Apply(e);
      if (!e.has_heartbeat() && !e.has_end()) next_seq = e.seq() + 1;
    }
    const grpc::Status st = reader->Finish();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (rows_[name].ended || st.ok()) return;
      if (st.error_code() != grpc::StatusCode::UNAVAILABLE &&
          st.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED &&
          st.error_code() != grpc::StatusCode::CANCELLED &&
          st.error_code() != grpc::StatusCode::INTERNAL) {
        rows_[name].ended = true;
        std::cerr << "alignctl: watch " << name << ": " << st.error_message() << "\n";
        return;
      }
      if (Clock::now() - lost_since > std::chrono::seconds(60)) {
        rows_[name].ended = true;
        std::cerr << "alignctl: watch " << name << ": no connection for 60 s ("
                  << st.error_message() << "); giving up. `alignctl sessions watch " << name
                  << "` resumes where it left off.\n";
        return;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min(backoff_ms * 2, 5000);
  }
}

bool Watcher::AllEnded() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [n, r] : rows_)
    if (!r.ended) return false;
  return true;
}

void Watcher::Paint() {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  if (tty_ && painted_lines_ > 0) out = absl::StrCat("\x1b[", painted_lines_, "F");
  out += RenderWatch(rows_, names_, tty_);
  painted_lines_ = 1 + static_cast<int>(names_.size());
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace alignd::client
