// File: server/experiments/early_stopping.cc
#include "server/experiments/early_stopping.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/message_differencer.h"

namespace alignd::server {
namespace {

constexpr int64_t kNoLimit = std::numeric_limits<int64_t>::max();

int Eta(const v1::EarlyStopping::Asha& asha) {
  return asha.reduction_factor() == 0 ? 3 : asha.reduction_factor();
}

std::string Figure(double v) { return std::isinf(v) ? "NaN" : absl::StrFormat("%.4g", v); }

// Points of a log cut back by a restart are replaced by what the run logs again.
void AddPoint(ValidationHistory& h, int64_t step, double v) {
  while (!h.points.empty() && h.points.back().first >= step) h.points.pop_back();
  h.points.emplace_back(step, v);
}

// The best (lowest) figure of `h` at steps <= step.
double BestBy(const ValidationHistory& h, int64_t step) {
  double best = HUGE_VAL;
  for (const auto& [s, v] : h.points)
    if (s <= step) best = std::min(best, v);
  return best;
}

}  // namespace

void RecordRungs(const std::vector<int64_t>& rungs, ValidationHistory& h, int64_t judged_before) {
  for (size_t k = 0; k < rungs.size(); ++k) {
    const int key = static_cast<int>(k);
    auto at = std::lower_bound(h.points.begin(), h.points.end(),
                               std::pair<int64_t, double>(rungs[k], -HUGE_VAL));
    if (at == h.points.end()) return;
    h.rungs.emplace(key, at->second);
    if (at->first < judged_before) h.decided.insert(key);
  }
}

absl::Status CheckEarlyStopping(const v1::EarlyStopping& policy, const v1::TrainingConfig& base) {
  if (policy.policy_case() == v1::EarlyStopping::POLICY_NOT_SET) return absl::OkStatus();
  if (!(base.validation_fraction() > 0))
    return absl::InvalidArgumentError(
        "experiment.early_stopping ranks sessions by their validation figure: set "
        "config.validation_fraction > 0");
  if (base.eval_every() <= 0)
    return absl::InvalidArgumentError(
        "experiment.early_stopping decides at validation evaluations: set config.eval_every > 0 "
        "(with eval_every = 0 a session is evaluated only at its end)");
  if (policy.has_asha()) {
    const auto& a = policy.asha();
    if (a.min_steps() <= 0)
      return absl::InvalidArgumentError("experiment.early_stopping.asha.min_steps must be > 0");
    if (a.reduction_factor() != 0 && a.reduction_factor() < 2)
      return absl::InvalidArgumentError(
          "experiment.early_stopping.asha.reduction_factor must be >= 2 (0: 3)");
    if (a.rungs() < 0)
      return absl::InvalidArgumentError(
          "experiment.early_stopping.asha.rungs must be >= 0 (0: as many as fit)");
  } else {
    const auto& m = policy.median();
    if (m.grace_steps() < 0)
      return absl::InvalidArgumentError(
          "experiment.early_stopping.median.grace_steps must be >= 0");
    if (m.min_sessions() < 0)
      return absl::InvalidArgumentError(
          "experiment.early_stopping.median.min_sessions must be >= 0 (0: 3)");
  }
  return absl::OkStatus();
}

std::vector<int64_t> AshaRungSteps(const v1::EarlyStopping::Asha& asha, int64_t total_steps) {
  std::vector<int64_t> out;
  if (asha.min_steps() <= 0) return out;
  const int64_t eta = Eta(asha);
  for (int64_t r = asha.min_steps(); r < total_steps; r *= eta) {
    if (asha.rungs() > 0 && static_cast<int>(out.size()) >= asha.rungs()) break;
    out.push_back(r);
    if (r > kNoLimit / eta) break;
  }
  return out;
}

double StoppingFigure(double error_rate, double nse) {
  const double v = std::isnan(error_rate) ? nse : error_rate;
  return std::isnan(v) ? HUGE_VAL : v;
}

std::optional<std::string> AshaDecision(const v1::EarlyStopping::Asha& asha,
                                        std::map<std::string, ValidationHistory>& all,
                                        const std::string& self, int64_t total_steps) {
  ValidationHistory& me = all[self];
  const std::vector<int64_t> rungs = AshaRungSteps(asha, total_steps);
  for (size_t k = 0; k < rungs.size(); ++k) {
    const int key = static_cast<int>(k);
    if (me.decided.count(key) > 0) continue;  // judged there before
    auto at = std::lower_bound(me.points.begin(), me.points.end(),
                               std::pair<int64_t, double>(rungs[k], -HUGE_VAL));
    if (at == me.points.end()) return std::nullopt;  // not there yet
    const double v = me.rungs.emplace(key, at->second).first->second;
    me.decided.insert(key);
    std::vector<double> there;
    for (const auto& [name, h] : all)
      if (auto it = h.rungs.find(key); it != h.rungs.end()) there.push_back(it->second);
    std::sort(there.begin(), there.end());
    const int64_t n = static_cast<int64_t>(there.size());
    const int64_t keep = (n + Eta(asha) - 1) / Eta(asha);
    const double threshold = there[static_cast<size_t>(keep - 1)];
    if (v > threshold)
      return absl::StrCat("ASHA: at rung ", k, " (step ", rungs[k], ") its validation figure ",
                          Figure(v), " (step ", at->first, ") is not among the best ", keep,
                          " of the ", n,
                          " sessions that reached the rung (the cut: ", Figure(threshold), ")");
  }
  return std::nullopt;
}

std::optional<std::string> MedianDecision(const v1::EarlyStopping::MedianStopping& median,
                                          const std::map<std::string, ValidationHistory>& all,
                                          const std::string& self, int64_t step) {
  if (step < median.grace_steps()) return std::nullopt;
  auto me = all.find(self);
  if (me == all.end()) return std::nullopt;
  std::vector<double> others;
  for (const auto& [name, h] : all)
    if (name != self && !h.points.empty() && h.points.back().first >= step)
      others.push_back(BestBy(h, step));
  const size_t need = median.min_sessions() == 0 ? 3 : static_cast<size_t>(median.min_sessions());
  if (others.empty() || others.size() < need) return std::nullopt;
  std::sort(others.begin(), others.end());
  const size_t n = others.size();
  const double med = n % 2 == 1 ? others[n / 2] : 0.5 * (others[n / 2 - 1] + others[n / 2]);
  const double mine = BestBy(me->second, step);
  if (!(mine > med)) return std::nullopt;
  return absl::StrCat("median stopping: at step ", step, " its best validation figure ",
                      Figure(mine), " is worse than the median ", Figure(med),
                      " of the best figures of the ", n, " other sessions that reached the step");
}

absl::Status EarlyStopper::Load(const v1::Experiment& record, const std::string& self, int64_t step,
                                Experiment& into) {
  for (const auto& g : record.groups())
    for (const std::string& name : g.sessions()) {
      ValidationHistory& h = into.sessions[name];
      // The evaluations alone (and the first event): what the sampled read always keeps.
      constexpr int64_t kAll = std::numeric_limits<int64_t>::max() / 2;
      auto events = storage_->ReadMetricsSampled(name, 1, kAll, kAll);
      if (absl::IsNotFound(events.status())) continue;  // deleted since
      if (!events.ok()) return events.status();
      for (const v1::MetricEvent& e : *events)
        if (e.has_eval() && e.eval().validation())
          AddPoint(h, e.eval().step(), StoppingFigure(e.eval().error_rate(), e.eval().nse()));
      // Judged: the rungs before a later validation of the session's (the one asking: before
      // this evaluation). Another's newest may be one whose decision is still to come.
      if (record.early_stopping().has_asha() && !h.points.empty())
        RecordRungs(AshaRungSteps(record.early_stopping().asha(), kNoLimit), h,
                    name == self ? step : h.points.back().first);
    }
  return absl::OkStatus();
}

std::optional<std::string> EarlyStopper::OnValidation(const v1::Session& session,
                                                      const core::EvalMetrics& m) {
  if (session.experiment().empty() || !m.validation) return std::nullopt;
  // The record each time: cheap beside an evaluation, and a deleted or re-created
  // experiment is seen at once. No decision without it (the database away: go on).
  auto record = storage_->GetExperiment(session.experiment());
  if (!record.ok()) return std::nullopt;
  const v1::EarlyStopping& policy = record->early_stopping();
  if (policy.policy_case() == v1::EarlyStopping::POLICY_NOT_SET) return std::nullopt;
  absl::MutexLock lock(&mu_);
  Experiment& e = experiments_[record->name()];
  if (!google::protobuf::util::MessageDifferencer::Equals(e.created, record->create_time())) {
    e = Experiment();
    if (!Load(*record, session.name(), m.step, e).ok()) {
      experiments_.erase(record->name());  // loaded again next time
      return std::nullopt;
    }
    e.created = record->create_time();
    e.policy = policy;
  }
  AddPoint(e.sessions[session.name()], m.step, StoppingFigure(m.error_rate, m.nse));
  if (policy.has_asha())
    return AshaDecision(policy.asha(), e.sessions, session.name(), session.total_steps());
  return MedianDecision(policy.median(), e.sessions, session.name(), m.step);
}

}  // namespace alignd::server
