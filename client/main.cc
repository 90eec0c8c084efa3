// alignctl: the command line of alignd. `alignctl --help` and `alignctl CMD --help`.
//
//   alignctl health
//   alignctl datasets generate --kind linear --examples 2000
//   alignctl upload --idx train-images-idx3-ubyte train-labels-idx1-ubyte --name mnist-train
//   alignctl train --dataset datasets/ab12... --sizes 30,20,10 --rule fa --watch
//   alignctl sessions list | get | pause | resume | cancel | delete NAME
//   alignctl watch sessions/abc sessions/def
//   alignctl snapshot get sessions/abc --out weights/
//
// The server is --server (default $ALIGND_SERVER or localhost:50051). Tables for people
// by default; --json (one JSON document) or --jsonl (a line per event) for scripts.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "alignd/health/v1/health.grpc.pb.h"
#include "alignd/v1/datasets.grpc.pb.h"
#include "alignd/v1/sessions.grpc.pb.h"
#include "client/data_files.h"
#include "google/protobuf/util/json_util.h"

namespace {

using namespace alignd;

struct Globals {
  std::string server;
  bool json = false;
  bool jsonl = false;
  double timeout_s = 30;
} g;

std::shared_ptr<grpc::Channel> Channel() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(g.server, grpc::InsecureChannelCredentials(), args);
}

void SetDeadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(int64_t(g.timeout_s * 1000)));
}

[[noreturn]] void Fail(const grpc::Status& s, const std::string& what) {
  static const char* kCodes[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int code = s.error_code();
  std::cerr << "alignctl: " << what << ": " << (code >= 0 && code <= 16 ? kCodes[code] : "?")
            << ": " << s.error_message() << "\n";
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE)
    std::cerr << "  (is alignd running at " << g.server << "? set --server or ALIGND_SERVER)\n";
  std::exit(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? 2 : 1);
}

[[noreturn]] void Fail(const absl::Status& s) {
  std::cerr << "alignctl: " << s.message() << "\n";
  std::exit(s.code() == absl::StatusCode::kNotFound ? 1 : 2);
}

std::string Json(const google::protobuf::Message& m, bool pretty = true) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = pretty;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

std::string Num(double v, int prec = 4) {
  if (std::isnan(v)) return "-";
  std::ostringstream s;
  s.precision(prec);
  s << v;
  return s.str();
}

const char* RuleShort(v1::Rule r) {
  switch (r) {
    case v1::RULE_BACKPROP:
      return "bp";
    case v1::RULE_FEEDBACK_ALIGNMENT:
      return "fa";
    case v1::RULE_DIRECT_FEEDBACK_ALIGNMENT:
      return "dfa";
    case v1::RULE_SIGN_SYMMETRY:
      return "sign";
    case v1::RULE_KOLEN_POLLACK:
      return "kp";
    case v1::RULE_PSEUDO_BACKPROP:
      return "pbp";
    case v1::RULE_SHALLOW:
      return "shallow";
    default:
      return "?";
  }
}

void PrintDatasets(const std::vector<v1::Dataset>& ds) {
  std::printf("%-26s %-28s %10s %-10s %8s\n", "NAME", "DISPLAY NAME", "EXAMPLES", "FEATURES",
              "TARGETS");
  for (const auto& d : ds) {
    std::string shape;
    for (int i = 0; i < d.feature_shape_size(); ++i) {
      if (i) shape += 'x';
      shape += std::to_string(d.feature_shape(i));
    }
    const std::string targets = d.target_kind() == v1::TARGET_KIND_CLASS_LABELS
                                    ? std::to_string(d.num_classes()) + " cls"
                                    : std::to_string(d.target_dim()) + " dim";
    std::printf("%-26s %-28s %10lld %-10s %8s\n", d.name().c_str(),
                d.display_name().substr(0, 28).c_str(), static_cast<long long>(d.num_examples()),
                shape.c_str(), targets.c_str());
  }
}

void PrintSessions(const std::vector<v1::Session>& ss) {
  std::printf("%-22s %-8s %-10s %12s %-16s %s\n", "NAME", "RULE", "STATE", "STEP", "SIZES",
              "DISPLAY NAME");
  for (const auto& s : ss) {
    std::string sizes;
    for (int i = 0; i < s.config().network().sizes_size(); ++i) {
      if (i) sizes += '-';
      sizes += std::to_string(s.config().network().sizes(i));
    }
    const std::string step = std::to_string(s.step()) + "/" + std::to_string(s.total_steps());
    std::printf("%-22s %-8s %-10s %12s %-16s %s\n", s.name().c_str(),
                RuleShort(s.config().feedback().rule()), v1::SessionState_Name(s.state()).c_str(),
                step.c_str(), sizes.c_str(), s.display_name().c_str());
    if (s.state() == v1::FAILED) std::printf("    failed: %s\n", s.failure_reason().c_str());
  }
}

// ---- watch ------------------------------------------------------------------------------

struct WatchRow {
  v1::Session session;
  v1::StepMetrics last_step;
  v1::EvalMetrics last_eval;
  bool ended = false;
};

class Watcher {
 public:
  // quiet: no table (the caller prints the result itself, e.g. sweep --json).
  explicit Watcher(std::vector<std::string> names, bool quiet = false)
      : names_(std::move(names)), tty_(isatty(1)), quiet_(quiet) {}

  const std::map<std::string, WatchRow>& rows() const { return rows_; }

