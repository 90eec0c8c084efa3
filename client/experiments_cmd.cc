// File: client/experiments_cmd.cc
// alignctl experiments create | get | list | watch | compare | cancel | delete (issue 22).
// The spec file is the sweep file (sessions sweep) with an experiment's fields besides:
// "name", "labels", "snapshot_every" and "early_stopping". A session an experiment's policy
// stops ends STOPPED; get and watch show those with their stop_reason.
#include <cctype>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "alignd/v1/experiments.grpc.pb.h"
#include "alignd/v1/rule_names.h"
#include "client/cli.h"
#include "client/commands.h"
#include "client/table.h"
#include "client/watch.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace alignd::client {
namespace {

std::unique_ptr<v1::ExperimentService::Stub> Stub() {
  return v1::ExperimentService::NewStub(G().Channel());
}

std::string ExperimentName(const std::string& s) {
  return s.rfind("experiments/", 0) == 0 ? s : "experiments/" + s;
}

// The spec's fields (`experiments create --help`); any other is refused, so that a misspelt
// one ("early_stoping") is not silently left out.
constexpr const char* kSpecFields[] = {"dataset", "eval_dataset",   "name",          "labels",
                                       "config",  "snapshot_every", "rules",         "variants",
                                       "seeds",   "grid",           "early_stopping"};

// The spec file as an Experiment; exits with INVALID_ARGUMENT naming the file and the field.
v1::Experiment FromFile(const std::string& file) {
  std::ifstream in(file);
  if (!in) Fail(absl::NotFoundError("cannot open " + file));
  nlohmann::json spec;
  try {
    spec = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    Fail(absl::InvalidArgumentError(file + ": " + e.what()));
  }
  auto bad = [&](const std::string& why) { Fail(absl::InvalidArgumentError(file + ": " + why)); };
  // A JSON object field as a proto message through protobuf's JSON mapping.
  auto message = [&](const char* field, const char* type, google::protobuf::Message* m) {
    if (auto st = google::protobuf::util::JsonStringToMessage(spec[field].dump(), m); !st.ok())
      bad(absl::StrCat("\"", field, "\" is not ", type, ": ", std::string(st.message())));
  };
  if (!spec.is_object() || !spec.contains("dataset")) bad("needs \"dataset\"");
  for (const auto& [key, value] : spec.items()) {
    bool known = false;
    for (const char* f : kSpecFields) known |= key == f;
    if (!known)
      bad(absl::StrCat("unknown field \"", key, "\" (the fields: ",
                       absl::StrJoin(std::begin(kSpecFields), std::end(kSpecFields), ", "), ")"));
  }
  v1::Experiment e;
  // The field being read, for nlohmann's type errors ("must be a string").
  std::string field;
  try {
    field = "dataset";
    e.set_train_dataset(DatasetName(spec["dataset"].get<std::string>()));
    field = "eval_dataset";
    if (spec.contains("eval_dataset"))
      e.set_eval_dataset(DatasetName(spec["eval_dataset"].get<std::string>()));
    field = "name";
    if (spec.contains("name")) e.set_display_name(spec["name"].get<std::string>());
    field = "snapshot_every";
    if (spec.contains("snapshot_every"))
      e.set_snapshot_every(spec["snapshot_every"].get<int64_t>());
    field = "labels";
    if (spec.contains("labels"))
      for (const auto& [k, v] : spec["labels"].items())
        (*e.mutable_labels())[k] = v.get<std::string>();
    if (spec.contains("config")) message("config", "a TrainingConfig", e.mutable_config());
    if (spec.contains("early_stopping")) {
      message("early_stopping",
              "an EarlyStopping ({\"asha\": {\"min_steps\": N, \"reduction_factor\": ETA, "
              "\"rungs\": K}} or {\"median\": {\"grace_steps\": N, \"min_sessions\": M}})",
              e.mutable_early_stopping());
      if (e.early_stopping().policy_case() == v1::EarlyStopping::POLICY_NOT_SET)
        bad("\"early_stopping\" names no policy: give \"asha\" or \"median\"");
    }
    // Locals: a range over a temporary's items() would outlive it.
    field = "rules";
    const nlohmann::json rules = spec.value("rules", nlohmann::json::array());
    for (const auto& r : rules) {
      auto rule = v1::RuleFromName(r.get<std::string>());
      if (!rule) bad("unknown rule " + r.dump());
      e.add_rules(*rule);
    }
    field = "variants";
    const nlohmann::json variants = spec.value("variants", nlohmann::json::array());
    if (!variants.is_array()) bad("\"variants\" must be a list of {\"rule\", \"set\", \"name\"}");
    for (const auto& v : variants) {
      if (!v.is_object() || !v.contains("rule"))
        bad("each of \"variants\" needs a \"rule\": " + v.dump());
      auto rule = v1::RuleFromName(v["rule"].get<std::string>());
      if (!rule) bad("variants: unknown rule " + v["rule"].dump());
      v1::Variant* var = e.add_variants();
      var->set_rule(*rule);
      if (v.contains("name")) var->set_name(v["name"].get<std::string>());
      const nlohmann::json set = v.value("set", nlohmann::json::object());
      if (!set.is_object()) bad("variants: \"set\" must be an object: {\"field.path\": value}");
      for (const auto& [path, value] : set.items())
        if (!google::protobuf::util::JsonStringToMessage(value.dump(), &(*var->mutable_set())[path])
                 .ok())
          bad("variants: " + path + ": " + value.dump());
    }
    field = "seeds";
    const nlohmann::json seeds = spec.value("seeds", nlohmann::json::array());
    for (const auto& s : seeds) e.add_seeds(s.get<uint64_t>());
    field = "grid";
    const nlohmann::json grid = spec.value("grid", nlohmann::json::object());
    if (!grid.is_object()) bad("\"grid\" must be an object: {\"field.path\": [values]}");
    for (const auto& [path, values] : grid.items()) {
      if (!values.is_array() || values.empty())
        bad("grid \"" + path + "\" must be a non-empty list of values");
      auto* axis = e.add_grid();
      axis->set_field(path);
      for (const auto& v : values)
        if (!google::protobuf::util::JsonStringToMessage(v.dump(), axis->add_values()).ok())
          bad("grid " + path + ": " + v.dump());
    }
  } catch (const nlohmann::json::exception& x) {
    bad(absl::StrCat("\"", field, "\": ", x.what()));
  }
  return e;
}

// RUNNING, SUCCEEDED, CANCELLED.
std::string ExperimentState(v1::ExperimentState s) {
  std::string n = v1::ExperimentState_Name(s);
  return n.rfind("EXPERIMENT_STATE_", 0) == 0 ? n.substr(17) : n;
}

std::string StateWord(v1::SessionState s) {
  std::string n = v1::SessionState_Name(s);
  n = n.rfind("SESSION_STATE_", 0) == 0 ? n.substr(14) : n;
  for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return n;
}

// "8 succeeded, 4 stopped" (in the states' order), or "-".
std::string Counts(const std::map<v1::SessionState, int>& counts) {
  std::vector<std::string> parts;
  for (const auto& [state, n] : counts) parts.push_back(absl::StrCat(n, " ", StateWord(state)));
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

// The experiment's sessions (ListSessions by its name), by name.
std::map<std::string, v1::Session> SessionsOf(const v1::Experiment& e) {
  v1::ListSessionsRequest req;
  req.set_filter(absl::StrCat("experiment = \"", e.name(), "\""));
  std::map<std::string, v1::Session> out;
  for (auto& s : ListAllSessions(req, "experiments get: its sessions"))
    out[s.name()] = std::move(s);
  return out;
}

// The table: the experiment's progress, its groups with their sessions' states, then the
// sessions an early-stopping policy stopped (with stop_reason) and those that failed.
void PrintExperiment(const v1::Experiment& e) {
  PrintOne(e, e.name(), [&] {
    const auto sessions = SessionsOf(e);
    std::map<v1::SessionState, int> all;
    for (const auto& [n, s] : sessions) ++all[s.state()];
    std::cout << e.name() << "  " << e.display_name() << "  " << ExperimentState(e.state()) << "  "
              << e.sessions_ended() << "/" << e.sessions_total() << " sessions ended ("
              << Counts(all) << ")\n";
    // The policy with its defaults filled in (0 = 3 for eta and min_sessions).
    if (const auto& p = e.early_stopping(); p.has_asha())
      std::cout << absl::StrFormat(
          "early stopping: ASHA, min_steps %d, reduction_factor %d, rungs %s\n",
          p.asha().min_steps(), p.asha().reduction_factor() == 0 ? 3 : p.asha().reduction_factor(),
          p.asha().rungs() == 0 ? "as many as fit" : absl::StrCat(p.asha().rungs()));
    else if (p.has_median())
      std::cout << absl::StrFormat("early stopping: median, grace_steps %d, min_sessions %d\n",
                                   p.median().grace_steps(),
                                   p.median().min_sessions() == 0 ? 3 : p.median().min_sessions());
    Table t({"GROUP", "RULE", "POINT", ">SESSIONS", "STATES"});
    std::vector<std::string> notes;
    for (const auto& g : e.groups()) {
      std::string point;
      for (const auto& [k, v] : g.point()) {
        std::string text;
        (void)google::protobuf::util::MessageToJsonString(v, &text);
        absl::StrAppend(&point, point.empty() ? "" : " ", k, "=", text);
      }
      std::map<v1::SessionState, int> counts;
      for (const auto& name : g.sessions()) {
        const auto it = sessions.find(name);
        if (it == sessions.end()) continue;
        const v1::Session& s = it->second;
        ++counts[s.state()];
        if (s.state() == v1::SESSION_STATE_STOPPED)
          notes.push_back(absl::StrCat(name, " (", g.id(), ") stopped: ", s.stop_reason()));
        else if (s.state() == v1::SESSION_STATE_FAILED)
          notes.push_back(absl::StrCat(name, " (", g.id(), ") failed: ", s.failure_reason()));
      }
      t.AddRow({g.id(), v1::RuleShortName(g.rule()), point.empty() ? "-" : point,
                absl::StrCat(g.sessions_size()), Counts(counts)});
    }
    std::cout << t.Render();
    for (const auto& n : notes) std::cout << n << "\n";
  });
}

v1::Experiment Get(const std::string& name) {
  v1::GetExperimentRequest req;
  req.set_name(ExperimentName(name));
  grpc::ClientContext ctx;
  G().SetDeadline(ctx);
  v1::Experiment e;
  if (auto st = Stub()->GetExperiment(&ctx, req, &e); !st.ok()) Fail(st, "experiments get");
  return e;
}

// Follows the experiment's sessions until they end (the watch table), then shows it as
// `experiments get` does (-o json: the experiment; -o jsonl: the events alone). Exits 1 if
// a session failed (stopped ones are no failure).
[[noreturn]] void WatchExperiment(const v1::Experiment& e) {
  std::vector<std::string> names;
  for (const auto& g : e.groups())
    names.insert(names.end(), g.sessions().begin(), g.sessions().end());
  const Output o = G().format();
  const int rc = Watcher(names, o == Output::kJson, o == Output::kJsonl).Run();
  if (o != Output::kJsonl) {
    if (o != Output::kJson) std::cout << "\n";
    PrintExperiment(Get(e.name()));
  }
  std::exit(rc);
}

std::vector<v1::Experiment> ListAllExperiments(v1::ListExperimentsRequest req) {
  auto stub = Stub();
  std::vector<v1::Experiment> all;
  do {
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::ListExperimentsResponse resp;
    if (auto st = stub->ListExperiments(&ctx, req, &resp); !st.ok()) Fail(st, "experiments list");
    all.insert(all.end(), resp.experiments().begin(), resp.experiments().end());
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return all;
}

// "study=depth,suite=x" (sorted), or "-".
std::string Labels(const v1::Experiment& e) {
  std::map<std::string, std::string> sorted(e.labels().begin(), e.labels().end());
  std::vector<std::string> parts;
  for (const auto& [k, v] : sorted) parts.push_back(absl::StrCat(k, "=", v));
  return parts.empty() ? "-" : absl::StrJoin(parts, ",");
}

}  // namespace

void AddExperimentCommands(CLI::App& app) {
  auto* ex = app.add_subcommand("experiments",
                                "grids of sessions (rules x seeds x config values) run, "
                                "stopped early, summarised and compared as one");
  ex->require_subcommand(1);
  struct Create {
    std::string file, request_id, id;
    bool watch = false;
  };
  auto c = std::make_shared<Create>();
  auto* create = ex->add_subcommand("create", "create an experiment from a spec (sweep) file");
  create->add_option("file", c->file, "the spec, JSON (see below)")->required();
  create->add_option("--request-id", c->request_id,
                     "makes a retried create the same experiment (and creates what the first "
                     "did not)");
  create->add_option("--id", c->id, "the experiment's id (default: the server picks one)");
  create->add_flag("--watch", c->watch,
                   "follow its sessions until they end, then show it as `experiments get`");
  create->footer(R"(The spec file (the sweep file of `sessions sweep`, with more fields):
  {
    "dataset": "datasets/...", "eval_dataset": "datasets/...",       (eval optional)
    "name": "lr study", "labels": {"study": "lr"},                    (optional)
    "config": { TrainingConfig as JSON, proto field names },
    "rules": ["bp", "fa"],  "seeds": [1, 2, 3],
    "variants": [{"rule": "bp", "set": {"optimizer.learning_rate": 0.2}},
                 {"rule": "fa", "name": "FA slow", "set": {"optimizer.learning_rate": 0.05}}],
                                                  (optional; rules with settings, not with "rules")
    "grid": {"optimizer.learning_rate": [0.01, 0.05]},               (optional; dotted paths)
    "early_stopping": {"asha": {"min_steps": 50, "reduction_factor": 3, "rungs": 0}},
                  or  {"median": {"grace_steps": 100, "min_sessions": 3}}  (optional)
    "snapshot_every": 0                                              (optional)
  }
One session per (rule or variant, grid point, seed); a group is a rule or variant and a grid
point over the seeds (g0, g1, ...). Without "rules" or "seeds", the config's rule or seed alone. Early stopping
ranks sessions by their validation figure: it needs config.validation_fraction > 0 and
config.eval_every > 0; a stopped session ends STOPPED with its stop_reason.)");
  create->callback([c] {
    v1::CreateExperimentRequest req;
    *req.mutable_experiment() = FromFile(c->file);
    req.set_request_id(c->request_id);
    req.set_experiment_id(c->id);
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::Experiment e;
    if (auto st = Stub()->CreateExperiment(&ctx, req, &e); !st.ok()) Fail(st, "experiments create");
    const Output o = G().format();
    if (!c->watch || (o != Output::kJson && o != Output::kJsonl)) PrintExperiment(e);
    if (c->watch) WatchExperiment(e);
  });

  auto name = std::make_shared<std::string>();
  auto* get = ex->add_subcommand(
      "get",
      "an experiment: its progress, its groups with their sessions' states, and the sessions "
      "stopped early (with why) or failed");
  get->add_option("name", *name, "experiments/{id} or the id")->required();
  get->callback([name] { PrintExperiment(Get(*name)); });

  struct List {
    std::string filter;
    int32_t page_size = 0;
  };
  auto l = std::make_shared<List>();
  auto* list = ex->add_subcommand("list", "the experiments you may see, all pages");
  list->add_option("--filter", l->filter,
                   "only those it matches (AIP-160): labels.KEY = VALUE, rule = fa, state = "
                   "running, display_name = \"lr-*\", ... joined by AND, OR, NOT, ( )");
  list->add_option("--page-size", l->page_size,
                   "experiments per call (default: the server's, 50); all pages are listed");
  list->footer(R"(Filter examples:
  alignctl experiments list --filter 'labels.study = lr AND state = succeeded'
  alignctl experiments list --filter 'rule = fa OR rule = dfa'
  alignctl experiments list --filter 'display_name = "lr-*" AND NOT state = cancelled'
The fields: labels.KEY, rule (any of the experiment's rules), state (running, succeeded,
cancelled), name, display_name, train_dataset, eval_dataset, owner; a value ending in *
matches by prefix; OR binds tighter than AND (AIP-160).)");
  list->callback([l] {
    v1::ListExperimentsRequest req;
    req.set_filter(l->filter);
    req.set_page_size(l->page_size);
    const std::vector<v1::Experiment> all = ListAllExperiments(req);
    const Output o = G().format();
    if (o == Output::kJson) {
      v1::ListExperimentsResponse out;
      for (const auto& e : all) *out.add_experiments() = e;
      std::cout << Json(out) << "\n";
      return;
    }
    if (o == Output::kJsonl || o == Output::kName) {
      for (const auto& e : all)
        std::cout << (o == Output::kName ? e.name() : Json(e, false)) << "\n";
      return;
    }
    std::vector<std::string> headers = {"NAME", "STATE", ">ENDED", "DISPLAY NAME"};
    if (o == Output::kWide) headers.insert(headers.end(), {"RULES", ">GROUPS", "LABELS"});
    Table t(headers);
    for (const auto& e : all) {
      std::vector<std::string> row = {e.name(), ExperimentState(e.state()),
                                      absl::StrCat(e.sessions_ended(), "/", e.sessions_total()),
                                      e.display_name()};
      if (o == Output::kWide) {
        std::vector<std::string> rules;
        for (int r : e.rules()) rules.push_back(v1::RuleShortName(static_cast<v1::Rule>(r)));
        for (const auto& v : e.variants())
          rules.push_back(v.name().empty() ? v1::RuleShortName(v.rule()) : v.name());
        row.insert(row.end(), {rules.empty() ? "-" : absl::StrJoin(rules, ","),
                               absl::StrCat(e.groups_size()), Labels(e)});
      }
      t.AddRow(row);
    }
    std::cout << t.Render();
  });

  auto* watch = ex->add_subcommand(
      "watch",
      "follow an experiment's sessions live until they end, then show it as `experiments get` "
      "(stopped sessions with why); exit 1 if a session failed");
  watch->add_option("name", *name, "experiments/{id} or the id")->required();
  watch->callback([name] { WatchExperiment(Get(*name)); });

  struct Compare {
    std::string name, a, b, figure;
  };
  auto cmp = std::make_shared<Compare>();
  auto* compare = ex->add_subcommand("compare",
                                     "two groups over their shared seeds: paired "
                                     "difference, 95 % interval, t-test and Wilcoxon");
  compare->add_option("name", cmp->name, "experiments/{id} or the id")->required();
  compare->add_option("a", cmp->a, "a group: g0, g1, ...")->required();
  compare->add_option("b", cmp->b, "the other group")->required();
  compare->add_option("--figure", cmp->figure,
                      "best.eval (default: the test figure at the best validation step), "
                      "best.validation, or a figure's last value (train.loss, eval.error_rate)");
  compare->callback([cmp] {
    v1::CompareGroupsRequest req;
    req.set_name(ExperimentName(cmp->name));
    req.set_group_a(cmp->a);
    req.set_group_b(cmp->b);
    req.set_figure(cmp->figure);
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::GroupComparison r;
    if (auto st = Stub()->CompareGroups(&ctx, req, &r); !st.ok()) Fail(st, "experiments compare");
    PrintOne(r, req.name(), [&] {
      std::cout << absl::StrFormat(
          "%s - %s over %d seeds: %.6g [%.6g, %.6g] (95 %%), paired t p = %.3g, Wilcoxon p = "
          "%.3g\n",
          cmp->a, cmp->b, r.n(), r.diff(), r.ci_low(), r.ci_high(), r.p_t(), r.p_w());
    });
  });

  auto* cancel = ex->add_subcommand("cancel", "cancel every session that has not ended");
  cancel->add_option("name", *name, "experiments/{id} or the id")->required();
  cancel->callback([name] {
    v1::CancelExperimentRequest req;
    req.set_name(ExperimentName(*name));
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::Experiment e;
    if (auto st = Stub()->CancelExperiment(&ctx, req, &e); !st.ok()) Fail(st, "experiments cancel");
    PrintExperiment(e);
  });

  auto* del = ex->add_subcommand(
      "delete", "delete an experiment and its sessions (none may run: cancel it first)");
  del->add_option("name", *name, "experiments/{id} or the id")->required();
  del->callback([name] {
    v1::DeleteExperimentRequest req;
    req.set_name(ExperimentName(*name));
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    google::protobuf::Empty e;
    if (auto st = Stub()->DeleteExperiment(&ctx, req, &e); !st.ok()) Fail(st, "experiments delete");
    if (G().format() == Output::kName)
      std::cout << req.name() << "\n";
    else
      std::cout << "deleted " << req.name() << "\n";
  });
}

}  // namespace alignd::client
