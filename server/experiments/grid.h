// File: server/experiments/grid.h
// -----------------------------------------------------------------------------
// An experiment's sessions: the base config with each rule,
// grid point and seed set, in the order groups are numbered (rules, then grid points in the
// order the axes give them, the last axis fastest), each group's seeds in the order given.
#ifndef ALIGND_SERVER_EXPERIMENTS_GRID_H_
#define ALIGND_SERVER_EXPERIMENTS_GRID_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "alignd/v1/experiments.pb.h"

namespace alignd::server {

struct PlannedSession {
  std::string group;  // "g0", ...
  v1::Rule rule = v1::RULE_UNSPECIFIED;
  std::string variant;  // its variant's name
  std::map<std::string, google::protobuf::Value> point;
  uint64_t seed = 0;
  v1::TrainingConfig config;
};

// Sets the TrainingConfig field at `path` ("optimizer.learning_rate") to `value` (a number
// for numeric fields, integral for integer ones; a string for strings and enums, by value
// name; a bool for bools). InvalidArgument names `what` and says why.
absl::Status SetConfigField(const std::string& path, const google::protobuf::Value& value,
                            const std::string& what, v1::TrainingConfig* config);

// Every session of `experiment`, or InvalidArgument naming the field ("experiment.grid[1]
// .values[2]: ..."). At most `max_sessions` (else InvalidArgument with the count).
absl::StatusOr<std::vector<PlannedSession>> PlanSessions(const v1::Experiment& experiment,
                                                         int max_sessions);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_EXPERIMENTS_GRID_H_