  int Run() {
    auto channel = Channel();
    stub_ = v1::TrainingService::NewStub(channel);
    for (const auto& n : names_) {
      v1::GetSessionRequest req;
      req.set_name(n);
      grpc::ClientContext ctx;
      SetDeadline(ctx);
      v1::Session s;
      if (auto st = stub_->GetSession(&ctx, req, &s); !st.ok()) Fail(st, "watch " + n);
      rows_[n].session = s;
    }
    std::vector<std::thread> threads;
    for (const auto& n : names_) threads.emplace_back([this, n] { Follow(n); });
    std::thread painter;
    if (!g.jsonl && !quiet_)
      painter = std::thread([this] {
        while (!AllEnded()) {
          Paint(false);
          std::this_thread::sleep_for(std::chrono::milliseconds(tty_ ? 200 : 5000));
        }
      });
    for (auto& t : threads) t.join();
    if (painter.joinable()) painter.join();
    if (!g.jsonl && !quiet_) Paint(true);
    int failed = 0;
    for (auto& [n, r] : rows_) failed += r.session.state() == v1::FAILED;
    return failed ? 1 : 0;
  }

 private:
  // Streams one session's metrics; on a dropped connection resumes from the last seq.
  void Follow(const std::string& name) {
    int64_t next_seq = 1;
    int backoff_ms = 100;
    auto lost_since = std::chrono::steady_clock::now();
    while (true) {
      grpc::ClientContext ctx;
      v1::StreamMetricsRequest req;
      req.set_name(name);
      req.set_start_seq(next_seq);
      auto reader = stub_->StreamMetrics(&ctx, req);
      v1::MetricEvent e;
      while (reader->Read(&e)) {
        backoff_ms = 100;
        lost_since = std::chrono::steady_clock::now();
        std::lock_guard<std::mutex> lock(mu_);
        WatchRow& row = rows_[name];
        if (g.jsonl) {
          std::string line = Json(e, false);
          std::printf("{\"session\":\"%s\",\"event\":%s}\n", name.c_str(), line.c_str());
          std::fflush(stdout);
        }
        if (e.has_step()) row.last_step = e.step(), row.session.set_step(e.step().step());
        if (e.has_eval()) row.last_eval = e.eval();
        if (e.has_heartbeat()) row.session.set_state(e.heartbeat());
        if (e.has_end()) {
          row.session = e.end();
          row.ended = true;
        }
        if (!e.has_heartbeat() && !e.has_end()) next_seq = e.seq() + 1;
      }
      const grpc::Status st = reader->Finish();
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (rows_[name].ended) return;
        if (st.ok()) return;
        if (st.error_code() != grpc::StatusCode::UNAVAILABLE &&
            st.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED &&
            st.error_code() != grpc::StatusCode::CANCELLED &&
            st.error_code() != grpc::StatusCode::INTERNAL) {
          rows_[name].ended = true;
          std::cerr << "alignctl: watch " << name << ": " << st.error_message() << "\n";
          return;
        }
        if (std::chrono::steady_clock::now() - lost_since > std::chrono::seconds(60)) {
          rows_[name].ended = true;
          std::cerr << "alignctl: watch " << name << ": no connection for 60 s ("
                    << st.error_message() << "); giving up. `alignctl watch " << name
                    << "` resumes where it left off.\n";
          return;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = std::min(backoff_ms * 2, 5000);
    }
  }

  bool AllEnded() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [n, r] : rows_)
      if (!r.ended) return false;
    return true;
  }

  void Paint(bool final) {
    std::lock_guard<std::mutex> lock(mu_);
    std::ostringstream out;
    if (tty_ && painted_lines_ > 0 && !final) out << "\x1b[" << painted_lines_ << "F";
    if (tty_ && painted_lines_ > 0 && final) out << "\x1b[" << painted_lines_ << "F";
    char buf[512];
    std::snprintf(buf, sizeof buf, "%-20s %-7s %-10s %-24s %10s %9s %9s %10s\x1b[K\n", "SESSION",
                  "RULE", "STATE", "PROGRESS", "LOSS", "ACC/NSE", "EVAL", "ANGLE");
    out << (tty_ ? buf : std::string(buf, std::strlen(buf) - 4) + "\n");
    for (const auto& n : names_) {
      const WatchRow& r = rows_[n];
      const double frac =
          r.session.total_steps() > 0 ? double(r.session.step()) / r.session.total_steps() : 0;
      std::string bar(16, ' ');
      for (int i = 0; i < int(frac * 16 + 1e-9) && i < 16; ++i) bar[i] = '#';
      const std::string progress = "[" + bar + "] " + std::to_string(int(frac * 100)) + "%";
      const double acc =
          std::isnan(r.last_step.accuracy()) ? r.last_step.nse() : r.last_step.accuracy();
      const double eval =
          std::isnan(r.last_eval.error_rate()) ? r.last_eval.nse() : r.last_eval.error_rate();
      const double angle =
          r.last_step.alignment_size() ? r.last_step.alignment(0).update_angle_mean() : NAN;
      char angle_text[32] = "-";
      if (!std::isnan(angle)) std::snprintf(angle_text, sizeof angle_text, "%.1f deg", angle);
      std::snprintf(buf, sizeof buf, "%-20s %-7s %-10s %-24s %10s %9s %9s %10s%s\n",
                    n.substr(0, 20).c_str(), RuleShort(r.session.config().feedback().rule()),
                    v1::SessionState_Name(r.session.state()).c_str(), progress.c_str(),
                    Num(r.last_step.loss()).c_str(), Num(acc).c_str(),
                    r.last_eval.examples() ? Num(eval).c_str() : "-", angle_text,
                    tty_ ? "\x1b[K" : "");
      out << buf;
    }
    painted_lines_ = 1 + static_cast<int>(names_.size());
    std::fputs(out.str().c_str(), stdout);
    std::fflush(stdout);
  }

  std::vector<std::string> names_;
  bool tty_;
  bool quiet_;
  std::unique_ptr<v1::TrainingService::Stub> stub_;
  std::mutex mu_;
  std::map<std::string, WatchRow> rows_;
  int painted_lines_ = 0;
};

