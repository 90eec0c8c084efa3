// alignd_bench: the engine's training throughput, its products' GEMM rates, and the
// costs of FA over BP and of alignment metrics, on one thread. Prints a table and
// writes JSON rows (tests/bench/run_bench.py merges them with PyTorch's).
//
//   alignd_bench [--mnist_dir DIR] [--seconds S] [--out FILE]
//
// Method: each figure is the best of 3 timed runs of at least --seconds/3 seconds,
// after a warm-up; throughput counts the samples of whole training steps (gather,
// forward, backward, update). The "shape bound" of a step is the sum of the times its
// products (the exact expressions the trainer runs, with their shapes, transposes and
// accumulation) take when each is timed alone: the speed the step would reach if it
// were nothing but its products.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/conv.h"
#include "core/cpu.h"
#include "core/dataset.h"
#include "core/gemm.h"
#include "core/trainer.h"

namespace {

using namespace alignd::core;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

double g_seconds = 1.5;
bool g_verbose = false;

// Best rate (calls per second) of `fn` over 3 runs.
double CallsPerSecond(const std::function<void()>& fn) {
  for (int i = 0; i < 3; ++i) fn();  // warm-up
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    int64_t calls = 0;
    const auto start = Clock::now();
    double elapsed = 0;
    while (elapsed < g_seconds / 3) {
      for (int k = 0; k < 8; ++k) fn();
      calls += 8;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    }
    best = std::max(best, calls / elapsed);
  }
  return best;
}

std::shared_ptr<const Dataset> MnistOrSynthetic(const std::string& dir, bool* real) {
  if (!dir.empty()) {
    auto d = LoadMnistDir(dir, "train");
    if (d.ok()) {
      *real = true;
      return std::make_shared<const Dataset>(std::move(*d));
    }
    std::fprintf(stderr, "alignd_bench: %s; using synthetic data\n", d.status().ToString().c_str());
  }
  *real = false;
  Rng rng(1);
  Matrix x(784, 60000);
  rng.FillUniform(x, 0, 1);
  std::vector<int32_t> labels(60000);
  for (size_t j = 0; j < labels.size(); ++j) labels[j] = static_cast<int32_t>(rng.Below(10));
  return std::make_shared<const Dataset>(*MakeClassificationDataset(x, labels, 10));
}

struct ProductTimes {
  double seconds_per_step = 0;  // sum over the step's products, each timed alone
  double flops_per_step = 0;
};

// Times each product of one training step of a 2-layer net in-out shapes as the trainer runs it.
// `threads`: as TrainingConfig.threads (the bound of a step on that many threads).
ProductTimes TimeProducts(int in, int hidden, int out, int n, int threads = 1) {
  SetGemmThreads(threads);
  Rng rng(3);
  Matrix w0(hidden, in), w1(out, hidden), x(in, n), h(hidden, n), z1(hidden, n), z2(out, n),
      d2(out, n), d1(hidden, n), dh(hidden, n);
  for (Matrix* m : {&w0, &w1, &x, &h, &d2, &d1}) rng.FillUniform(*m, -0.1f, 0.1f);
  const float c = 1e-6f;
  struct P {
    double flops;
    std::function<void()> fn;
  };
  const std::vector<P> products = {
      {2.0 * hidden * in * n, [&] { Gemm(false, false, 1.0f, w0, x, 0.0f, z1); }},
      {2.0 * out * hidden * n, [&] { Gemm(false, false, 1.0f, w1, h, 0.0f, z2); }},
      {2.0 * hidden * out * n, [&] { Gemm(true, false, 1.0f, w1, d2, 0.0f, dh); }},
      {2.0 * out * n * hidden, [&] { Gemm(false, true, -c, d2, h, 1.0f, w1); }},
      {2.0 * hidden * n * in, [&] { Gemm(false, true, -c, d1, x, 1.0f, w0); }},
  };
  ProductTimes t;
  for (const P& p : products) {
    const double seconds = 1.0 / CallsPerSecond(p.fn);
    if (g_verbose)
      std::printf("  product %10.0f flop: %8.1f us  %6.1f GFLOP/s\n", p.flops, seconds * 1e6,
                  p.flops / seconds / 1e9);
    t.seconds_per_step += seconds;
    t.flops_per_step += p.flops;
  }
  SetGemmThreads(1);
  return t;
}

