// File: server/experiments/group_stats.h
// -----------------------------------------------------------------------------
// A group's statistics from its sessions' metric logs (issue 22, work in progress): per
// figure and step, the summary over the sessions that logged it at that step (so a group
// whose sessions still run is summarised as far as each got); and the best validation value
// of each session with the evaluation set's value at that step.
#ifndef ALIGND_SERVER_EXPERIMENTS_GROUP_STATS_H_
#define ALIGND_SERVER_EXPERIMENTS_GROUP_STATS_H_

#include <optional>
#include <string>
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

// One group's statistics: `logs` holds its sessions' logs, in the group's order.
v1::ExperimentStatistics::Group GroupStatistics(
    const std::string& id, const std::vector<std::vector<v1::MetricEvent>>& logs,
    std::vector<std::string> figures, int64_t every_steps);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_EXPERIMENTS_GROUP_STATS_H_