// ---- train ------------------------------------------------------------------------------

struct TrainFlags {
  std::string dataset, eval_dataset, name, config_file, sizes = "", hidden, output, loss,
                                                        rule = "fa", optimizer;
  std::string init, feedback_dist;
  float lr = 0, momentum = 0, weight_decay = 0, feedback_scale = 0, init_scale = NAN,
        connection_sparsity = 0;
  int batch = 0, epochs = 0, metrics_every = 0, eval_every = 0;
  int64_t max_steps = 0, snapshot_every = 0, checkpoint_every = 0;
  uint64_t seed = 0;
  bool no_bias = false, watch = false;
};

template <typename E>
E ParseEnum(const std::string& text, const std::string& prefix,
            bool (*parse)(const std::string&, E*), const char* flag) {
  if (text.empty()) return E{};
  std::string upper = prefix;
  for (char c : text)
    upper += static_cast<char>(c == '-' ? '_' : std::toupper(static_cast<unsigned char>(c)));
  E value;
  if (!parse(upper, &value)) {
    std::cerr << "alignctl: " << flag << " '" << text << "' is not known\n";
    std::exit(2);
  }
  return value;
}

v1::Rule ParseRule(const std::string& r) {
  static const std::map<std::string, v1::Rule> kShort = {
      {"bp", v1::RULE_BACKPROP},
      {"fa", v1::RULE_FEEDBACK_ALIGNMENT},
      {"dfa", v1::RULE_DIRECT_FEEDBACK_ALIGNMENT},
      {"sign", v1::RULE_SIGN_SYMMETRY},
      {"kp", v1::RULE_KOLEN_POLLACK},
      {"pbp", v1::RULE_PSEUDO_BACKPROP},
      {"shallow", v1::RULE_SHALLOW}};
  if (auto it = kShort.find(r); it != kShort.end()) return it->second;
  std::cerr << "alignctl: --rule '" << r
            << "' is not known; expected one of: bp, fa, dfa, sign, kp, pbp, shallow\n";
  std::exit(2);
}

v1::CreateSessionRequest BuildTrain(const TrainFlags& f) {
  v1::CreateSessionRequest r;
  if (!f.config_file.empty()) {
    std::ifstream in(f.config_file);
    if (!in) Fail(absl::NotFoundError("cannot open --config " + f.config_file));
    std::stringstream ss;
    ss << in.rdbuf();
    auto st = google::protobuf::util::JsonStringToMessage(ss.str(), r.mutable_config());
    if (!st.ok())
      Fail(absl::InvalidArgumentError(absl::StrCat(f.config_file, ": ", st.ToString())));
  }
  auto* c = r.mutable_config();
  r.set_train_dataset(f.dataset);
  r.set_eval_dataset(f.eval_dataset);
  r.set_display_name(f.name);
  r.set_snapshot_every(f.snapshot_every);
  r.set_checkpoint_every(f.checkpoint_every);
  if (!f.sizes.empty()) {
    c->mutable_network()->clear_sizes();
    for (absl::string_view s : absl::StrSplit(f.sizes, ','))
      c->mutable_network()->add_sizes(std::atoi(std::string(s).c_str()));
  }
  if (!f.hidden.empty())
    c->mutable_network()->set_hidden_activation(
        ParseEnum<v1::Activation>(f.hidden, "ACTIVATION_", v1::Activation_Parse, "--hidden"));
  if (!f.output.empty())
    c->mutable_network()->set_output_activation(
        ParseEnum<v1::Activation>(f.output, "ACTIVATION_", v1::Activation_Parse, "--output"));
  if (!f.loss.empty())
    c->mutable_network()->set_loss(ParseEnum<v1::Loss>(f.loss == "mse" ? "squared_error" : f.loss,
                                                       "LOSS_", v1::Loss_Parse, "--loss"));
  if (f.no_bias) c->mutable_network()->set_no_bias(true);
  if (f.connection_sparsity > 0)
    c->mutable_network()->set_connection_sparsity(f.connection_sparsity);
  if (!f.rule.empty() && f.config_file.empty()) c->mutable_feedback()->set_rule(ParseRule(f.rule));
  if (f.feedback_scale > 0) c->mutable_feedback()->set_scale(f.feedback_scale);
  if (!f.feedback_dist.empty())
    c->mutable_feedback()->set_distribution(ParseEnum<v1::Distribution>(
        f.feedback_dist, "DISTRIBUTION_", v1::Distribution_Parse, "--feedback_dist"));
  if (!f.init.empty())
    c->mutable_init()->set_kind(
        ParseEnum<v1::WeightInit>(f.init, "WEIGHT_INIT_", v1::WeightInit_Parse, "--init"));
  if (!std::isnan(f.init_scale)) c->mutable_init()->set_scale(f.init_scale);
  if (!f.optimizer.empty())
    c->mutable_optimizer()->set_kind(
        ParseEnum<v1::Optimizer>(f.optimizer, "OPTIMIZER_", v1::Optimizer_Parse, "--optimizer"));
  if (f.lr != 0) c->mutable_optimizer()->set_learning_rate(f.lr);
  if (f.momentum != 0) c->mutable_optimizer()->set_momentum(f.momentum);
  if (f.weight_decay != 0) c->mutable_optimizer()->set_weight_decay(f.weight_decay);
  if (f.batch != 0) c->set_batch_size(f.batch);
  if (f.epochs != 0) c->set_epochs(f.epochs);
  if (f.max_steps != 0) c->set_max_steps(f.max_steps);
  if (f.seed != 0) c->set_seed(f.seed);
  if (f.metrics_every != 0) c->set_metrics_every(f.metrics_every);
  if (f.eval_every != 0) c->set_eval_every(f.eval_every);
  return r;
}