// The machine's read-modify-write bandwidth over a buffer of `bytes` (in place: each float
// read once and written once, as a per-example update pass moves W), in bytes moved per
// second: the best of 3 runs. At a working set of a few MB this is the last-level cache's
// bandwidth to one core, not DRAM's.
double ReadModifyWriteBandwidth(size_t bytes, Eigen::Index rows) {
  // W's shape, updated column by column with a vector that stays in L1: the update's pattern.
  Matrix a = Matrix::Constant(rows, static_cast<Eigen::Index>(bytes / 4) / rows, 1.0f);
  const Vector d = Vector::Constant(rows, 1e-9f);
  const double per_call = 2.0 * static_cast<double>(a.size()) * 4;
  return CallsPerSecond([&] {
           for (Eigen::Index j = 0; j < a.cols(); ++j)
             a.col(j).array() = a.col(j).array() * 0.9999999f + d.array();
         }) *
         per_call;
}

// The bytes a per-example SGD step of `sizes` must move at least: every weight it updates is
// read and written once (the forward product of the next example rides on that pass), the
// biases too; `first_columns` of the first layer's inputs are touched (all of them for a
// dense input or with weight decay). Activations, deltas and the input (a few KB, in L1)
// are not counted.
double PerExampleBytes(const std::vector<int>& sizes, double first_columns) {
  double floats = 0;
  for (size_t i = 0; i + 1 < sizes.size(); ++i)
    floats += 2.0 * sizes[i + 1] * (i == 0 ? first_columns : sizes[i]) + 2.0 * sizes[i + 1];
  return 4 * floats;
}

// The mean number of the first layer's columns a per-example pass visits on `data` in its
// stored order: inputs that are non-zero in an example or the next.
double MeanVisitedColumns(const Dataset& data, int64_t pairs) {
  pairs = std::min<int64_t>(pairs, data.size() - 1);
  double sum = 0;
  for (int64_t k = 0; k < pairs; ++k)
    sum += ((data.features.col(k).array() != 0) || (data.features.col(k + 1).array() != 0)).count();
  return sum / double(pairs);
}

double SquareGemmGflops(int size) {
  Rng rng(4);
  Matrix a(size, size), b(size, size), c(size, size);
  rng.FillUniform(a, -1, 1);
  rng.FillUniform(b, -1, 1);
  return CallsPerSecond([&] { c.noalias() = a * b; }) * 2.0 * size * size * size / 1e9;
}

struct Row {
  std::string net, rule;
  int batch;
  double samples_per_s, gflops, bound_samples_per_s;
};

// The engine benchmark's MNIST classifier: tanh hidden units, softmax + cross-entropy,
// plain SGD, no metrics.
TrainerOptions MnistOptions(Rule rule, int batch, std::vector<int> sizes) {
  TrainerOptions o;
  o.network.sizes = std::move(sizes);
  o.network.hidden = Activation::kTanh;
  o.network.output = Activation::kSoftmax;
  o.network.loss = Loss::kCrossEntropy;
  o.feedback.rule = rule;
  o.optimizer.learning_rate = 0.01f;
  o.batch_size = batch;
  o.epochs = 1000;
  o.metrics_every = 0;
  return o;
}

// LeNet-5 on 1x28x28 (tests/core/no_malloc_test.cc's LeNet(); padding 2 in the first
// convolution, as LeCun's 32x32): conv 6x5x5 p2, maxpool 2, conv 16x5x5, maxpool 2, dense
// 120, 84, 10; ReLU hidden units, softmax + cross-entropy, plain SGD, Xavier init, no
// metrics. torch_bench.py --lenet builds the same net.
TrainerOptions LeNetOptions(Rule rule, int batch) {
  auto spec = [](LayerKind kind, int units, int kernel, int padding = 0) {
    LayerSpec l;
    l.kind = kind;
    l.units = units;
    l.kernel_h = kernel;
    l.padding = padding;
    return l;
  };
  TrainerOptions o;
  o.network.input = {1, 28, 28};
  o.network.sizes = {784};
  o.network.layers = {spec(LayerKind::kConv, 6, 5, 2), spec(LayerKind::kMaxPool, 0, 2),
                      spec(LayerKind::kConv, 16, 5),   spec(LayerKind::kMaxPool, 0, 2),
                      spec(LayerKind::kDense, 120, 0), spec(LayerKind::kDense, 84, 0),
                      spec(LayerKind::kDense, 10, 0)};
  if (!CompleteNetwork(&o.network).ok()) std::abort();
  o.network.hidden = Activation::kRelu;
  o.network.output = Activation::kSoftmax;
  o.network.loss = Loss::kCrossEntropy;
  o.feedback.rule = rule;
  o.optimizer.learning_rate = 0.01f;
  o.batch_size = batch;
  o.epochs = 1000;
  o.metrics_every = 0;
  return o;
}

