// File: client/sweep.cc
#include "client/sweep.h"

#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "alignd/v1/rule_names.h"
#include "client/cli.h"
#include "google/protobuf/util/json_util.h"

namespace alignd::client {
namespace {

double Mean(const std::vector<double>& v) {
  if (v.empty()) return NAN;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double Sd(const std::vector<double>& v) {
  if (v.size() < 2) return v.empty() ? NAN : 0.0;
  const double m = Mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

}  // namespace

absl::StatusOr<std::vector<SweepRun>> ExpandSweep(const nlohmann::json& spec) {
  if (!spec.is_object() || !spec.contains("dataset") || !spec["dataset"].is_string())
    return absl::InvalidArgumentError("the sweep needs \"dataset\": \"datasets/...\"");
  std::vector<std::string> rules;
  std::vector<uint64_t> seeds;
  try {
    rules = spec.value("rules", std::vector<std::string>{"bp", "fa"});
    seeds = spec.value("seeds", std::vector<uint64_t>{1, 2, 3});
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"rules\" must be a list of names and \"seeds\" of numbers: ", e.what()));
  }
  // The grid's points: the cartesian product of its lists.
  std::vector<nlohmann::json> points = {nlohmann::json::object()};
  const nlohmann::json grid = spec.value("grid", nlohmann::json::object());
  for (auto& [key, values] : grid.items()) {
    if (!values.is_array() || values.empty())
      return absl::InvalidArgumentError(
          absl::StrCat("grid \"", key, "\" must be a non-empty list of values"));
    std::vector<nlohmann::json> next;
    for (const auto& p : points)
      for (const auto& v : values) {
        nlohmann::json q = p;
        q[key] = v;
        next.push_back(q);
      }
    points = next;
  }
  std::vector<SweepRun> runs;
  for (const auto& rule_name : rules) {
    const auto rule = v1::RuleFromName(rule_name);
    if (!rule)
      return absl::InvalidArgumentError(absl::StrCat("rule '", rule_name, "' is not known"));
    for (const auto& point : points)
      for (uint64_t seed : seeds) {
        nlohmann::json c = spec.value("config", nlohmann::json::object());
        c["feedback"]["rule"] = v1::Rule_Name(*rule);
        c["seed"] = seed;
        std::string group = rule_name;
        for (auto& [key, value] : point.items()) {
          nlohmann::json* node = &c;
          for (absl::string_view part : absl::StrSplit(key, '.'))
            node = &(*node)[std::string(part)];
          *node = value;
          absl::StrAppend(&group, " ", key, "=", value.dump());
        }
        SweepRun run;
        run.group = group;
        run.seed = seed;
        v1::Session* s = run.request.mutable_session();
        auto st = google::protobuf::util::JsonStringToMessage(c.dump(), s->mutable_config());
        if (!st.ok())
          return absl::InvalidArgumentError(
              absl::StrCat("config for ", group, ": ", st.ToString()));
        s->set_train_dataset(DatasetName(spec["dataset"].get<std::string>()));
        const std::string eval = spec.value("eval_dataset", std::string());
        if (!eval.empty()) s->set_eval_dataset(DatasetName(eval));
        s->set_display_name(absl::StrCat("sweep ", group, " seed=", seed));
        runs.push_back(std::move(run));
      }
  }
  return runs;
}

std::vector<GroupSummary> Summarize(const std::vector<RunResult>& results) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<double>> eval, loss, angle;
  std::map<std::string, int> count;
  for (const RunResult& r : results) {
    if (!count.count(r.group)) order.push_back(r.group);
    ++count[r.group];
    if (!std::isnan(r.eval)) eval[r.group].push_back(r.eval);
    if (!std::isnan(r.loss)) loss[r.group].push_back(r.loss);
    if (!std::isnan(r.angle)) angle[r.group].push_back(r.angle);
  }
  std::vector<GroupSummary> out;
  for (const auto& g : order) {
    GroupSummary s;
    s.group = g;
    s.runs = count[g];
    s.eval_mean = Mean(eval[g]);
    s.eval_sd = Sd(eval[g]);
    s.loss_mean = Mean(loss[g]);
    s.angle_mean = Mean(angle[g]);
    s.angle_sd = Sd(angle[g]);
    out.push_back(s);
  }
  return out;
}

}  // namespace alignd::client
