// File: core/config.h
// -----------------------------------------------------------------------------
// The whole configuration of a training run: network shape, learning rule and its
// feedback matrices, weight initialisation, optimiser, schedule and reporting.
// Every field has a sensible default; ValidateOptions() checks a config before a
// Trainer is built and names the offending field in its InvalidArgument message
// (e.g. "network.sizes[1] must be >= 1, got 0").
//
// Rules (docs/SCIENCE.md, core/feedback.h):
//   kBackprop            hidden signal W^T delta
//   kFeedbackAlignment   B delta, B fixed and random (Lillicrap et al. 2016)
//   kDirectFeedbackAlignment  B_l delta_out straight from the output (Nokland 2016)
//   kSignSymmetry        (sign(W) o M)^T delta, M = 1 (uSF) or |B| fixed (frSF)
//   kKolenPollack        B delta, B updated like W^T with the same weight decay
//   kPseudoBackprop      W^+ delta, the pseudoinverse recomputed every k steps
//   kShallow             no hidden signal: only the last layer learns
#ifndef ALIGND_CORE_CONFIG_H_
#define ALIGND_CORE_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace alignd::core {

enum class Activation { kLinear, kTanh, kLogistic, kRelu, kSoftmax };
enum class Loss { kSquaredError, kCrossEntropy };
enum class Rule {
  kBackprop,
  kFeedbackAlignment,
  kDirectFeedbackAlignment,
  kSignSymmetry,
  kKolenPollack,
  kPseudoBackprop,
  kShallow,
};
enum class Distribution { kUniform, kGaussian };
enum class SignSymmetryMode {
  kScaled,       // M = mean |W[i]| (one number per layer, refreshed with the signs)
  kUniform,      // uSF: M = 1
  kFixedRandom,  // frSF: M = |B|, B drawn once
  kBatchRandom,  // brSF: M = |B|, B redrawn every step (batch)
};
enum class WeightInit { kUniform /* U[-scale, scale] */, kXavier, kHe };
// The kinds of layer (core/layers.h): dense, 2-d convolution, max and average pooling, and
// flatten (which only forgets the image shape: the bytes are the same).
enum class LayerKind { kDense, kConv, kMaxPool, kAvgPool, kFlatten };
enum class OptimizerKind { kSgd, kAdam };

// Names as used on the command line and in the API ("bp", "fa", "dfa", "sign", "kp",
// "pbp", "shallow"; "tanh", ...). Parse* return InvalidArgument listing the valid names.
absl::string_view RuleName(Rule r);
absl::string_view ActivationName(Activation a);
absl::string_view LossName(Loss l);
absl::string_view OptimizerName(OptimizerKind o);
absl::string_view WeightInitName(WeightInit w);
absl::string_view DistributionName(Distribution d);
absl::string_view SignSymmetryModeName(SignSymmetryMode m);
absl::string_view LayerKindName(LayerKind k);
absl::StatusOr<Rule> ParseRule(absl::string_view name);
absl::StatusOr<Activation> ParseActivation(absl::string_view name);
absl::StatusOr<Loss> ParseLoss(absl::string_view name);
absl::StatusOr<OptimizerKind> ParseOptimizer(absl::string_view name);
absl::StatusOr<WeightInit> ParseWeightInit(absl::string_view name);
absl::StatusOr<Distribution> ParseDistribution(absl::string_view name);
absl::StatusOr<SignSymmetryMode> ParseSignSymmetryMode(absl::string_view name);
absl::StatusOr<LayerKind> ParseLayerKind(absl::string_view name);
std::vector<Rule> AllRules();

// An image's shape: channels x height x width (row-major within a channel).
struct ImageShape {
  int channels = 0, height = 0, width = 0;
  bool empty() const { return channels == 0 && height == 0 && width == 0; }
  int64_t size() const { return int64_t(channels) * height * width; }
  bool operator==(const ImageShape& o) const {
    return channels == o.channels && height == o.height && width == o.width;
  }
};

// One layer of the network, as the API states it (core/layers.h builds the runtime layer).
struct LayerSpec {
  LayerKind kind = LayerKind::kDense;
  int units = 0;     // dense: outputs; conv: output channels; pooling and flatten: unused
  int kernel_h = 0;  // conv: the kernel; pooling: the (square) window (kernel_w = kernel_h)
  int kernel_w = 0;  // 0 = kernel_h
  int stride = 0;    // conv: 0 = 1; pooling: 0 = the window
  int padding = 0;   // conv: zeros on every side
};

struct NetworkConfig {
  // Units per activation, input first: {784, 1000, 10} is one hidden layer of 1000. With
  // `layers`, CompleteNetwork derives it (each entry channels x height x width).
  std::vector<int> sizes = {30, 20, 10};
  // The layers, first to last. Empty: dense layers between the `sizes` (the shorthand).
  std::vector<LayerSpec> layers;
  // The input's image shape, for convolution and pooling layers; empty: a flat vector of
  // sizes[0] features.
  ImageShape input;
  Activation hidden = Activation::kTanh;
  Activation output = Activation::kLinear;
  Loss loss = Loss::kSquaredError;
  bool bias = true;
  // The paper's sparse variant: this fraction of the entries of every W and every B is
  // removed at the start and stays removed (a fixed connection mask). 0 = dense.
  float connection_sparsity = 0.0f;
};

struct InitConfig {
  WeightInit kind = WeightInit::kXavier;
  // For kUniform: W ~ U[-scale, scale] (the paper's omega). Ignored otherwise.
  float scale = 0.05f;
};