double StepsPerSecond(const TrainerOptions& o, std::shared_ptr<const Dataset> data) {
  auto t = Trainer::Create(o, data);
  if (!t.ok()) {
    std::fprintf(stderr, "alignd_bench: %s\n", t.status().ToString().c_str());
    std::exit(1);
  }
  Trainer& trainer = **t;
  StepMetrics m;
  return CallsPerSecond([&] {
    if (!trainer.Step(&m).ok()) std::exit(1);
  });
}

// The same step on one and on `threads` threads, measured in alternating rounds so that the
// machine's drift (20-40 % between runs) falls on both alike: {1 thread, `threads`}, each the
// best round's steps per second.
std::pair<double, double> StepsPerSecondOneAndMany(TrainerOptions o, int threads,
                                                   std::shared_ptr<const Dataset> data) {
  o.threads = 1;
  auto one = Trainer::Create(o, data);
  o.threads = threads;
  auto many = Trainer::Create(o, data);
  if (!one.ok() || !many.ok()) {
    std::fprintf(stderr, "alignd_bench: cannot create the trainers\n");
    std::exit(1);
  }
  StepMetrics m;
  auto round = [&](Trainer& t) {
    for (int i = 0; i < 3; ++i)
      if (!t.Step(&m).ok()) std::exit(1);
    int64_t calls = 0;
    const auto start = Clock::now();
    double elapsed = 0;
    while (elapsed < g_seconds / 4) {
      for (int k = 0; k < 8; ++k)
        if (!t.Step(&m).ok()) std::exit(1);
      calls += 8;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    }
    return calls / elapsed;
  };
  double best_one = 0, best_many = 0;
  for (int r = 0; r < 4; ++r) {
    best_one = std::max(best_one, round(**one));
    best_many = std::max(best_many, round(**many));
  }
  SetGemmThreads(1);
  return {best_one, best_many};
}

}  // namespace

