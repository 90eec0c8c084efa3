// alignd_train: runs one training job of the engine in-process, from flags, and
// writes its metrics as JSON lines. The reproduction scripts (tools/repro/) drive it;
// it is also the quickest way to try a rule on a data set without the service.
//
//   alignd_train --task mnist --mnist_dir ~/.cache/alignd/mnist --sizes 784,1000,10
//       --hidden logistic --output logistic --loss mse --rule fa --lr 0.05 --epochs 20
//
// Each line of --out (default: none) is one event: {"type":"step",...} on metric steps,
// {"type":"eval",...} after each evaluation. The last line on stdout is a summary.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/cpu.h"
#include "core/dataset.h"
#include "core/trainer.h"

namespace {

using namespace alignd::core;
using nlohmann::json;

json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

class JsonObserver : public TrainingObserver {
 public:
  JsonObserver(std::ostream* out, bool progress, int64_t total)
      : out_(out), progress_(progress), total_(total), start_(Clock::now()) {}

  bool OnStep(const StepMetrics& m) override {
    if (!m.has_details || out_ == nullptr) return true;
    json j = {{"type", "step"},
              {"step", m.step},
              {"epoch", m.epoch},
              {"loss", Num(m.loss)},
              {"accuracy", Num(m.accuracy)},
              {"nse", Num(m.nse)},
              {"wall_s", Seconds()}};
    json layers = json::array();
    for (const LayerAlignment& a : m.alignment)
      layers.push_back({{"layer", a.layer},
                        {"update_angle_mean", Num(a.update_angle_mean)},
                        {"update_angle_sd", Num(a.update_angle_sd)},
                        {"positive_fraction", Num(a.positive_fraction)},
                        {"weight_angle", Num(a.weight_angle)},
                        {"norm_ratio", Num(a.norm_ratio)},
                        {"pbp_angle_mean", Num(a.pbp_angle_mean)}});
    j["alignment"] = layers;
    *out_ << j.dump() << "\n";
    return true;
  }

  bool OnEvaluation(const EvalMetrics& e) override {
    (e.validation ? last_validation : last_eval) = e;
    const json j = {{"type", "eval"},
                    {"split", e.validation ? "validation" : "test"},
                    {"step", e.step},
                    {"epoch", e.epoch},
                    {"examples", e.examples},
                    {"loss", Num(e.loss)},
                    {"accuracy", Num(e.accuracy)},
                    {"error_rate", Num(e.error_rate)},
                    {"nse", Num(e.nse)},
                    {"wall_s", Seconds()}};
    if (out_ != nullptr) *out_ << j.dump() << std::endl;
    if (progress_)
      std::fprintf(stderr, "  step %lld/%lld  epoch %lld  %s loss %.4g  %s %.4g  (%.0f s)\n",
                   static_cast<long long>(e.step), static_cast<long long>(total_),
                   static_cast<long long>(e.epoch), e.validation ? "validation" : "test", e.loss,
                   std::isnan(e.error_rate) ? "nse" : "error",
                   std::isnan(e.error_rate) ? e.nse : e.error_rate, Seconds());
    return true;
  }

  double Seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  EvalMetrics last_eval, last_validation;

