// File: client/experiments_cmd.cc
// alignctl experiments create | get | list | watch | compare | cancel | delete (issue 22,
// work in progress). The sweep file is the experiment's spec.
#include <cmath>
#include <fstream>
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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

// The sweep file as an Experiment (sessions sweep --help shows its fields; also "name",
// "labels", "snapshot_every").
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
  v1::Experiment e;
  if (!spec.is_object() || !spec.contains("dataset")) bad("needs \"dataset\"");
  e.set_train_dataset(DatasetName(spec["dataset"].get<std::string>()));
  if (spec.contains("eval_dataset"))
    e.set_eval_dataset(DatasetName(spec["eval_dataset"].get<std::string>()));
  if (spec.contains("name")) e.set_display_name(spec["name"].get<std::string>());
  if (spec.contains("snapshot_every")) e.set_snapshot_every(spec["snapshot_every"].get<int64_t>());
  if (spec.contains("labels"))
    for (const auto& [k, v] : spec["labels"].items())
      (*e.mutable_labels())[k] = v.get<std::string>();
  if (spec.contains("config"))
    if (auto st =
            google::protobuf::util::JsonStringToMessage(spec["config"].dump(), e.mutable_config());
        !st.ok())
      bad("\"config\" is not a TrainingConfig: " + st.ToString());
  // Locals: a range over a temporary's items() would outlive it.
  const nlohmann::json rules = spec.value("rules", nlohmann::json::array());
  const nlohmann::json seeds = spec.value("seeds", nlohmann::json::array());
  const nlohmann::json grid = spec.value("grid", nlohmann::json::object());
  for (const auto& r : rules) {
    auto rule = v1::RuleFromName(r.get<std::string>());
    if (!rule) bad("unknown rule " + r.dump());
    e.add_rules(*rule);
  }
  for (const auto& s : seeds) e.add_seeds(s.get<uint64_t>());
  for (const auto& [field, values] : grid.items()) {
    auto* axis = e.add_grid();
    axis->set_field(field);
    for (const auto& v : values)
      if (!google::protobuf::util::JsonStringToMessage(v.dump(), axis->add_values()).ok())
        bad("grid " + field + ": " + v.dump());
  }
  return e;
}

void PrintExperiment(const v1::Experiment& e) {
  PrintOne(e, e.name(), [&] {
    std::cout << e.name() << "  " << e.display_name() << "  " << v1::ExperimentState_Name(e.state())
              << "  " << e.sessions_ended() << "/" << e.sessions_total() << " sessions ended\n";
    Table t({"GROUP", "RULE", "POINT", ">SESSIONS"});
    for (const auto& g : e.groups()) {
      std::string point;
      for (const auto& [k, v] : g.point()) {
        std::string text;
        (void)google::protobuf::util::MessageToJsonString(v, &text);
        absl::StrAppend(&point, point.empty() ? "" : " ", k, "=", text);
      }
      t.AddRow({g.id(), v1::RuleShortName(g.rule()), point.empty() ? "-" : point,
                absl::StrCat(g.sessions_size())});
    }
    std::cout << t.Render();
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

}  // namespace

void AddExperimentCommands(CLI::App& app) {
  auto* ex = app.add_subcommand("experiments",
                                "grids of sessions (rules x seeds x config values) "
                                "run, summarised and compared as one (preview)");
  ex->require_subcommand(1);
  struct Create {
    std::string file, request_id, id;
    bool watch = false;
  };
  auto c = std::make_shared<Create>();
  auto* create = ex->add_subcommand("create", "create an experiment from a sweep file");
  create->add_option("file", c->file, "the spec, JSON: as `sessions sweep --help` shows")
      ->required();
  create->add_option("--request-id", c->request_id, "makes a retried create the same experiment");
  create->add_option("--id", c->id, "the experiment's id (default: the server picks one)");
  create->add_flag("--watch", c->watch, "follow its sessions until they end");
  create->callback([c] {
    v1::CreateExperimentRequest req;
    *req.mutable_experiment() = FromFile(c->file);
    req.set_request_id(c->request_id);
    req.set_experiment_id(c->id);
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::Experiment e;
    if (auto st = Stub()->CreateExperiment(&ctx, req, &e); !st.ok()) Fail(st, "experiments create");
    PrintExperiment(e);
    if (!c->watch) return;
    std::vector<std::string> names;
    for (const auto& g : e.groups())
      names.insert(names.end(), g.sessions().begin(), g.sessions().end());
    const Output o = G().format();
    std::exit(Watcher(names, o == Output::kJson, o == Output::kJsonl).Run());
  });

  auto name = std::make_shared<std::string>();
  auto* get = ex->add_subcommand("get", "an experiment: its groups and progress");
  get->add_option("name", *name, "experiments/{id} or the id")->required();
  get->callback([name] { PrintExperiment(Get(*name)); });

  auto* list = ex->add_subcommand("list", "the experiments you may see");
  list->callback([] {
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::ListExperimentsResponse resp;
    if (auto st = Stub()->ListExperiments(&ctx, v1::ListExperimentsRequest(), &resp); !st.ok())
      Fail(st, "experiments list");
    if (G().format() == Output::kJson) {
      std::cout << Json(resp) << "\n";
      return;
    }
    Table t({"NAME", "STATE", ">ENDED", "DISPLAY NAME"});
    for (const auto& e : resp.experiments())
      t.AddRow({e.name(), v1::ExperimentState_Name(e.state()),
                absl::StrCat(e.sessions_ended(), "/", e.sessions_total()), e.display_name()});
    std::cout << t.Render();
  });

  auto* watch = ex->add_subcommand("watch", "follow an experiment's sessions live");
  watch->add_option("name", *name, "experiments/{id} or the id")->required();
  watch->callback([name] {
    const v1::Experiment e = Get(*name);
    std::vector<std::string> names;
    for (const auto& g : e.groups())
      names.insert(names.end(), g.sessions().begin(), g.sessions().end());
    const Output o = G().format();
    std::exit(Watcher(names, o == Output::kJson, o == Output::kJsonl).Run());
  });

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

  auto* del = ex->add_subcommand("delete", "delete an experiment and its sessions");
  del->add_option("name", *name, "experiments/{id} or the id")->required();
  del->callback([name] {
    v1::DeleteExperimentRequest req;
    req.set_name(ExperimentName(*name));
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    google::protobuf::Empty e;
    if (auto st = Stub()->DeleteExperiment(&ctx, req, &e); !st.ok()) Fail(st, "experiments delete");
    std::cout << "deleted " << req.name() << "\n";
  });
}

}  // namespace alignd::client