int main(int argc, char** argv) {
  std::string mnist_dir, out_path;
  bool lenet_only = false;
  int lenet_batch = 0;  // 0: batch 1, 64 and 256
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--mnist_dir" && i + 1 < argc)
      mnist_dir = argv[++i];
    else if (a == "--out" && i + 1 < argc)
      out_path = argv[++i];
    else if (a == "--seconds" && i + 1 < argc)
      g_seconds = std::stod(argv[++i]);
    else if (a == "--verbose")
      g_verbose = true;
    else if (a == "--lenet_only")
      lenet_only = true;
    else if (a == "--lenet_batch" && i + 1 < argc)  // with --lenet_only: one batch (profiles)
      lenet_batch = std::stoi(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: %s [--mnist_dir DIR] [--seconds S] [--out FILE] [--lenet_only "
                   "[--lenet_batch N]]\n",
                   argv[0]);
      return 2;
    }
  }
  EnableFlushToZero();
  bool real = false;
  auto mnist = MnistOrSynthetic(mnist_dir, &real);
  json rows = json::array();
  std::printf("alignd engine, one thread, %s data, products by %s\n",
              real ? "MNIST" : "synthetic MNIST-shaped", GemmBackend());

  // LeNet-5 (torch_bench.py --lenet runs the same steps): samples/s of whole steps.
  std::printf("LeNet-5 on 1x28x28, one thread, convolutions by %s\n%-4s %6s %12s\n", ConvBackend(),
              "rule", "batch", "samples/s");
  for (int batch : {1, 64, 256}) {
    if (lenet_batch != 0 && batch != lenet_batch) continue;
    for (Rule rule : {Rule::kBackprop, Rule::kFeedbackAlignment}) {
      const double sps = batch * StepsPerSecond(LeNetOptions(rule, batch), mnist);
      std::printf("%-4s %6d %12.0f\n", std::string(RuleName(rule)).c_str(), batch, sps);
      rows.push_back({{"net", "lenet"},
                      {"impl", "alignd"},
                      {"rule", std::string(RuleName(rule))},
                      {"batch", batch},
                      {"threads", 1},
                      {"samples_per_s", sps}});
    }
  }
  std::printf("\n");
  if (lenet_only) {
    if (!out_path.empty()) std::ofstream(out_path) << rows.dump(1) << "\n";
    return 0;
  }

  const double gemm = SquareGemmGflops(1024);
  std::printf("Eigen single-thread GEMM 1024^3: %.1f GFLOP/s\n\n", gemm);
  rows.push_back(
      {{"net", "gemm"}, {"impl", "alignd"}, {"gflops", gemm}, {"shape", "1024x1024x1024"}});

  std::printf("%-6s %-4s %6s %7s %14s %9s %14s %9s\n", "net", "rule", "batch", "threads",
              "samples/s", "GFLOP/s", "bound samp/s", "of bound");
  auto report = [&](const std::string& net, const std::string& rule, int batch, double steps_per_s,
                    const ProductTimes& p, int threads = 1) {
    const double sps = steps_per_s * batch;
    const double gflops = steps_per_s * p.flops_per_step / 1e9;
    json row = {{"net", net},         {"impl", "alignd"},     {"rule", rule},    {"batch", batch},
                {"threads", threads}, {"samples_per_s", sps}, {"gflops", gflops}};
    if (batch == 1 && net == "mnist") {
      // Not products at batch 1 but one pass over W: judged by the memory bound below.
      std::printf("%-6s %-4s %6d %7d %14.0f %9.1f %14s %9s\n", net.c_str(), rule.c_str(), batch,
                  threads, sps, gflops, "(memory)", "below");
    } else {
      const double bound = batch / p.seconds_per_step;
      std::printf("%-6s %-4s %6d %7d %14.0f %9.1f %14.0f %8.0f%%\n", net.c_str(), rule.c_str(),
                  batch, threads, sps, gflops, bound, 100 * sps / bound);
      row["fraction_of_shape_bound"] = sps / bound;
    }
    rows.push_back(row);
    return sps;
  };

  double fa_b32 = 0, bp_b32 = 0;
  for (int batch : {1, 32, 128}) {
    const ProductTimes p = TimeProducts(784, 1000, 10, batch);
    for (Rule rule : {Rule::kBackprop, Rule::kFeedbackAlignment}) {
      const double sps =
          report("mnist", std::string(RuleName(rule)), batch,
                 StepsPerSecond(MnistOptions(rule, batch, {784, 1000, 10}), mnist), p);
      if (batch == 32) (rule == Rule::kBackprop ? bp_b32 : fa_b32) = sps;
    }
  }

  // Per-example SGD (batch 1) at the memory bound: the step moves W once (core/per_example.h).
  // Bound: the bytes the step must move (PerExampleBytes) at the read-modify-write bandwidth
  // this machine reaches at the network's working set.
  {
    const std::vector<int> sizes = {784, 1000, 10};
    const double weight_bytes = PerExampleBytes(sizes, 784) / 2;
    const double bandwidth = ReadModifyWriteBandwidth(static_cast<size_t>(weight_bytes), 1000);
    const double mnist_columns = MeanVisitedColumns(*mnist, 20000);
    std::printf(
        "\nper-example SGD, 784-1000-10, one thread: read-modify-write bandwidth at %.1f MB "
        "%.1f GB/s\n%-34s %-4s %10s %9s %14s %9s\n",
        weight_bytes / 1e6, bandwidth / 1e9, "data and protocol", "rule", "samples/s", "MB/step",
        "bound samp/s", "of bound");
    Rng rng(5);
    Matrix dense_x(784, 20000);
    rng.FillUniform(dense_x, 0.01f, 1.0f);  // no zeros: every column every step
    std::vector<int32_t> dense_labels(20000);
    for (size_t j = 0; j < dense_labels.size(); ++j) dense_labels[j] = int32_t(j % 10);
    auto dense =
        std::make_shared<const Dataset>(*MakeClassificationDataset(dense_x, dense_labels, 10));
    struct Case {
      std::string what;
      std::shared_ptr<const Dataset> data;
      bool paper;  // the paper's protocol: logistic units, squared error, weight decay 1e-6
      double columns;
    };
    const std::vector<Case> cases = {
        {"MNIST, paper protocol (decay)", mnist, true, 784},
        {"dense inputs, no decay", dense, false, 784},
        {"MNIST, no decay (zero pixels skipped)", mnist, false, mnist_columns},
    };
    for (const Case& c : cases) {
      for (Rule rule : {Rule::kBackprop, Rule::kFeedbackAlignment}) {
        TrainerOptions o = MnistOptions(rule, 1, sizes);
        if (c.paper) {
          o.network.hidden = o.network.output = Activation::kLogistic;
          o.network.loss = Loss::kSquaredError;
          o.init.kind = WeightInit::kUniform;
          o.init.scale = 0.05f;
          o.optimizer.learning_rate = rule == Rule::kBackprop ? 0.2f : 0.05f;  // repro.py's
          o.optimizer.weight_decay = 1e-6f;
        }
        const double sps = StepsPerSecond(o, c.data);
        const double bytes = PerExampleBytes(sizes, c.columns);
        const double bound = bandwidth / bytes;
        std::printf("%-34s %-4s %10.0f %9.2f %14.0f %8.0f%%\n", c.what.c_str(),
                    std::string(RuleName(rule)).c_str(), sps, bytes / 1e6, bound,
                    100 * sps / bound);
        rows.push_back({{"net", "per_example"},
                        {"impl", "alignd"},
                        {"case", c.what},
                        {"rule", std::string(RuleName(rule))},
                        {"batch", 1},
                        {"threads", 1},
                        {"samples_per_s", sps},
                        {"bytes_per_step", bytes},
                        {"visited_columns", c.columns},
                        {"rmw_bandwidth", bandwidth},
                        {"fraction_of_memory_bound", sps / bound}});
      }
    }
  }

  // One session on several threads (TrainingConfig.threads): its products and the
  // elementwise work around them (core/parallel.h) split over them; the shape bound is that
  // of the products on as many threads. The one-thread step is measured again beside it, in
  // alternating rounds, for the speed-up.
  std::printf("\n%-6s %-4s %6s %7s %14s %9s %14s %9s %14s %8s\n", "net", "rule", "batch", "threads",
              "samples/s", "GFLOP/s", "bound samp/s", "of bound", "1 thread samp/s", "speed-up");
  for (int threads : {2}) {
    for (int batch : {32, 128}) {
      const ProductTimes p = TimeProducts(784, 1000, 10, batch, threads);
      for (Rule rule : {Rule::kBackprop, Rule::kFeedbackAlignment}) {
        const auto [one, many] =
            StepsPerSecondOneAndMany(MnistOptions(rule, batch, {784, 1000, 10}), threads, mnist);
        const double sps = many * batch, bound = batch / p.seconds_per_step;
        std::printf("%-6s %-4s %6d %7d %14.0f %9.1f %14.0f %8.0f%% %14.0f %7.2fx\n", "mnist",
                    std::string(RuleName(rule)).c_str(), batch, threads, sps,
                    many * p.flops_per_step / 1e9, bound, 100 * sps / bound, one * batch,
                    many / one);
        rows.push_back({{"net", "mnist"},
                        {"impl", "alignd"},
                        {"rule", std::string(RuleName(rule))},
                        {"batch", batch},
                        {"threads", threads},
                        {"samples_per_s", sps},
                        {"gflops", many * p.flops_per_step / 1e9},
                        {"fraction_of_shape_bound", sps / bound},
                        {"one_thread_samples_per_s", one * batch},
                        {"speedup_vs_one_thread", many / one}});
      }
    }
  }

  // How the cost grows with the network: width, then depth (BP, batch 128, one thread;
  // torch_bench.py --scaling runs the same nets). GFLOP/s counts the step's products.
  std::printf("\nscaling, BP, batch 128, one thread\n%-24s %14s %9s\n", "net", "samples/s",
              "GFLOP/s");
  std::vector<std::vector<int>> scaling;
  for (int w : {256, 512, 1024, 2048, 4096}) scaling.push_back({784, w, 10});
  for (int d = 1; d <= 4; ++d) {
    std::vector<int> sizes = {784};
    sizes.insert(sizes.end(), d, 1000);
    sizes.push_back(10);
    scaling.push_back(sizes);
  }
  for (const std::vector<int>& sizes : scaling) {
    double flops = 0;  // per sample: forward and update of every layer, backward above the first
    for (size_t i = 0; i + 1 < sizes.size(); ++i)
      flops += 2.0 * sizes[i] * sizes[i + 1] * (i == 0 ? 2 : 3);
    std::string net;
    for (int v : sizes) net += (net.empty() ? "" : "-") + std::to_string(v);
    const double sps = 128 * StepsPerSecond(MnistOptions(Rule::kBackprop, 128, sizes), mnist);
    std::printf("%-24s %14.0f %9.1f\n", net.c_str(), sps, sps * flops / 1e9);
    rows.push_back({{"net", net},
                    {"impl", "alignd"},
                    {"rule", "bp"},
                    {"batch", 128},
                    {"threads", 1},
                    {"samples_per_s", sps},
                    {"gflops", sps * flops / 1e9}});
  }

  // The paper's tiny linear net at batch 1: per-step overhead dominates.
  auto linear = std::make_shared<const Dataset>(MakeLinearTask({})->train);
  const ProductTimes tiny = TimeProducts(30, 20, 10, 1);
  for (Rule rule : {Rule::kBackprop, Rule::kFeedbackAlignment}) {
    TrainerOptions o;
    o.network.sizes = {30, 20, 10};
    o.network.hidden = Activation::kLinear;
    o.network.output = Activation::kLinear;
    o.feedback.rule = rule;
    o.optimizer.learning_rate = 0.001f;
    o.batch_size = 1;
    o.epochs = 1000000;
    o.metrics_every = 0;
    report("tiny", std::string(RuleName(rule)), 1, StepsPerSecond(o, linear), tiny);
  }

  // The cost of alignment metrics every 100 steps (FA, batch 32): runs with and without
  // metrics are interleaved, best of 3 each, so that drifts of the machine cancel out.
  TrainerOptions o;
  o.network.sizes = {784, 1000, 10};
  o.network.hidden = Activation::kTanh;
  o.network.output = Activation::kSoftmax;
  o.network.loss = Loss::kCrossEntropy;
  o.feedback.rule = Rule::kFeedbackAlignment;
  o.optimizer.learning_rate = 0.01f;
  o.batch_size = 32;
  o.epochs = 1000;
  double plain = 0, with_metrics = 0;
  for (int round = 0; round < 3; ++round) {
    o.metrics_every = 0;
    plain = std::max(plain, StepsPerSecond(o, mnist) * 32);
    o.metrics_every = 100;
    with_metrics = std::max(with_metrics, StepsPerSecond(o, mnist) * 32);
  }
  std::printf("\nFA step / BP step time at batch 32: %.3f  (target <= 1.05)\n", bp_b32 / fa_b32);
  std::printf("metrics every 100 steps cost: %.1f%%  (target < 5%%)\n",
              100 * (plain / with_metrics - 1));
  rows.push_back({{"net", "mnist"},
                  {"impl", "alignd"},
                  {"rule", "fa"},
                  {"batch", 32},
                  {"metrics_every", 100},
                  {"samples_per_s", with_metrics},
                  {"samples_per_s_without_metrics", plain}});
  rows.push_back({{"net", "summary"},
                  {"impl", "alignd"},
                  {"fa_over_bp_step_time", bp_b32 / fa_b32},
                  {"metrics_cost", plain / with_metrics - 1},
                  {"gemm_backend", GemmBackend()}});

  if (!out_path.empty()) {
    std::ofstream(out_path) << rows.dump(1) << "\n";
  }
  return 0;
}
