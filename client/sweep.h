// File: client/sweep.h
// -----------------------------------------------------------------------------
// `alignctl sessions sweep FILE`: a grid of rules x hyperparameters x seeds as sessions,
// watched together, then summarised as mean and SD over seeds per (rule, grid point).
//
// The file:
//   {"dataset": "datasets/...", "eval_dataset": "datasets/...",     (eval optional)
//    "config": { TrainingConfig as JSON, proto field names },
//    "rules": ["bp", "fa"], "seeds": [1, 2, 3],
//    "grid": {"optimizer.learning_rate": [0.01, 0.05]}}            (optional; dotted paths)
//
// ExpandSweep and Summarize are units (tests/client/sweep_test.cc).
#ifndef ALIGND_CLIENT_SWEEP_H_
#define ALIGND_CLIENT_SWEEP_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "alignd/v1/sessions.pb.h"

namespace alignd::client {

struct SweepRun {
  std::string group;  // "fa optimizer.learning_rate=0.01": the runs averaged together
  uint64_t seed = 0;
  v1::CreateSessionRequest request;
};

// One run per (rule, grid point, seed), in that nesting order. InvalidArgument says what
// is wrong with the file.
absl::StatusOr<std::vector<SweepRun>> ExpandSweep(const nlohmann::json& spec);

// What one finished run reported: its last evaluation (error or NSE; NaN if none), its
// last batch loss, and its first hidden layer's last update angle (NaN if none).
struct RunResult {
  std::string group;
  double eval = NAN, loss = NAN, angle = NAN;
};
struct GroupSummary {
  std::string group;
  int runs = 0;
  double eval_mean = NAN, eval_sd = NAN, loss_mean = NAN, angle_mean = NAN, angle_sd = NAN;
};
// Groups in first-seen order; means and sample SDs over the runs that have the value.
std::vector<GroupSummary> Summarize(const std::vector<RunResult>& results);

}  // namespace alignd::client

#endif  // ALIGND_CLIENT_SWEEP_H_