// ---- snapshot -> .npy -------------------------------------------------------------------

// Stores a column-major rows x cols matrix as a C-order .npy array.
void WriteMatrixNpy(const std::string& path, int64_t rows, int64_t cols, const float* col_major) {
  std::vector<float> row_major(rows * cols);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) row_major[i * cols + j] = col_major[j * rows + i];
  if (absl::Status s = client::WriteNpy(path, rows, cols, row_major.data()); !s.ok()) Fail(s);
}

// ---- sweep -------------------------------------------------------------------------------

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? NAN : s / v.size();
}
double Sd(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = Mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / (v.size() - 1));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"alignctl: drive alignd, the training service for backprop and feedback alignment"};
  app.require_subcommand(1);
  g.server = std::getenv("ALIGND_SERVER") ? std::getenv("ALIGND_SERVER") : "localhost:50051";
  app.add_option("--server", g.server,
                 "alignd address (default $ALIGND_SERVER or localhost:50051)");
  app.add_flag("--json", g.json, "print JSON instead of tables");
  app.add_flag("--jsonl", g.jsonl, "watch: one JSON line per event");
  app.add_option("--timeout", g.timeout_s, "seconds per call (not streams)")->capture_default_str();

  auto* health = app.add_subcommand("health", "is the server up and serving?");

  auto* datasets = app.add_subcommand("datasets", "list, get, generate or delete data sets");
  datasets->require_subcommand(1);
  auto* ds_list = datasets->add_subcommand("list", "list data sets");
  std::string ds_name;
  auto* ds_get = datasets->add_subcommand("get", "show one data set");
  ds_get->add_option("name", ds_name, "datasets/{id}")->required();
  auto* ds_delete = datasets->add_subcommand("delete", "delete a data set no live session uses");
  ds_delete->add_option("name", ds_name, "datasets/{id}")->required();
  auto* ds_gen =
      datasets->add_subcommand("generate", "make a built-in task's data set (no upload)");
  std::string gen_kind = "linear", gen_split = "train", gen_name;
  int64_t gen_n = 1000;
  int gen_in = 0, gen_out = 0;
  float gen_noise = 0;
  uint64_t gen_seed = 1;
  ds_gen->add_option("--kind", gen_kind, "linear | nonlinear | toy")->capture_default_str();
  ds_gen->add_option("--split", gen_split, "train | test (same teacher, other inputs)")
      ->capture_default_str();
  ds_gen->add_option("--examples", gen_n, "number of examples")->capture_default_str();
  ds_gen->add_option("--input_dim", gen_in, "linear: input width (default 30)");
  ds_gen->add_option("--output_dim", gen_out, "linear: output width (default 10)");
  ds_gen->add_option("--noise", gen_noise, "linear: target noise SD")->capture_default_str();
  ds_gen->add_option("--seed", gen_seed, "teacher and input seed")->capture_default_str();
  ds_gen->add_option("--name", gen_name, "display name");

  auto* upload = app.add_subcommand("upload", "upload a data set from IDX, CSV or .npy files");
  std::vector<std::string> idx, npy;
  std::string csv, up_name;
  bool regression = false, csv_header = false;
  int target_dim = 1;
  upload->add_option("--idx", idx, "IMAGES LABELS: an IDX pair, e.g. MNIST's (.gz too)")
      ->expected(2);
  upload->add_option("--csv", csv,
                     "CSV file; label (or --target_dim targets) in the last column(s)");
  upload->add_option("--npy", npy, "FEATURES TARGETS: two .npy files")->expected(2);
  upload->add_flag("--regression", regression, "float targets instead of class labels");
  upload->add_option("--target_dim", target_dim, "CSV regression: number of target columns")
      ->capture_default_str();
  upload->add_flag("--header", csv_header, "CSV: skip the first line");
  upload->add_option("--name", up_name, "display name");

  auto* train = app.add_subcommand("train", "create a training session (and --watch it)");
  TrainFlags tf;
  train->add_option("--dataset", tf.dataset, "training data set, datasets/{id}")->required();
  train->add_option("--eval_dataset", tf.eval_dataset, "evaluation data set");
  train->add_option("--config", tf.config_file, "TrainingConfig as JSON (flags override it)");
  train->add_option("--name", tf.name, "display name");
  train->add_option("--sizes", tf.sizes, "layer widths, input first, e.g. 784,1000,10");
  train->add_option("--hidden", tf.hidden, "hidden activation: linear | tanh | logistic | relu");
  train->add_option("--output", tf.output,
                    "output activation: linear | tanh | logistic | relu | softmax");
  train->add_option("--loss", tf.loss, "mse | cross_entropy");
  train->add_flag("--no_bias", tf.no_bias, "no bias terms");
  train->add_option("--connection_sparsity", tf.connection_sparsity,
                    "fraction of W and B removed for good");
  train->add_option("--rule", tf.rule, "bp | fa | dfa | sign | kp | pbp | shallow")
      ->capture_default_str();
  train->add_option("--feedback_scale", tf.feedback_scale, "scale of B (0 = automatic)");
  train->add_option("--feedback_dist", tf.feedback_dist, "uniform | gaussian");
  train->add_option("--init", tf.init, "uniform | xavier | he");
  train->add_option("--init_scale", tf.init_scale, "omega of U[-omega, omega] (--init uniform)");
  train->add_option("--optimizer", tf.optimizer, "sgd | adam");
  train->add_option("--lr", tf.lr, "learning rate (default 0.01)");
  train->add_option("--momentum", tf.momentum, "SGD momentum");
  train->add_option("--weight_decay", tf.weight_decay, "L2 weight decay");
  train->add_option("--batch", tf.batch, "batch size (default 32; 1 = per example)");
  train->add_option("--epochs", tf.epochs, "passes over the data (default 1)");
  train->add_option("--max_steps", tf.max_steps, "steps (overrides --epochs)");
  train->add_option("--seed", tf.seed, "seed (default 1)");
  train->add_option("--metrics_every", tf.metrics_every,
                    "metrics every k steps (default 100; -1 never)");
  train->add_option("--eval_every", tf.eval_every, "evaluate every k steps (default: at the end)");
  train->add_option("--snapshot_every", tf.snapshot_every, "weight snapshot every k steps");
  train->add_option("--checkpoint_every", tf.checkpoint_every,
                    "checkpoint every k steps (default: server's)");
  train->add_flag("--watch", tf.watch, "follow the session until it ends");

  auto* sessions =
      app.add_subcommand("sessions", "list, get, pause, resume, cancel or delete sessions");
  sessions->require_subcommand(1);
  std::string state_filter, s_name;
  auto* s_list = sessions->add_subcommand("list", "list sessions");
  s_list->add_option("--state", state_filter,
                     "only QUEUED, RUNNING, PAUSED, SUCCEEDED, FAILED or CANCELLED");
  std::map<std::string, CLI::App*> s_cmds;
  for (const char* verb : {"get", "pause", "resume", "cancel", "delete"}) {
    s_cmds[verb] = sessions->add_subcommand(verb, std::string(verb) + " a session");
    s_cmds[verb]->add_option("name", s_name, "sessions/{id}")->required();
  }

  auto* watch = app.add_subcommand(
      "watch", "follow sessions live: progress, loss, accuracy, alignment angle");
  std::vector<std::string> watch_names;
  watch->add_option("names", watch_names, "sessions/{id} ...")->required();

  auto* snapshot = app.add_subcommand("snapshot", "fetch weight snapshots");
  snapshot->require_subcommand(1);
  auto* snap_get = snapshot->add_subcommand("get", "write a snapshot's matrices as .npy files");
  std::string snap_name, snap_out = ".";
  snap_get
      ->add_option("name", snap_name, "sessions/{id} (latest) or sessions/{id}/snapshots/{step}")
      ->required();
  snap_get->add_option("--out", snap_out, "folder for W0.npy, b0.npy, B1.npy, ...")
      ->capture_default_str();

  auto* sweep =
      app.add_subcommand("sweep", "run a grid of rules x seeds x hyperparameters and compare them");
  std::string sweep_file;
  sweep->add_option("config", sweep_file, "sweep description, JSON (see alignctl sweep --help)")
      ->required();
  sweep->footer(R"(The sweep file:
  {
    "dataset": "datasets/...", "eval_dataset": "datasets/...",       (eval optional)
    "config": { TrainingConfig as JSON, proto field names },
    "rules": ["bp", "fa", "dfa"],  "seeds": [1, 2, 3],
    "grid": {"optimizer.learning_rate": [0.01, 0.05]}                 (optional; dotted paths)
  }
One session per (rule, grid point, seed); all are watched; the table gives the mean and SD over
seeds of the last evaluation (test error or NSE), the last batch loss and the alignment angle.)");

  auto* predict = app.add_subcommand("predict", "network outputs for inputs from a .npy file");
  std::string predict_name, predict_in, predict_out;
  predict
      ->add_option("name", predict_name,
                   "sessions/{id} (latest weights) or sessions/{id}/snapshots/{step}")
      ->required();
  predict->add_option("--npy", predict_in, "inputs, n x d .npy")->required();
  predict->add_option("--out", predict_out, "write the n x out outputs here (.npy)");

  auto* evaluate = app.add_subcommand(
      "evaluate", "loss and error (or NSE) of a session's weights on a data set");
  std::string eval_name, eval_dataset;
  evaluate
      ->add_option("name", eval_name,
                   "sessions/{id} (latest weights) or sessions/{id}/snapshots/{step}")
      ->required();
  evaluate->add_option("--dataset", eval_dataset,
                       "datasets/{id} (default: the session's evaluation set)");

  CLI11_PARSE(app, argc, argv);

  auto channel = Channel();
  auto ds_stub = v1::DatasetService::NewStub(channel);
  auto tr_stub = v1::TrainingService::NewStub(channel);

  if (health->parsed()) {
    auto stub = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    if (auto st = stub->Check(&ctx, req, &resp); !st.ok()) Fail(st, "health");
    const std::string status =
        grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
    if (g.json)
      std::printf("{\"server\": \"%s\", \"status\": \"%s\"}\n", g.server.c_str(), status.c_str());
    else
      std::printf("%s: %s\n", g.server.c_str(), status.c_str());
    return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
  }

  if (datasets->parsed()) {
    if (ds_list->parsed()) {
      std::vector<v1::Dataset> all;
      std::string token;
      do {
        grpc::ClientContext ctx;
        SetDeadline(ctx);
        v1::ListDatasetsRequest req;
        req.set_page_token(token);
        v1::ListDatasetsResponse resp;
        if (auto st = ds_stub->ListDatasets(&ctx, req, &resp); !st.ok()) Fail(st, "datasets list");
        all.insert(all.end(), resp.datasets().begin(), resp.datasets().end());
        token = resp.next_page_token();
      } while (!token.empty());
      if (g.json) {
        v1::ListDatasetsResponse out;
        for (auto& d : all) *out.add_datasets() = d;
        std::cout << Json(out) << "\n";
      } else {
        PrintDatasets(all);
      }
      return 0;
    }
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    if (ds_get->parsed()) {
      v1::GetDatasetRequest req;
      req.set_name(ds_name);
      v1::Dataset d;
      if (auto st = ds_stub->GetDataset(&ctx, req, &d); !st.ok()) Fail(st, "datasets get");
      if (g.json)
        std::cout << Json(d) << "\n";
      else
        PrintDatasets({d});
      return 0;
    }
    if (ds_delete->parsed()) {
      v1::DeleteDatasetRequest req;
      req.set_name(ds_name);
      google::protobuf::Empty e;
      if (auto st = ds_stub->DeleteDataset(&ctx, req, &e); !st.ok()) Fail(st, "datasets delete");
      std::printf("deleted %s\n", ds_name.c_str());
      return 0;
    }
    if (ds_gen->parsed()) {
      v1::CreateGeneratedDatasetRequest req;
      auto* s = req.mutable_spec();
      s->set_kind(ParseEnum<v1::GeneratorSpec::Kind>(gen_kind, "KIND_",
                                                     v1::GeneratorSpec::Kind_Parse, "--kind"));
      s->set_split(ParseEnum<v1::GeneratorSpec::Split>(gen_split, "SPLIT_",
                                                       v1::GeneratorSpec::Split_Parse, "--split"));
      s->set_num_examples(gen_n);
      s->set_input_dim(gen_in);
      s->set_output_dim(gen_out);
      s->set_noise(gen_noise);
      s->set_seed(gen_seed);
      req.set_display_name(gen_name);
      v1::Dataset d;
      if (auto st = ds_stub->CreateGeneratedDataset(&ctx, req, &d); !st.ok())
        Fail(st, "datasets generate");
      if (g.json)
        std::cout << Json(d) << "\n";
      else
        std::printf("%s\n", d.name().c_str());
      return 0;
    }
  }

  if (upload->parsed()) {
    absl::StatusOr<client::Payload> p =
        absl::InvalidArgumentError("give one of --idx, --csv, --npy");
    if (!idx.empty())
      p = client::ReadIdxPair(idx[0], idx[1]);
    else if (!csv.empty())
      p = client::ReadCsv(csv, !regression, target_dim, csv_header);
    else if (!npy.empty())
      p = client::ReadNpyPair(npy[0], npy[1], !regression);
    if (!p.ok()) Fail(p.status());
    p->header.set_display_name(up_name);
    grpc::ClientContext ctx;
    v1::Dataset d;
    auto writer = ds_stub->UploadDataset(&ctx, &d);
    v1::UploadDatasetRequest req;
    *req.mutable_header() = p->header;
    bool ok = writer->Write(req);
    constexpr size_t kChunk = 1 << 20;
    const bool tty = isatty(2);
    for (size_t off = 0; ok && off < p->bytes.size(); off += kChunk) {
      req.Clear();
      req.set_chunk(p->bytes.substr(off, kChunk));
      ok = writer->Write(req);
      if (tty)
        std::fprintf(stderr, "\ruploading %zu / %zu MiB", (off + kChunk) >> 20,
                     p->bytes.size() >> 20);
    }
    if (tty) std::fprintf(stderr, "\n");
    writer->WritesDone();
    if (auto st = writer->Finish(); !st.ok()) Fail(st, "upload");
    if (g.json)
      std::cout << Json(d) << "\n";
    else
      std::printf("%s\n", d.name().c_str());
    return 0;
  }

  if (train->parsed()) {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    v1::Session s;
    if (auto st = tr_stub->CreateSession(&ctx, BuildTrain(tf), &s); !st.ok()) Fail(st, "train");
    if (g.json && !tf.watch)
      std::cout << Json(s) << "\n";
    else if (!g.jsonl)
      std::printf("%s\n", s.name().c_str());
    if (tf.watch) return Watcher({s.name()}).Run();
    return 0;
  }

  if (sessions->parsed()) {
    if (s_list->parsed()) {
      v1::SessionState state = v1::SESSION_STATE_UNSPECIFIED;
      if (!state_filter.empty() && !v1::SessionState_Parse(state_filter, &state)) {
        std::cerr << "alignctl: --state '" << state_filter << "' is not a session state\n";
        return 2;
      }
      std::vector<v1::Session> all;
      std::string token;
      do {
        grpc::ClientContext ctx;
        SetDeadline(ctx);
        v1::ListSessionsRequest req;
        req.set_state(state);
        req.set_page_token(token);
        v1::ListSessionsResponse resp;
        if (auto st = tr_stub->ListSessions(&ctx, req, &resp); !st.ok()) Fail(st, "sessions list");
        all.insert(all.end(), resp.sessions().begin(), resp.sessions().end());
        token = resp.next_page_token();
      } while (!token.empty());
      if (g.json) {
        v1::ListSessionsResponse out;
        for (auto& s : all) *out.add_sessions() = s;
        std::cout << Json(out) << "\n";
      } else {
        PrintSessions(all);
      }
      return 0;
    }
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    v1::Session s;
    grpc::Status st;
    std::string verb;
    for (auto& [v, cmd] : s_cmds)
      if (cmd->parsed()) verb = v;
    if (verb == "get") {
      v1::GetSessionRequest r;
      r.set_name(s_name);
      st = tr_stub->GetSession(&ctx, r, &s);
    }
    if (verb == "pause") {
      v1::PauseSessionRequest r;
      r.set_name(s_name);
      st = tr_stub->PauseSession(&ctx, r, &s);
    }
    if (verb == "resume") {
      v1::ResumeSessionRequest r;
      r.set_name(s_name);
      st = tr_stub->ResumeSession(&ctx, r, &s);
    }
    if (verb == "cancel") {
      v1::CancelSessionRequest r;
      r.set_name(s_name);
      st = tr_stub->CancelSession(&ctx, r, &s);
    }
    if (verb == "delete") {
      v1::DeleteSessionRequest r;
      r.set_name(s_name);
      google::protobuf::Empty e;
      st = tr_stub->DeleteSession(&ctx, r, &e);
      if (!st.ok()) Fail(st, "sessions delete");
      std::printf("deleted %s\n", s_name.c_str());
      return 0;
    }
    if (!st.ok()) Fail(st, "sessions " + verb);
    if (g.json)
      std::cout << Json(s) << "\n";
    else
      PrintSessions({s});
    return 0;
  }

  if (watch->parsed()) return Watcher(watch_names).Run();

  if (evaluate->parsed()) {
    v1::EvaluateRequest req;
    req.set_name(eval_name);
    req.set_dataset(eval_dataset);
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    v1::EvaluateResponse resp;
    if (auto st = tr_stub->Evaluate(&ctx, req, &resp); !st.ok()) Fail(st, "evaluate");
    const v1::EvalMetrics& m = resp.metrics();
    if (g.json) {
      std::cout << Json(m) << "\n";
    } else if (m.examples() > 0 && !std::isnan(m.error_rate())) {
      std::printf("step %lld on %lld examples: loss %.6g, error %.4f (accuracy %.4f)\n",
                  (long long)m.step(), (long long)m.examples(), m.loss(), m.error_rate(),
                  m.accuracy());
    } else {
      std::printf("step %lld on %lld examples: loss %.6g, NSE %.6g\n", (long long)m.step(),
                  (long long)m.examples(), m.loss(), m.nse());
    }
    return 0;
  }

  if (predict->parsed()) {
    auto x = client::ReadNpyMatrix(predict_in);
    if (!x.ok()) Fail(x.status());
    v1::PredictRequest req;
    req.set_name(predict_name);
    req.mutable_inputs()->set_rows(
        x->cols);  // features x examples, column-major == example-major rows
    req.mutable_inputs()->set_cols(x->rows);
    *req.mutable_inputs()->mutable_values() = {x->values.begin(), x->values.end()};
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    v1::PredictResponse resp;
    if (auto st = tr_stub->Predict(&ctx, req, &resp); !st.ok()) Fail(st, "predict");
    const int64_t outs = resp.outputs().rows(), n = resp.outputs().cols();
    if (!predict_out.empty()) {
      if (auto st = client::WriteNpy(predict_out, n, outs, resp.outputs().values().data());
          !st.ok())
        Fail(st);
    }
    if (g.json) {
      std::cout << Json(resp) << "\n";
    } else if (predict_out.empty()) {
      for (int64_t j = 0; j < n; ++j) {
        std::printf("%lld:", static_cast<long long>(j));
        for (int64_t i = 0; i < outs; ++i)
          std::printf(" %.5g", resp.outputs().values(j * outs + i));
        if (j < resp.classes_size()) std::printf("  -> class %d", resp.classes(j));
        std::printf("\n");
      }
    } else {
      std::printf("wrote %lld x %lld outputs to %s\n", static_cast<long long>(n),
                  static_cast<long long>(outs), predict_out.c_str());
    }
    return 0;
  }

  if (sweep->parsed()) {
    std::ifstream in(sweep_file);
    if (!in) Fail(absl::NotFoundError("cannot open " + sweep_file));
    nlohmann::json spec;
    try {
      spec = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      Fail(absl::InvalidArgumentError(sweep_file + ": " + e.what()));
    }
    if (!spec.contains("dataset"))
      Fail(absl::InvalidArgumentError(sweep_file + ": needs \"dataset\""));
    const std::vector<std::string> rules =
        spec.value("rules", std::vector<std::string>{"bp", "fa"});
    const std::vector<uint64_t> seeds = spec.value("seeds", std::vector<uint64_t>{1, 2, 3});
    // The grid's points: the cartesian product of its lists.
    std::vector<nlohmann::json> points = {nlohmann::json::object()};
    const nlohmann::json grid = spec.value("grid", nlohmann::json::object());
    for (auto& [key, values] : grid.items()) {
      std::vector<nlohmann::json> next;
      for (const auto& p : points)
        for (const auto& v : values) {
          nlohmann::json q = p;
          q[key] = v;
          next.push_back(q);
        }
      points = next;
    }
    struct Run {
      std::string group, name;
    };
    std::vector<Run> runs;
    for (const auto& rule : rules)
      for (const auto& point : points)
        for (uint64_t seed : seeds) {
          nlohmann::json c = spec.value("config", nlohmann::json::object());
          c["feedback"]["rule"] = v1::Rule_Name(ParseRule(rule));
          c["seed"] = seed;
          std::string group = rule;
          for (auto& [key, value] : point.items()) {
            nlohmann::json* node = &c;
            for (absl::string_view part : absl::StrSplit(key, '.'))
              node = &(*node)[std::string(part)];
            *node = value;
            group += " " + key + "=" + value.dump();
          }
          v1::CreateSessionRequest req;
          auto st = google::protobuf::util::JsonStringToMessage(c.dump(), req.mutable_config());
          if (!st.ok()) Fail(absl::InvalidArgumentError(sweep_file + ": config: " + st.ToString()));
          req.set_train_dataset(spec["dataset"].get<std::string>());
          req.set_eval_dataset(spec.value("eval_dataset", std::string()));
          req.set_display_name("sweep " + group + " seed=" + std::to_string(seed));
          grpc::ClientContext ctx;
          SetDeadline(ctx);
          v1::Session s;
          if (auto cs = tr_stub->CreateSession(&ctx, req, &s); !cs.ok())
            Fail(cs, "sweep: create " + group);
          runs.push_back({group, s.name()});
        }
    std::vector<std::string> names;
    for (const auto& r : runs) names.push_back(r.name);
    Watcher w(names, /*quiet=*/g.json);
    const int rc = w.Run();
    // Mean and SD over seeds.
    std::map<std::string, std::vector<double>> eval, loss, angle;
    std::vector<std::string> order;
    bool classification = false;
    for (const auto& r : runs) {
      const WatchRow& row = w.rows().at(r.name);
      if (!eval.count(r.group)) order.push_back(r.group);
      const double e =
          std::isnan(row.last_eval.error_rate()) ? row.last_eval.nse() : row.last_eval.error_rate();
      classification |= !std::isnan(row.last_eval.error_rate()) && row.last_eval.examples() > 0;
      if (row.last_eval.examples() > 0) eval[r.group].push_back(e);
      loss[r.group].push_back(row.last_step.loss());
      if (row.last_step.alignment_size() &&
          !std::isnan(row.last_step.alignment(0).update_angle_mean()))
        angle[r.group].push_back(row.last_step.alignment(0).update_angle_mean());
    }
    nlohmann::json table = nlohmann::json::array();
    if (!g.json)
      std::printf("\n%-40s %5s %22s %12s %18s\n", "RUN", "SEEDS",
                  classification ? "EVAL ERROR" : "EVAL NSE", "LOSS", "ANGLE (deg)");
    for (const auto& gname : order) {
      const auto& e = eval[gname];
      char ev[64] = "-", an[64] = "-";
      if (!e.empty()) std::snprintf(ev, sizeof ev, "%.4g +- %.2g", Mean(e), Sd(e));
      if (!angle[gname].empty())
        std::snprintf(an, sizeof an, "%.1f +- %.1f", Mean(angle[gname]), Sd(angle[gname]));
      if (!g.json)
        std::printf("%-40s %5zu %22s %12.4g %18s\n", gname.substr(0, 40).c_str(),
                    loss[gname].size(), ev, Mean(loss[gname]), an);
      table.push_back({{"run", gname},
                       {"seeds", loss[gname].size()},
                       {"eval_mean", e.empty() ? nlohmann::json() : nlohmann::json(Mean(e))},
                       {"eval_sd", e.empty() ? nlohmann::json() : nlohmann::json(Sd(e))},
                       {"loss_mean", Mean(loss[gname])},
                       {"angle_mean", angle[gname].empty() ? nlohmann::json()
                                                           : nlohmann::json(Mean(angle[gname]))}});
    }
    if (g.json) std::cout << table.dump(1) << "\n";
    return rc;
  }

  if (snap_get->parsed()) {
    const std::string name = snap_name.find("/snapshots/") == std::string::npos
                                 ? snap_name + "/snapshots/latest"
                                 : snap_name;
    grpc::ClientContext ctx;
    v1::GetSnapshotRequest req;
    req.set_name(name);
    auto reader = tr_stub->GetSnapshot(&ctx, req);
    v1::SnapshotChunk chunk;
    v1::SnapshotChunk::Header header;
    std::vector<float> values;
    while (reader->Read(&chunk)) {
      if (chunk.has_header()) {
        header = chunk.header();
        values.reserve(header.total_values());
      } else {
        values.insert(values.end(), chunk.values().data().begin(), chunk.values().data().end());
      }
    }
    if (auto st = reader->Finish(); !st.ok()) Fail(st, "snapshot get");
    if (static_cast<int64_t>(values.size()) != header.total_values())
      Fail(absl::DataLossError("snapshot arrived incomplete"));
    std::filesystem::create_directories(snap_out);
    int64_t off = 0;
    for (const auto& shape : header.shapes()) {
      if (shape.rows() * shape.cols() > 0) {
        const std::string path = snap_out + "/" + shape.label() + ".npy";
        WriteMatrixNpy(path, shape.rows(), shape.cols(), values.data() + off);
        if (!g.json)
          std::printf("%s  %lld x %lld\n", path.c_str(), (long long)shape.rows(),
                      (long long)shape.cols());
      }
      off += shape.rows() * shape.cols();
    }
    if (g.json) std::cout << Json(header) << "\n";
    return 0;
  }
  return 0;
}
