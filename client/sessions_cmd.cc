// File: client/sessions_cmd.cc
// alignctl sessions create | list | get | pause | resume | cancel | delete | watch |
// predict | evaluate | sweep (and the `train` and `watch` shortcuts).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "alignd/v1/rule_names.h"
#include "alignd/v1/sessions.grpc.pb.h"
#include "client/cli.h"
#include "client/commands.h"
#include "client/create_request.h"
#include "client/data_files.h"
#include "client/layers.h"
#include "client/sweep.h"
#include "client/table.h"
#include "client/watch.h"

namespace alignd::client {
namespace {

std::unique_ptr<v1::TrainingService::Stub> Stub() {
  return v1::TrainingService::NewStub(G().Channel());
}

std::string State(v1::SessionState s) {
  std::string n = v1::SessionState_Name(s);
  return n.rfind("SESSION_STATE_", 0) == 0 ? n.substr(14) : n;
}

}  // namespace

std::vector<v1::Session> ListAllSessions(v1::ListSessionsRequest req, const std::string& what) {
  auto stub = Stub();
  std::vector<v1::Session> all;
  do {
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::ListSessionsResponse resp;
    if (auto st = stub->ListSessions(&ctx, req, &resp); !st.ok()) Fail(st, what);
    all.insert(all.end(), resp.sessions().begin(), resp.sessions().end());
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return all;
}

namespace {

// "seed=1,study=depth" (sorted), or "-".
std::string Labels(const v1::Session& s) {
  std::map<std::string, std::string> sorted(s.labels().begin(), s.labels().end());
  std::vector<std::string> parts;
  for (const auto& [k, v] : sorted) parts.push_back(absl::StrCat(k, "=", v));
  return parts.empty() ? "-" : absl::StrJoin(parts, ",");
}

// Why a session ended early: stop_reason (STOPPED by its experiment's early stopping),
// failure_reason (FAILED), or "-".
std::string Reason(const v1::Session& s) {
  if (!s.stop_reason().empty()) return s.stop_reason();
  return s.failure_reason().empty() ? "-" : s.failure_reason();
}

void PrintSessions(const std::vector<v1::Session>& ss) {
  const Output o = G().format();
  if (o == Output::kJson) {
    v1::ListSessionsResponse out;
    for (const auto& s : ss) *out.add_sessions() = s;
    std::cout << Json(out) << "\n";
    return;
  }
  if (o == Output::kJsonl || o == Output::kName) {
    for (const auto& s : ss) std::cout << (o == Output::kName ? s.name() : Json(s, false)) << "\n";
    return;
  }
  const bool wide = o == Output::kWide;
  std::vector<std::string> headers = {"NAME", "RULE", "STATE", ">STEP", "SIZES", "DISPLAY NAME"};
  if (wide) headers.insert(headers.end(), {"TRAIN", "EVAL", ">LAST SEQ", "LABELS", "WHY ENDED"});
  Table t(headers);
  for (const auto& s : ss) {
    std::vector<std::string> row = {s.name(),
                                    v1::RuleShortName(s.config().feedback().rule()),
                                    State(s.state()),
                                    absl::StrCat(s.step(), "/", s.total_steps()),
                                    absl::StrJoin(s.config().network().sizes(), "-"),
                                    s.display_name()};
    if (wide)
      row.insert(row.end(), {s.train_dataset(), s.eval_dataset().empty() ? "-" : s.eval_dataset(),
                             absl::StrCat(s.last_seq()), Labels(s), Reason(s)});
    t.AddRow(row);
  }
  std::cout << t.Render();
  // A network of layers, in --layers' grammar (one session, or -o wide).
  if (wide || ss.size() == 1)
    for (const auto& s : ss) {
      const v1::NetworkConfig& n = s.config().network();
      if (n.layers_size() == 0) continue;
      std::cout << s.name() << " layers: " << FormatLayers(n.layers());
      if (n.has_input_shape()) std::cout << " on input " << FormatImageShape(n.input_shape());
      std::cout << "\n";
    }
  if (!wide)
    for (const auto& s : ss) {
      if (s.state() == v1::SESSION_STATE_FAILED)
        std::cout << s.name() << " failed: " << s.failure_reason() << "\n";
      else if (s.state() == v1::SESSION_STATE_STOPPED)
        std::cout << s.name() << " stopped: " << s.stop_reason() << "\n";
    }
}

// The create flags on `c` (sessions create, and the train shortcut).
void AddCreate(CLI::App* c) {
  auto f = std::make_shared<CreateFlags>();
  auto watch = std::make_shared<bool>(false);
  c->add_option("--dataset", f->dataset, "training data set: datasets/{id} or the id")->required();
  c->add_option("--eval-dataset", f->eval_dataset, "evaluation data set");
  c->add_option("--config", f->config_file,
                "a TrainingConfig as JSON (proto field names); the flags given override it");
  c->add_option("--name", f->display_name, "display name");
  c->add_option("--label", f->labels,
                "a label key=value to find it by (sessions list --filter 'labels.key = value'); "
                "repeatable");
  c->add_option("--id", f->session_id, "the session's id (default: the server picks one)");
  c->add_option("--request-id", f->request_id, "makes a retried create return the first session");
  auto opt = [c](const std::string& flag, auto& target, const std::string& help) {
    using T = typename std::remove_reference_t<decltype(target)>::value_type;
    c->add_option_function<T>(
        flag, [&target](const T& v) { target = v; }, help);
  };
  opt("--sizes", f->sizes, "layer widths, input first, e.g. 784,1000,10 (dense layers)");
  opt("--layers", f->layers,
      "the layers, comma-separated: conv:CxKHxKW[:sS][:pP] (C channels, a KHxKW kernel, stride, "
      "zero padding), pool:W or maxpool:W[:sS] (W x W windows, stride W unless :s), avgpool:W, "
      "dense:N, flatten; the last makes the outputs. LeNet-5: "
      "conv:6x5x5,pool:2,conv:16x5x5,pool:2,dense:120,dense:84,dense:10. Replaces --sizes (the "
      "server derives them)");
  opt("--input-shape", f->input_shape,
      "the input image, CxHxW (e.g. 1x32x32) or HxW; default: the data set's feature shape");
  opt("--hidden-activation", f->hidden_activation,
      "linear | tanh | logistic | relu (default tanh)");
  opt("--output-activation", f->output_activation,
      "linear | tanh | logistic | relu | softmax (default linear)");
  opt("--loss", f->loss, "mse | cross-entropy (default mse)");
  c->add_flag("--no-bias", f->no_bias, "no bias terms (the paper's linear network)");
  opt("--connection-sparsity", f->connection_sparsity, "fraction of W and B removed for good");
  opt("--rule", f->rule,
      absl::StrCat(
          "learning rule: ",
          [] {
            std::string s;
            for (v1::Rule r : v1::AllRules())
              absl::StrAppend(&s, s.empty() ? "" : " | ", v1::RuleShortName(r));
            return s;
          }(),
          " (default fa). pbp on nets with square hidden layers (64-100-100-10): use "
          "--pinv-damping, the exact W+ diverges there (docs/SCIENCE.md)"));
  opt("--feedback-scale", f->feedback_scale, "scale of B, > 0 (default: automatic)");
  opt("--sign-mode", f->sign_mode,
      "sign symmetry's magnitudes M: scaled (mean|W| per layer: BP's scale, default) | "
      "uniform (uSF, M = 1: ~1/mean|W| times BP's signal under SGD) | fixed-random (frSF) | "
      "batch-random (brSF: |B| redrawn every step)");
  opt("--pinv-damping", f->pinv_damping,
      "pseudo-backprop: 0 = exact W+ (default); > 0 = damped (W'W + lambda I)^-1 W' with lambda "
      "= this x W's mean squared singular value; try 0.01-0.1 for deep tanh nets, where the "
      "exact W+ blows up along small singular directions");
  opt("--feedback-distribution", f->feedback_distribution, "uniform | gaussian (default uniform)");
  opt("--init", f->init, "uniform | xavier | he (default xavier)");
  opt("--init-scale", f->init_scale, "omega of U[-omega, omega] (--init uniform; default 0.05)");
  opt("--optimizer", f->optimizer, "sgd | adam (default sgd)");
  opt("--lr", f->lr, "learning rate (default 0.01)");
  opt("--momentum", f->momentum, "SGD momentum (default 0)");
  opt("--weight-decay", f->weight_decay, "L2 weight decay (default 0)");
  opt("--batch", f->batch_size, "batch size (default 32; 1 = per example)");
  opt("--epochs", f->epochs, "passes over the data (default 1)");
  opt("--threads", f->threads,
      "threads for the session's step: its products and the work around them (default 1; at "
      "most the server's --max_threads; the same count gives the same weights)");
  opt("--max-steps", f->max_steps, "steps (overrides --epochs)");
  opt("--seed", f->seed, "seed of weights and shuffling (default 1)");
  opt("--metrics-every", f->metrics_every, "a metric event every k steps (default 100; 0 none)");
  opt("--eval-every", f->eval_every,
      "evaluate (validation examples, then --eval-dataset) every k steps (default: at the end)");
  opt("--validation-fraction", f->validation_fraction,
      "hold out the last fraction of the training set for validation, in [0, 1) (default 0; "
      "1/6 of MNIST's 60000 = the last 10000)");
  opt("--snapshot-every", f->snapshot_every, "weight snapshot every k steps (default: the last)");
  opt("--checkpoint-every", f->checkpoint_every,
      "checkpoint every k steps (default: the server's)");
  auto weights_file = std::make_shared<std::string>();
  c->add_option("--initial-weights", *weights_file,
                "start from these weights: a .safetensors file as `sessions export -f "
                "safetensors` writes (W0, b0, ...; any subset: the rest drawn from the seed)");
  c->add_flag("--watch", *watch, "follow the session until it ends");
  c->callback([f, watch, weights_file] {
    if (!weights_file->empty()) {
      std::error_code ec;
      if (!std::filesystem::is_regular_file(*weights_file, ec))
        Fail(absl::NotFoundError("--initial-weights " + *weights_file + " is not a file"));
      std::ifstream in(*weights_file, std::ios::binary);
      if (!in) Fail(absl::NotFoundError("cannot open --initial-weights " + *weights_file));
      std::stringstream ss;
      ss << in.rdbuf();
      f->initial_weights = ss.str();
      if (f->initial_weights.empty())
        Fail(absl::InvalidArgumentError("--initial-weights " + *weights_file + " is empty"));
    }
    if (!f->config_file.empty()) {
      std::ifstream in(f->config_file);
      if (!in) Fail(absl::NotFoundError("cannot open --config " + f->config_file));
      std::stringstream ss;
      ss << in.rdbuf();
      f->config_json = ss.str();
    }
    auto req = BuildCreateRequest(*f);
    if (!req.ok()) Fail(req.status());
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::Session s;
    if (auto st = Stub()->CreateSession(&ctx, *req, &s); !st.ok()) Fail(st, "sessions create");
    const Output o = G().format();
    if (o == Output::kJson && !*watch)
      std::cout << Json(s) << "\n";
    else if (o != Output::kJsonl)
      std::cout << s.name() << "\n";
    if (*watch) std::exit(Watcher({s.name()}, o == Output::kJson, o == Output::kJsonl).Run());
  });
}

void AddWatch(CLI::App* w) {
  auto names = std::make_shared<std::vector<std::string>>();
  w->add_option("names", *names, "sessions/{id} or ids")->required();
  w->callback([names] {
    std::vector<std::string> full;
    for (const auto& n : *names) full.push_back(SessionName(n));
    const Output o = G().format();
    std::exit(Watcher(full, o == Output::kJson, o == Output::kJsonl).Run());
  });
}

// get, pause, resume, cancel: one name, the session back.
template <typename Req>
void AddVerb(CLI::App* sessions, const std::string& verb, const std::string& help,
             grpc::Status (v1::TrainingService::Stub::*call)(grpc::ClientContext*, const Req&,
                                                             v1::Session*)) {
  auto name = std::make_shared<std::string>();
  auto* c = sessions->add_subcommand(verb, help);
  c->add_option("name", *name, "sessions/{id} or the id")->required();
  c->callback([name, verb, call] {
    Req req;
    req.set_name(SessionName(*name));
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::Session s;
    auto stub = Stub();
    if (auto st = ((*stub).*call)(&ctx, req, &s); !st.ok()) Fail(st, "sessions " + verb);
    PrintOne(s, s.name(), [&] { PrintSessions({s}); });
  });
}

void AddSweep(CLI::App* sw) {
  auto file = std::make_shared<std::string>();
  sw->add_option("file", *file, "the sweep, JSON (see below)")->required();
  sw->footer(R"(The sweep file:
  {
    "dataset": "datasets/...", "eval_dataset": "datasets/...",       (eval optional)
    "config": { TrainingConfig as JSON, proto field names },
    "rules": ["bp", "fa", "dfa"],  "seeds": [1, 2, 3],
    "grid": {"optimizer.learning_rate": [0.01, 0.05]}                 (optional; dotted paths)
  }
One session per (rule, grid point, seed); all are watched; the table gives the mean and SD over
seeds of the last evaluation (test error or NSE), the last batch loss and the alignment angle.
`alignctl experiments create FILE` takes the same file as one experiment (server-side
statistics, compare, early stopping), with "name", "labels", "snapshot_every" and
"early_stopping" besides (see its --help); there, without "rules" or "seeds", the config's
own rule or seed alone is run.)");
  sw->callback([file] {
    std::ifstream in(*file);
    if (!in) Fail(absl::NotFoundError("cannot open " + *file));
    nlohmann::json spec;
    try {
      spec = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      Fail(absl::InvalidArgumentError(*file + ": " + e.what()));
    }
    auto runs = ExpandSweep(spec);
    if (!runs.ok())
      Fail(absl::InvalidArgumentError(absl::StrCat(*file, ": ", runs.status().message())));
    auto stub = Stub();
    std::vector<std::string> names;
    for (const SweepRun& r : *runs) {
      grpc::ClientContext ctx;
      G().SetDeadline(ctx);
      v1::Session s;
      if (auto st = stub->CreateSession(&ctx, r.request, &s); !st.ok())
        Fail(st, "sweep: create " + r.group);
      names.push_back(s.name());
    }
    const Output o = G().format();
    Watcher w(names, /*quiet=*/o == Output::kJson, o == Output::kJsonl);
    const int rc = w.Run();
    std::vector<RunResult> results;
    bool classification = false;
    for (size_t i = 0; i < runs->size(); ++i) {
      const WatchRow& row = w.rows().at(names[i]);
      RunResult r;
      r.group = (*runs)[i].group;
      if (row.last_eval.examples() > 0) {
        classification |= !std::isnan(row.last_eval.error_rate());
        r.eval = std::isnan(row.last_eval.error_rate()) ? row.last_eval.nse()
                                                        : row.last_eval.error_rate();
      }
      r.loss = row.last_step.loss();
      if (row.last_step.alignment_size()) r.angle = row.last_step.alignment(0).update_angle_mean();
      results.push_back(r);
    }
    const auto summary = Summarize(results);
    if (o == Output::kJson || o == Output::kJsonl) {
      nlohmann::json table = nlohmann::json::array();
      auto num = [](double v) { return std::isnan(v) ? nlohmann::json() : nlohmann::json(v); };
      for (const auto& g : summary)
        table.push_back({{"run", g.group},
                         {"seeds", g.runs},
                         {"eval_mean", num(g.eval_mean)},
                         {"eval_sd", num(g.eval_sd)},
                         {"loss_mean", num(g.loss_mean)},
                         {"angle_mean", num(g.angle_mean)},
                         {"angle_sd", num(g.angle_sd)}});
      std::cout << table.dump(o == Output::kJson ? 1 : -1) << "\n";
    } else {
      Table t(
          {"RUN", ">SEEDS", classification ? ">EVAL ERROR" : ">EVAL NSE", ">LOSS", ">ANGLE (deg)"});
      for (const auto& g : summary)
        t.AddRow({g.group, absl::StrCat(g.runs),
                  std::isnan(g.eval_mean) ? "-"
                                          : absl::StrFormat("%.4g +- %.2g", g.eval_mean, g.eval_sd),
                  Num(g.loss_mean),
                  std::isnan(g.angle_mean)
                      ? "-"
                      : absl::StrFormat("%.1f +- %.1f", g.angle_mean, g.angle_sd)});
      std::cout << "\n" << t.Render();
    }
    std::exit(rc);
  });
}

}  // namespace

void AddSessionCommands(CLI::App& app, CLI::App& shortcuts) {
  auto* ss = app.add_subcommand(
      "sessions", "create, list, control, watch, predict with and evaluate training sessions");
  ss->require_subcommand(1);
  AddCreate(ss->add_subcommand("create", "create a training session (and --watch it)"));
  AddCreate(shortcuts.add_subcommand("train", "= sessions create")->group("Shortcuts"));

  auto state = std::make_shared<std::string>();
  auto filter_text = std::make_shared<std::string>();
  auto* list = ss->add_subcommand("list", "list sessions");
  list->add_option("--state", *state,
                   "only queued, running, paused, succeeded, failed, cancelled or stopped (by "
                   "an experiment's early stopping) ones");
  list->add_option("--filter", *filter_text,
                   "only those it matches (AIP-160): labels.KEY = VALUE, rule = fa, state = "
                   "succeeded, display_name = \"fa-*\", ... joined by AND, OR, NOT, ( )");
  list->footer(R"(Filter examples:
  alignctl sessions list --filter 'labels.study = depth AND (rule = fa OR rule = bp)'
  alignctl sessions list --filter 'labels.seed:* AND NOT state = failed'
  alignctl sessions list --filter 'display_name = "lenet-*"'
  alignctl sessions list --filter 'experiment = "experiments/ID" AND state = stopped'
The fields: labels.KEY, rule, state, name, display_name, train_dataset, eval_dataset, owner,
experiment ("experiments/ID"), experiment_group (g0, g1, ...); a value ending in * matches by
prefix; OR binds tighter than AND (AIP-160).)");
  list->callback([state, filter_text] {
    v1::SessionState filter = v1::SESSION_STATE_UNSPECIFIED;
    if (!state->empty()) {
      auto v = ParseEnumValue(v1::SessionState_descriptor(), "SESSION_STATE_", *state, "--state");
      if (!v.ok()) Fail(v.status());
      filter = static_cast<v1::SessionState>(*v);
    }
    v1::ListSessionsRequest req;
    req.set_state(filter);
    req.set_filter(*filter_text);
    const std::vector<v1::Session> all = ListAllSessions(req, "sessions list");
    PrintSessions(all);
  });

  auto* rules =
      app.add_subcommand("rules", "the learning rules the server trains, with their traits");
  rules->callback([] {
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::ListRulesResponse resp;
    if (auto st = Stub()->ListRules(&ctx, v1::ListRulesRequest(), &resp); !st.ok())
      Fail(st, "rules");
    const Output o = G().format();
    if (o == Output::kJson) {
      std::cout << Json(resp) << "\n";
      return;
    }
    if (o == Output::kJsonl || o == Output::kName) {
      for (const auto& r : resp.rules())
        std::cout << (o == Output::kName ? r.name() : Json(r, false)) << "\n";
      return;
    }
    Table t({"RULE", "TITLE", "HIDDEN", "B", "CONV", "REFERENCE"});
    for (const auto& r : resp.rules()) {
      std::string b = !r.has_feedback()     ? "-"
                      : r.learns_feedback() ? "learned"
                      : r.refreshes()       ? "from W"
                      : r.draws_feedback()  ? "random"
                                            : "yes";
      if (r.feedback_shape() == v1::FEEDBACK_SHAPE_OUTPUT_TO_UNITS) b += " (from the output)";
      t.AddRow({r.name(), r.title(), r.learns_hidden() ? "yes" : "no", b,
                r.trains_conv() ? "yes" : "no", r.reference()});
    }
    std::cout << t.Render();
  });

  AddVerb<v1::GetSessionRequest>(ss, "get", "show a session",
                                 &v1::TrainingService::Stub::GetSession);
  AddVerb<v1::PauseSessionRequest>(ss, "pause", "pause a session at a checkpoint",
                                   &v1::TrainingService::Stub::PauseSession);
  AddVerb<v1::ResumeSessionRequest>(ss, "resume", "resume a paused session",
                                    &v1::TrainingService::Stub::ResumeSession);
  AddVerb<v1::CancelSessionRequest>(ss, "cancel", "end a session that is not finished",
                                    &v1::TrainingService::Stub::CancelSession);

  auto name = std::make_shared<std::string>();
  auto* del = ss->add_subcommand("delete", "delete a session that is not queued or running");
  del->add_option("name", *name, "sessions/{id} or the id")->required();
  del->callback([name] {
    v1::DeleteSessionRequest req;
    req.set_name(SessionName(*name));
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    google::protobuf::Empty e;
    if (auto st = Stub()->DeleteSession(&ctx, req, &e); !st.ok()) Fail(st, "sessions delete");
    if (G().format() == Output::kName)
      std::cout << req.name() << "\n";
    else
      std::cout << "deleted " << req.name() << "\n";
  });

  AddExportCommand(ss);

  AddWatch(ss->add_subcommand(
      "watch", "follow sessions live: progress, steps/s, ETA, loss, accuracy, alignment angle"));
  AddWatch(shortcuts.add_subcommand("watch", "= sessions watch")->group("Shortcuts"));

  struct Predict {
    std::string name, in, out;
  };
  auto p = std::make_shared<Predict>();
  auto* predict = ss->add_subcommand("predict", "network outputs for inputs from a .npy file");
  predict
      ->add_option("name", p->name, "a session (latest weights) or sessions/{id}/snapshots/{step}")
      ->required();
  predict->add_option("--npy", p->in, "inputs, n x d .npy (images: n x H x W or n x C x H x W)")
      ->required();
  predict->add_option("--out", p->out, "write the n x outputs array here (.npy)");
  predict->callback([p] {
    auto x = ReadNpyMatrix(p->in);
    if (!x.ok()) Fail(x.status());
    v1::PredictRequest req;
    req.set_name(SessionName(p->name));
    // features x examples, column-major == the n x d array's row-major values
    req.mutable_inputs()->set_rows(x->cols);
    req.mutable_inputs()->set_cols(x->rows);
    *req.mutable_inputs()->mutable_values() = {x->values.begin(), x->values.end()};
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::PredictResponse resp;
    if (auto st = Stub()->Predict(&ctx, req, &resp); !st.ok()) Fail(st, "sessions predict");
    const int64_t outs = resp.outputs().rows(), n = resp.outputs().cols();
    if (!p->out.empty())
      if (auto st = WriteNpy(p->out, n, outs, resp.outputs().values().data()); !st.ok()) Fail(st);
    const Output o = G().format();
    if (o == Output::kJson || o == Output::kJsonl) {
      std::cout << Json(resp, o == Output::kJson) << "\n";
    } else if (p->out.empty()) {
      for (int64_t j = 0; j < n; ++j) {
        std::printf("%lld:", static_cast<long long>(j));
        for (int64_t i = 0; i < outs; ++i)
          std::printf(" %.5g", resp.outputs().values(j * outs + i));
        if (j < resp.classes_size()) std::printf("  -> class %d", resp.classes(j));
        std::printf("\n");
      }
    } else {
      std::printf("wrote %lld x %lld outputs (weights of step %lld) to %s\n",
                  static_cast<long long>(n), static_cast<long long>(outs),
                  static_cast<long long>(resp.step()), p->out.c_str());
    }
  });

  struct Eval {
    std::string name, dataset;
  };
  auto ev = std::make_shared<Eval>();
  auto* evaluate = ss->add_subcommand(
      "evaluate", "loss and error (or NSE) of a session's weights on a data set");
  evaluate
      ->add_option("name", ev->name, "a session (latest weights) or sessions/{id}/snapshots/{step}")
      ->required();
  evaluate->add_option("--dataset", ev->dataset,
                       "datasets/{id} or the id (default: the session's evaluation set)");
  evaluate->callback([ev] {
    v1::EvaluateRequest req;
    req.set_name(SessionName(ev->name));
    if (!ev->dataset.empty()) req.set_dataset(DatasetName(ev->dataset));
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::EvaluateResponse resp;
    if (auto st = Stub()->Evaluate(&ctx, req, &resp); !st.ok()) Fail(st, "sessions evaluate");
    const v1::EvalMetrics& m = resp.metrics();
    PrintOne(m, req.name(), [&] {
      if (m.examples() > 0 && !std::isnan(m.error_rate()))
        std::printf("step %lld on %lld examples: loss %.6g, error %.4f (accuracy %.4f)\n",
                    static_cast<long long>(m.step()), static_cast<long long>(m.examples()),
                    m.loss(), m.error_rate(), m.accuracy());
      else
        std::printf("step %lld on %lld examples: loss %.6g, NSE %.6g\n",
                    static_cast<long long>(m.step()), static_cast<long long>(m.examples()),
                    m.loss(), m.nse());
    });
  });

  AddSweep(
      ss->add_subcommand("sweep", "run a grid of rules x seeds x hyperparameters and compare"));
}

}  // namespace alignd::client