 private:
  using Clock = std::chrono::steady_clock;
  std::ostream* out_;
  bool progress_;
  int64_t total_;
  Clock::time_point start_;
};

template <typename T>
T OrDie(absl::StatusOr<T> v) {
  if (!v.ok()) {
    std::fprintf(stderr, "alignd_train: %s\n", v.status().ToString().c_str());
    std::exit(2);
  }
  return std::move(*v);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"alignd_train: train one network in-process with BP or a feedback-alignment rule"};
  std::string task = "linear", mnist_dir, out_path, csv_train, csv_test;
  std::string sizes_s, hidden = "tanh", output = "linear", loss = "mse", rule = "fa";
  std::string feedback_dist = "uniform", init = "xavier", optimizer = "sgd", sign_mode = "scaled";
  int64_t train_size = 0, test_size = 0;
  float noise = 0;
  bool no_bias = false, quiet = false;
  TrainerOptions o;
  app.add_option("--task", task, "linear | nonlinear | toy | mnist | csv")->capture_default_str();
  app.add_option("--mnist_dir", mnist_dir, "folder with MNIST's IDX files (task mnist)");
  app.add_option("--csv_train", csv_train, "training CSV, label in the last column (task csv)");
  app.add_option("--csv_test", csv_test, "test CSV, the same columns (task csv; optional)");
  app.add_option("--train_size", train_size,
                 "examples to generate or keep (0 = task default / all)");
  app.add_option("--test_size", test_size,
                 "held-out examples to generate or keep (0 = default / all)");
  app.add_option("--noise", noise, "linear task: target noise SD")->capture_default_str();
  app.add_option("--sizes", sizes_s,
                 "layer widths, input first, e.g. 784,1000,10 (default: the task's)");
  app.add_option("--hidden", hidden, "hidden activation: linear | tanh | logistic | relu")
      ->capture_default_str();
  app.add_option("--output", output, "output activation: linear | tanh | logistic | relu | softmax")
      ->capture_default_str();
  app.add_option("--loss", loss, "mse | cross_entropy")->capture_default_str();
  app.add_flag("--no_bias", no_bias, "no bias terms");
  app.add_option("--connection_sparsity", o.network.connection_sparsity,
                 "fraction of W and B removed for good")
      ->capture_default_str();
  app.add_option("--rule", rule,
                 "bp | fa | dfa | sign | kp | pbp | shallow (pbp on nets with square hidden "
                 "layers: see --pinv_damping)")
      ->capture_default_str();
  app.add_option("--feedback_dist", feedback_dist, "uniform | gaussian")->capture_default_str();
  app.add_option("--feedback_scale", o.feedback.scale,
                 "beta of U[-beta, beta] or sigma; 0 = automatic")
      ->capture_default_str();
  app.add_option("--feedback_sparsity", o.feedback.sparsity, "fraction of B set to zero")
      ->capture_default_str();
  app.add_option("--feedback_seed", o.feedback.seed, "seed of B (0 = from --seed)")
      ->capture_default_str();
  app.add_option("--sign_mode", sign_mode,
                 "sign symmetry magnitudes: scaled (mean|W| per layer) | usf (1) | frsf (|B|)")
      ->capture_default_str();
  app.add_option("--pinv_every", o.feedback.pinv_every,
                 "pseudo-backprop: recompute W+ every k steps")
      ->capture_default_str();
  app.add_option("--pinv_damping", o.feedback.pinv_damping,
                 "pseudo-backprop: 0 = exact W+; > 0 = damped (W'W + lambda I)^-1 W', lambda = "
                 "this x mean squared singular value of W")
      ->capture_default_str();
  app.add_option("--init", init, "uniform | xavier | he")->capture_default_str();
  app.add_option("--init_scale", o.init.scale, "omega of U[-omega, omega] (init uniform)")
      ->capture_default_str();
  app.add_option("--optimizer", optimizer, "sgd | adam")->capture_default_str();
  app.add_option("--lr", o.optimizer.learning_rate, "learning rate")->capture_default_str();
  app.add_option("--momentum", o.optimizer.momentum, "SGD momentum")->capture_default_str();
  app.add_option("--weight_decay", o.optimizer.weight_decay, "L2 weight decay")
      ->capture_default_str();
  app.add_option("--batch", o.batch_size, "mini-batch size (1 = per-example updates)")
      ->capture_default_str();
  app.add_option("--threads", o.threads,
                 "threads for the products (the same count gives the same weights)")
      ->capture_default_str();
  app.add_option("--epochs", o.epochs, "passes over the training set")->capture_default_str();
  app.add_option("--max_steps", o.max_steps, "steps (overrides --epochs when > 0)")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "seed of weights, shuffling and generated data")
      ->capture_default_str();
  app.add_option("--metrics_every", o.metrics_every, "alignment metrics every k steps (0 = never)")
      ->capture_default_str();
  app.add_flag("--pbp_angle", o.pbp_angle, "also report the angle to the pseudo-backprop signal");
  app.add_option("--eval_every", o.eval_every,
                 "evaluate (validation examples, then the test set) every k steps (0 = at the end)")
      ->capture_default_str();
  app.add_option("--validation_fraction", o.validation_fraction,
                 "hold out the last fraction of the training set for validation, in [0, 1)")
      ->capture_default_str();
  app.add_option("--out", out_path, "write JSON-lines metrics here");
  app.add_flag("-q,--quiet", quiet, "no progress on stderr");
  CLI11_PARSE(app, argc, argv);

  o.network.hidden = OrDie(ParseActivation(hidden));
  o.network.output = OrDie(ParseActivation(output));
  o.network.loss = OrDie(ParseLoss(loss));
  o.network.bias = !no_bias;
  o.feedback.rule = OrDie(ParseRule(rule));
  o.feedback.distribution = OrDie(ParseDistribution(feedback_dist));
  o.feedback.sign_mode = OrDie(ParseSignSymmetryMode(sign_mode));
  o.init.kind = OrDie(ParseWeightInit(init));
  o.optimizer.kind = OrDie(ParseOptimizer(optimizer));

  TaskData data;
  std::vector<int> default_sizes;
  if (task == "linear") {
    LinearTaskSpec spec;
    spec.seed = o.seed;
    spec.noise = noise;
    if (train_size) spec.train_size = train_size;
    if (test_size) spec.test_size = test_size;
    data = OrDie(MakeLinearTask(spec));
    default_sizes = {30, 20, 10};
  } else if (task == "nonlinear") {
    NonlinearTaskSpec spec;
    spec.seed = o.seed;
    if (train_size) spec.train_size = train_size;
    if (test_size) spec.test_size = test_size;
    data = OrDie(MakeNonlinearTask(spec));
    default_sizes = {30, 20, 10, 10};
  } else if (task == "toy") {
    data = OrDie(MakeToyTask(train_size ? train_size : 1000, test_size ? test_size : 1000, o.seed));
    default_sizes = {1, 1, 1};
  } else if (task == "mnist" || task == "csv") {
    if (task == "mnist") {
      if (mnist_dir.empty())
        OrDie<int>(absl::InvalidArgumentError("--task mnist needs --mnist_dir"));
      data.train = OrDie(LoadMnistDir(mnist_dir, "train"));
      data.test = OrDie(LoadMnistDir(mnist_dir, "test"));
    } else {
      data.train = OrDie(ReadCsv(csv_train));
      if (!csv_test.empty()) data.test = OrDie(ReadCsv(csv_test));
    }
    auto keep = [](Dataset& d, int64_t n) {
      if (n <= 0 || n >= d.size()) return;
      d.features.conservativeResize(Eigen::NoChange, n);
      d.labels.resize(n);
    };
    keep(data.train, train_size);
    keep(data.test, test_size);
    default_sizes = {data.train.input_dim(), 100, data.train.output_dim()};
  } else {
    OrDie<int>(absl::InvalidArgumentError("unknown --task '" + task + "'"));
  }
  o.network.sizes = default_sizes;
  if (!sizes_s.empty()) {
    o.network.sizes.clear();
    for (const std::string& part : CLI::detail::split(sizes_s, ','))
      o.network.sizes.push_back(std::stoi(part));
  }

  auto train = std::make_shared<const Dataset>(std::move(data.train));
  std::shared_ptr<const Dataset> test;
  if (data.test.size() > 0) test = std::make_shared<const Dataset>(std::move(data.test));
  auto trainer = OrDie(Trainer::Create(o, train, test));

  std::ofstream file;
  if (!out_path.empty()) {
    file.open(out_path);
    if (!file) OrDie<int>(absl::InvalidArgumentError("cannot write --out " + out_path));
  }
  JsonObserver obs(out_path.empty() ? nullptr : &file, !quiet, trainer->total_steps());
  const absl::Status s = trainer->Run(&obs);
  const double wall = obs.Seconds();
  if (!s.ok()) {
    std::fprintf(stderr, "alignd_train: %s\n", s.ToString().c_str());
    std::cout << json{{"type", "summary"}, {"status", s.ToString()}, {"wall_s", wall}}.dump()
              << "\n";
    return 1;
  }
  const EvalMetrics& e = obs.last_eval;
  std::cout << json{{"type", "summary"},
                    {"status", "OK"},
                    {"task", task},
                    {"rule", rule},
                    {"seed", o.seed},
                    {"steps", trainer->step()},
                    {"epochs", double(trainer->step()) / trainer->steps_per_epoch()},
                    {"wall_s", wall},
                    {"test_error", Num(e.error_rate)},
                    {"nse", Num(e.nse)},
                    {"test_loss", Num(e.loss)},
                    {"validation_error", Num(obs.last_validation.error_rate)},
                    {"validation_nse", Num(obs.last_validation.nse)}}
                   .dump()
            << "\n";
  return 0;
}
