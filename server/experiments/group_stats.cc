// File: server/experiments/group_stats.cc
#include "server/experiments/group_stats.h"

#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/experiments/statistics.h"

namespace alignd::server {
namespace {

constexpr const char* kAlignment[] = {"update_angle_mean", "update_angle_sd", "positive_fraction",
                                      "weight_angle",      "norm_ratio",      "pbp_angle_mean",
                                      "pbp_angle_sd"};

std::optional<double> AlignmentField(const v1::LayerAlignment& a, absl::string_view f) {
  if (f == "update_angle_mean") return a.update_angle_mean();
  if (f == "update_angle_sd") return a.update_angle_sd();
  if (f == "positive_fraction") return a.positive_fraction();
  if (f == "weight_angle") return a.weight_angle();
  if (f == "norm_ratio") return a.norm_ratio();
  if (f == "pbp_angle_mean") return a.pbp_angle_mean();
  if (f == "pbp_angle_sd") return a.pbp_angle_sd();
  return std::nullopt;
}

v1::FigureSummary ToProto(const Summary& s) {
  v1::FigureSummary out;
  out.set_n(s.n);
  out.set_mean(s.mean);
  out.set_sd(s.sd);
  out.set_ci_low(s.ci_low);
  out.set_ci_high(s.ci_high);
  return out;
}

// An evaluation's figure that "best" ranks by: the error rate, or NSE where there is none.
double ErrorOf(const v1::EvalMetrics& m) {
  return std::isnan(m.error_rate()) ? m.nse() : m.error_rate();
}

}  // namespace

std::optional<double> FigureOf(const v1::MetricEvent& e, const std::string& figure) {
  const std::vector<absl::string_view> parts = absl::StrSplit(figure, '.');
  if (parts.size() == 2 && parts[0] == "train" && e.has_step()) {
    const auto& m = e.step();
    if (parts[1] == "loss") return m.loss();
    if (parts[1] == "accuracy") return m.accuracy();
    if (parts[1] == "nse") return m.nse();
    return std::nullopt;
  }
  if (parts.size() == 2 && (parts[0] == "eval" || parts[0] == "validation") && e.has_eval() &&
      e.eval().validation() == (parts[0] == "validation")) {
    const auto& m = e.eval();
    if (parts[1] == "loss") return m.loss();
    if (parts[1] == "accuracy") return m.accuracy();
    if (parts[1] == "error_rate") return m.error_rate();
    if (parts[1] == "nse") return m.nse();
    return std::nullopt;
  }
  int layer = 0;
  if (parts.size() == 3 && parts[0] == "alignment" && e.has_step() &&
      absl::StartsWith(parts[1], "h") && absl::SimpleAtoi(parts[1].substr(1), &layer))
    for (const auto& a : e.step().alignment())
      if (a.layer() == layer) return AlignmentField(a, parts[2]);
  return std::nullopt;
}

std::vector<std::string> FiguresIn(const std::vector<std::vector<v1::MetricEvent>>& logs) {
  bool train = false, validation = false, eval = false;
  int hidden = 0;
  for (const auto& log : logs)
    for (const auto& e : log) {
      if (e.has_step()) {
        train = true;
        for (const auto& a : e.step().alignment()) hidden = std::max(hidden, a.layer());
      } else if (e.has_eval()) {
        (e.eval().validation() ? validation : eval) = true;
      }
    }
  std::vector<std::string> out;
  if (train)
    for (const char* f : {"loss", "accuracy", "nse"}) out.push_back(absl::StrCat("train.", f));
  for (const auto& [on, set] : {std::pair{validation, "validation"}, std::pair{eval, "eval"}})
    if (on)
      for (const char* f : {"loss", "accuracy", "error_rate", "nse"})
        out.push_back(absl::StrCat(set, ".", f));
  for (int h = 1; h <= hidden; ++h)
    for (const char* f : kAlignment) out.push_back(absl::StrCat("alignment.h", h, ".", f));
  return out;
}

v1::ExperimentStatistics::Group GroupStatistics(
    const std::string& id, const std::vector<std::vector<v1::MetricEvent>>& logs,
    std::vector<std::string> figures, int64_t every_steps) {
  if (figures.empty()) figures = FiguresIn(logs);
  v1::ExperimentStatistics::Group g;
  g.set_id(id);
  for (const std::string& figure : figures) {
    std::map<int64_t, std::vector<double>> at;  // step -> one value per session that has it
    for (const auto& log : logs)
      for (const auto& e : log) {
        const int64_t step = e.has_step() ? e.step().step() : e.has_eval() ? e.eval().step() : -1;
        if (step < 0 || (every_steps > 0 && step % every_steps != 0)) continue;
        if (auto v = FigureOf(e, figure)) at[step].push_back(*v);
      }
    auto* series = g.add_series();
    series->set_figure(figure);
    for (const auto& [step, values] : at) {
      series->add_steps(step);
      *series->add_values() = ToProto(Summarize(values));
    }
  }
  // Best validation per session, and the evaluation set's figure at that step.
  std::vector<double> best, eval_at_best;
  auto* b = g.mutable_best();
  for (const auto& log : logs) {
    double v = std::numeric_limits<double>::quiet_NaN();
    int64_t step = -1;
    for (const auto& e : log)
      if (e.has_eval() && e.eval().validation() && !std::isnan(ErrorOf(e.eval())) &&
          (step < 0 || ErrorOf(e.eval()) < v)) {
        v = ErrorOf(e.eval());
        step = e.eval().step();
      }
    double at = std::numeric_limits<double>::quiet_NaN();
    for (const auto& e : log)
      if (step >= 0 && e.has_eval() && !e.eval().validation() && e.eval().step() == step)
        at = ErrorOf(e.eval());
    best.push_back(v);
    eval_at_best.push_back(at);
    b->add_best_steps(step);
  }
  *b->mutable_validation() = ToProto(Summarize(best));
  *b->mutable_eval_at_best() = ToProto(Summarize(eval_at_best));
  return g;
}

}  // namespace alignd::server