struct FeedbackConfig {
  Rule rule = Rule::kFeedbackAlignment;
  Distribution distribution = Distribution::kUniform;
  // U[-scale, scale] or N(0, scale^2) (the paper's beta). 0 = automatic: the Xavier
  // scale of the matrix's shape.
  float scale = 0.0f;
  // Fraction of the entries of each B set to zero at the start (fixed).
  float sparsity = 0.0f;
  // Seed of the feedback matrices; 0 = derived from TrainerOptions::seed.
  uint64_t seed = 0;
  // Sign symmetry's magnitudes. Default scaled: the hidden signal sign(W)^T delta with
  // M = 1 (uSF) is about 1 / mean|W| times BP's, per layer, compounding with depth (22x at
  // 784-1000-10 with Xavier init); Liao et al. relied on batch normalisation or Batch
  // Manhattan to absorb that. Scaled takes uSF's direction at BP's magnitude, so one
  // learning rate serves BP and sign symmetry alike under plain SGD.
  SignSymmetryMode sign_mode = SignSymmetryMode::kScaled;
  // Pseudo-backprop: recompute W^+ every this many steps.
  int pinv_every = 1;
  // Pseudo-backprop: 0 = the exact pseudo-inverse W^+; > 0 = the damped one
  // (W^T W + lambda I)^-1 W^T with lambda = pinv_damping * mean sigma^2(W)
  // (= |W|_F^2 / min(rows, cols)): scale-free, and it bounds W^+'s gain at
  // 1 / (2 sqrt(lambda)) where W is ill-conditioned.
  float pinv_damping = 0.0f;
};

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kSgd;
  float learning_rate = 0.01f;
  float momentum = 0.0f;      // SGD only
  float weight_decay = 0.0f;  // L2 on weights (not biases), added to the gradient
  float beta1 = 0.9f;         // Adam
  float beta2 = 0.999f;       // Adam
  float epsilon = 1e-8f;      // Adam
  // Optional per-layer learning rates (one per weight layer: dense and conv, first to last)
  // that replace learning_rate.
  std::vector<float> layer_learning_rates;
  // Step decay: the learning rate is multiplied by decay_factor at the start of each of these
  // epochs (0-based, ascending: {50, 75} trains epochs 0-49 at the rate, 50-74 at a tenth,
  // and the rest at a hundredth with the default factor). Empty: constant.
  std::vector<int> decay_epochs;
  float decay_factor = 0.1f;
};

struct TrainerOptions {
  NetworkConfig network;
  InitConfig init;
  FeedbackConfig feedback;
  OptimizerConfig optimizer;
  int batch_size = 32;  // 1 = the paper's per-example updates
  // Length of the run: max_steps steps if > 0, otherwise `epochs` passes over the
  // training set (each pass is floor(n / batch_size) steps; the remainder of a pass
  // is skipped, a different remainder each epoch when shuffling).
  int epochs = 1;
  int64_t max_steps = 0;
  uint64_t seed = 1;    // weights and shuffling
  bool shuffle = true;  // reshuffle the training set every epoch
  // Alignment metrics (and train-batch accuracy / NSE) every this many steps; 0 = never.
  int metrics_every = 100;
  // Also report the angle to the pseudo-backprop signal W^+ delta (costs an SVD).
  bool pbp_angle = false;
  // Evaluate on the held-out sets every this many steps; 0 = only at the end.
  int eval_every = 0;
  // Hold this fraction of the training set out of training, for validation: the last
  // round(validation_fraction * n) examples in the data set's order (MNIST's 60,000 with
  // 1/6: the last 10,000). They are never trained on, and are evaluated with every
  // evaluation (EvalMetrics::validation), before the evaluation data set. In [0, 1);
  // 0 = none.
  float validation_fraction = 0.0f;
  // Threads the session's matrix products run on (the training thread and threads - 1
  // helpers), 1..kMaxThreads. Results are bit-identical for the same thread count on
  // the same machine and build; a different count may change the last bits (a product's
  // sums are split differently), so a run resumes with the count it started with.
  int threads = 1;
};

inline constexpr int kMaxThreads = 256;

// Examples of a training set of n held out for validation, and trained on.
int64_t ValidationExamples(const TrainerOptions& options, int64_t n);
inline int64_t TrainingExamples(const TrainerOptions& options, int64_t n) {
  return n - ValidationExamples(options, n);
}

// Returns InvalidArgument naming the first bad field, OK otherwise.
absl::Status ValidateOptions(const TrainerOptions& options);

// With network.layers given: fills network.sizes (input first; sizes[0] from `input` when it
// is given, else the sizes[0] already there) from the layers' shapes, or InvalidArgument
// naming the layer whose shapes do not chain ("network.layers[2]: a 5x5 kernel is larger
// than its 4x4 input"). Without layers: checks nothing and changes nothing.
absl::Status CompleteNetwork(NetworkConfig* network);
// The layer specs of the network: `layers`, or dense layers from `sizes` when it is empty.
std::vector<LayerSpec> LayerSpecs(const NetworkConfig& network);
// Whether layers of this kind have weights (dense, conv).
constexpr bool HasWeights(LayerKind k) { return k == LayerKind::kDense || k == LayerKind::kConv; }
// Weight layers (dense and conv) of the network.
int NumWeightLayers(const NetworkConfig& network);

// The paper's linear network (docs/SCIENCE.md, "linear"): 30-20-10, linear units, no biases,
// W ~ U[-0.01, 0.01], B ~ U[-0.5, 0.5], per-example SGD at 0.002, metrics every 50 steps.
// One source for the demo, the tests and the reproduction; callers set the schedule.
TrainerOptions PaperLinearOptions(Rule rule);

// Number of layers (sizes.size() - 1): weight layers, and pooling and flatten ones.
inline int NumLayers(const NetworkConfig& n) { return static_cast<int>(n.sizes.size()) - 1; }

}  // namespace alignd::core

#endif  // ALIGND_CORE_CONFIG_H_
