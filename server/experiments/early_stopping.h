// File: server/experiments/early_stopping.h
// -----------------------------------------------------------------------------
// An experiment's early stopping (EarlyStopping in experiments.proto): ASHA's rungs and
// median stopping, decided as each validation evaluation of a member session is logged
// (SessionManager::SetEarlyStopping). The decision reads the validation figures of the
// experiment's sessions: those this process logs as they come, and, the first time it
// meets the experiment (or after a restart), every one stored so far.
//
// Replicas on a shared database: each replica sees its own sessions' figures as they come
// and the others' as stored when it first met the experiment; a decision may then miss
// figures logged elsewhere since (a later rung or step still sees them once reloaded).
#ifndef ALIGND_SERVER_EXPERIMENTS_EARLY_STOPPING_H_
#define ALIGND_SERVER_EXPERIMENTS_EARLY_STOPPING_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "alignd/v1/experiments.pb.h"
#include "alignd/v1/sessions.pb.h"
#include "core/network.h"
#include "server/storage/storage.h"

namespace alignd::server {

// INVALID_ARGUMENT naming the field for a policy that cannot work on `base` (no validation
// share, no evaluations before the end, min_steps <= 0, eta < 2, ...). OK without a policy.
absl::Status CheckEarlyStopping(const v1::EarlyStopping& policy, const v1::TrainingConfig& base);

// ASHA's rung steps below `total_steps`: min_steps * eta^k, k = 0, 1, ... (at most rungs).
std::vector<int64_t> AshaRungSteps(const v1::EarlyStopping::Asha& asha, int64_t total_steps);

// The figure early stopping ranks by: the error rate, the NSE for regression; NaN is +inf.
double StoppingFigure(double error_rate, double nse);

// One session's validation figures, in step order, as the decisions see them.
struct ValidationHistory {
  std::vector<std::pair<int64_t, double>> points;  // (step, StoppingFigure)
  std::map<int, double> rungs;                     // ASHA: rung index -> its figure there
  std::set<int> decided;                           // ASHA: the rungs it was judged at
};

// ASHA: records the rungs `h` has reached, and counts as judged those whose figure comes from
// a point before `judged_before` (a session that logged a validation after a rung's went on
// past it: it was judged, since the decision comes before its next step).
void RecordRungs(const std::vector<int64_t>& rungs, ValidationHistory& h, int64_t judged_before);

// The pure decisions, over the experiment's sessions' histories (`self` among them).
// Each returns the reason to stop `self` now, or nothing.
std::optional<std::string> AshaDecision(const v1::EarlyStopping::Asha& asha,
                                        std::map<std::string, ValidationHistory>& all,
                                        const std::string& self, int64_t total_steps);
std::optional<std::string> MedianDecision(const v1::EarlyStopping::MedianStopping& median,
                                          const std::map<std::string, ValidationHistory>& all,
                                          const std::string& self, int64_t step);

class EarlyStopper {
 public:
  explicit EarlyStopper(Storage* storage) : storage_(storage) {}

  // After a validation evaluation of `session` (a member of an experiment) was logged: the
  // reason to stop it, or nothing. Thread-safe.
  std::optional<std::string> OnValidation(const v1::Session& session, const core::EvalMetrics& m);

 private:
  struct Experiment {
    google::protobuf::Timestamp created;  // tells a re-created experiment of the same name
    v1::EarlyStopping policy;
    std::map<std::string, ValidationHistory> sessions;
  };
  // The experiment's figures as stored now; `self`, evaluated at `step`, has passed the
  // rungs before it.
  absl::Status Load(const v1::Experiment& record, const std::string& self, int64_t step,
                    Experiment& into);

  Storage* const storage_;
  absl::Mutex mu_;
  std::map<std::string, Experiment> experiments_ ABSL_GUARDED_BY(mu_);
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_EXPERIMENTS_EARLY_STOPPING_H_
