// File: server/experiments/group_stats.h
// -----------------------------------------------------------------------------
// A group's statistics from its sessions' metric logs: per
// figure and step, the summary over the sessions that logged it at that step (so a group
// whose sessions still run is summarised as far as each got); and the best validation value
// of each session with the evaluation set's value at that step.
//
// A log is read once into SessionColumns (its figures as columns, in log order), which the
// statistics are computed from; an ended session's columns never change, so the caller may
// keep them (experiment_impl.cc does).
#ifndef ALIGND_SERVER_EXPERIMENTS_GROUP_STATS_H_
#define ALIGND_SERVER_EXPERIMENTS_GROUP_STATS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "alignd/v1/experiments.pb.h"
#include "alignd/v1/sessions.pb.h"

namespace alignd::server {

// The value of `figure` in `event`, if it carries it: "train.loss" | "train.accuracy" |
// "train.nse" (step events), "eval.X" and "validation.X" with X loss, accuracy, error_rate,
// nse (evaluations of that set), "alignment.h{i}.{update_angle_mean|update_angle_sd|
// positive_fraction|weight_angle|norm_ratio|pbp_angle_mean|pbp_angle_sd}".
std::optional<double> FigureOf(const v1::MetricEvent& event, const std::string& figure);

// Every figure the logs carry, in a stable order (train, validation, eval, alignment).
std::vector<std::string> FiguresIn(const std::vector<std::vector<v1::MetricEvent>>& logs);

// One session's log as columns: per kind of event that carries figures (step events; step
// events that carry layer L's alignment; validation and test evaluations), the steps of those
// events and each figure's values, in log order.
struct SessionColumns {
  struct Source {
    std::vector<int64_t> steps;
    std::vector<std::vector<double>> fields;  // one column per figure of the kind, as steps
    bool ascending = true;                    // steps strictly ascending
  };
  Source train;                                // loss, accuracy, nse
  std::vector<std::pair<int, Source>> layers;  // by layer: the 7 alignment figures
  Source validation, eval;                     // loss, accuracy, error_rate, nse
  // The best (lowest) validation figure, its step (-1: none) and the test figure there.
  double best = 0, eval_at_best = 0;
  int64_t best_step = -1;

  const Source* layer(int l) const;
  size_t bytes() const;  // memory held, about
};

// Builds a session's columns from its events, given in log order (after those of `start`).
class ColumnsBuilder {
 public:
  explicit ColumnsBuilder(SessionColumns start = {}) : c_(std::move(start)) {}
  void Add(const v1::MetricEvent& event);
  SessionColumns Finish() &&;

 private:
  SessionColumns c_;
};
SessionColumns ColumnsOf(const std::vector<v1::MetricEvent>& log);

// Where a figure is: the kind of event and the column (kind kNone: no event carries it).
struct FigureRef {
  enum Kind { kNone, kTrain, kAlignment, kValidation, kEval } kind = kNone;
  int layer = 0;  // kAlignment
  int field = 0;  // the column in its Source
};
FigureRef ParseFigure(const std::string& figure);
// The column `ref` names in `s` (nullptr if the session has none).
const SessionColumns::Source* SourceOf(const SessionColumns& s, const FigureRef& ref);

// One group's statistics: `sessions` holds its sessions' columns, in the group's order.
v1::ExperimentStatistics::Group GroupStatistics(const std::string& id,
                                                const std::vector<const SessionColumns*>& sessions,
                                                std::vector<std::string> figures,
                                                int64_t every_steps);
// The same from the logs themselves.
v1::ExperimentStatistics::Group GroupStatistics(
    const std::string& id, const std::vector<std::vector<v1::MetricEvent>>& logs,
    std::vector<std::string> figures, int64_t every_steps);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_EXPERIMENTS_GROUP_STATS_H_
