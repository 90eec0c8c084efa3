// File: client/watch.h
// -----------------------------------------------------------------------------
// `alignctl sessions watch`: sessions followed live in one table — state, a progress bar
// with steps/s and an ETA, the last batch loss and accuracy (or NSE), the last
// evaluation, and the first hidden layer's update angle to BP. Each session is a
// StreamMetrics call that resumes from its last seq when the connection drops.
//
// WatchRow (what one session's events say, with its rate) and RenderWatch (the table)
// are units without a network (tests/client/watch_test.cc); Watcher runs the streams.
#ifndef ALIGND_CLIENT_WATCH_H_
#define ALIGND_CLIENT_WATCH_H_

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "alignd/v1/sessions.grpc.pb.h"

namespace alignd::client {

using Clock = std::chrono::steady_clock;

struct WatchRow {
  v1::Session session;
  v1::StepMetrics last_step;
  v1::EvalMetrics last_eval;
  bool has_step = false;
  bool ended = false;
  // (server time in seconds, step) of recent step events, for the rate: the last 30 s of
  // training. Server time, so that a replayed history gives the rate it trained at.
  std::deque<std::pair<double, int64_t>> progress;

  // The session as GetSession (or an end event) has it, with its newest figures
  // (latest_step, latest_eval): a table before any event is read, and without reading the log.
  void Seed(const v1::Session& s);
  void Apply(const v1::MetricEvent& e);
  // Steps per second over the recent events; NaN until two events a step apart.
  double StepsPerSecond() const;
  // Seconds left at that rate; NaN if unknown, 0 once done.
  double EtaSeconds() const;
};

// "12s", "3m05s", "1h02m"; "-" for NaN.
std::string FormatDuration(double seconds);
// The table for `names` in that order.
std::string RenderWatch(const std::map<std::string, WatchRow>& rows,
                        const std::vector<std::string>& names, bool tty);

class Watcher {
 public:
  // quiet: no table (the caller prints the result itself, e.g. sweep -o json); jsonl: a
  // line per event instead of the table.
  Watcher(std::vector<std::string> names, bool quiet, bool jsonl);
  // Follows every session until it ends; 1 if any failed, else 0.
  int Run();
  const std::map<std::string, WatchRow>& rows() const { return rows_; }

 private:
  void Follow(const std::string& name);
  bool AllEnded();
  void Paint();  // redraws the table over the last one on a terminal

  // The events a table follows from before a session's last_seq (the rate's history).
  static constexpr int64_t kRecentEvents = 1000;

  const std::vector<std::string> names_;
  const bool tty_, quiet_, jsonl_;
  std::map<std::string, int64_t> start_seq_;  // written before the followers start
  std::unique_ptr<v1::TrainingService::Stub> stub_;
  std::mutex mu_;
  std::map<std::string, WatchRow> rows_;
  int painted_lines_ = 0;
};

}  // namespace alignd::client

#endif  // ALIGND_CLIENT_WATCH_H_
