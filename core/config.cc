// File: core/config.cc
#include "core/config.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace alignd::core {
namespace {

template <typename E, size_t N>
using NameTable = std::array<std::pair<E, absl::string_view>, N>;

constexpr NameTable<Rule, 7> kRules = {{{Rule::kBackprop, "bp"},
                                        {Rule::kFeedbackAlignment, "fa"},
                                        {Rule::kDirectFeedbackAlignment, "dfa"},
                                        {Rule::kSignSymmetry, "sign"},
                                        {Rule::kKolenPollack, "kp"},
                                        {Rule::kPseudoBackprop, "pbp"},
                                        {Rule::kShallow, "shallow"}}};
constexpr NameTable<Activation, 5> kActivations = {{{Activation::kLinear, "linear"},
                                                    {Activation::kTanh, "tanh"},
                                                    {Activation::kLogistic, "logistic"},
                                                    {Activation::kRelu, "relu"},
                                                    {Activation::kSoftmax, "softmax"}}};
constexpr NameTable<Loss, 2> kLosses = {
    {{Loss::kSquaredError, "mse"}, {Loss::kCrossEntropy, "cross_entropy"}}};
constexpr NameTable<OptimizerKind, 2> kOptimizers = {
    {{OptimizerKind::kSgd, "sgd"}, {OptimizerKind::kAdam, "adam"}}};
constexpr NameTable<WeightInit, 3> kInits = {
    {{WeightInit::kUniform, "uniform"}, {WeightInit::kXavier, "xavier"}, {WeightInit::kHe, "he"}}};
constexpr NameTable<Distribution, 2> kDistributions = {
    {{Distribution::kUniform, "uniform"}, {Distribution::kGaussian, "gaussian"}}};
constexpr NameTable<SignSymmetryMode, 3> kSignModes = {{{SignSymmetryMode::kScaled, "scaled"},
                                                        {SignSymmetryMode::kUniform, "usf"},
                                                        {SignSymmetryMode::kFixedRandom, "frsf"}}};

template <typename E, size_t N>
absl::string_view NameOf(const NameTable<E, N>& table, E e) {
  for (const auto& [k, v] : table)
    if (k == e) return v;
  return "unknown";
}

template <typename E, size_t N>
absl::StatusOr<E> Parse(const NameTable<E, N>& table, absl::string_view what,
                        absl::string_view name,
                        std::initializer_list<std::pair<absl::string_view, E>> aliases = {}) {
  const std::string lower = absl::AsciiStrToLower(name);
  for (const auto& [k, v] : table)
    if (v == lower) return k;
  for (const auto& [alias, k] : aliases)
    if (alias == lower) return k;
  std::vector<absl::string_view> names;
  for (const auto& [k, v] : table) names.push_back(v);
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown ", what, " '", name, "'; expected one of: ", absl::StrJoin(names, ", ")));
}

bool Finite(float x) { return std::isfinite(x); }

absl::Status Bad(absl::string_view field, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", message));
}

}  // namespace

absl::string_view RuleName(Rule r) { return NameOf(kRules, r); }
absl::string_view ActivationName(Activation a) { return NameOf(kActivations, a); }
absl::string_view LossName(Loss l) { return NameOf(kLosses, l); }
absl::string_view OptimizerName(OptimizerKind o) { return NameOf(kOptimizers, o); }
absl::string_view WeightInitName(WeightInit w) { return NameOf(kInits, w); }
absl::string_view DistributionName(Distribution d) { return NameOf(kDistributions, d); }
absl::string_view SignSymmetryModeName(SignSymmetryMode m) { return NameOf(kSignModes, m); }

absl::StatusOr<Rule> ParseRule(absl::string_view name) {
  return Parse(kRules, "rule", name,
               {{"backprop", Rule::kBackprop},
                {"feedback_alignment", Rule::kFeedbackAlignment},
                {"direct_feedback_alignment", Rule::kDirectFeedbackAlignment},
                {"sign_symmetry", Rule::kSignSymmetry},
                {"kolen_pollack", Rule::kKolenPollack},
                {"pseudo_backprop", Rule::kPseudoBackprop}});
}
absl::StatusOr<Activation> ParseActivation(absl::string_view name) {
  return Parse(kActivations, "activation", name,
               {{"sigmoid", Activation::kLogistic}, {"identity", Activation::kLinear}});
}
absl::StatusOr<Loss> ParseLoss(absl::string_view name) {
  return Parse(kLosses, "loss", name,
               {{"squared_error", Loss::kSquaredError},
                {"se", Loss::kSquaredError},
                {"ce", Loss::kCrossEntropy},
                {"xent", Loss::kCrossEntropy}});
}
absl::StatusOr<OptimizerKind> ParseOptimizer(absl::string_view name) {
  return Parse(kOptimizers, "optimizer", name);
}
absl::StatusOr<WeightInit> ParseWeightInit(absl::string_view name) {
  return Parse(kInits, "weight init", name, {{"glorot", WeightInit::kXavier}});
}
absl::StatusOr<Distribution> ParseDistribution(absl::string_view name) {
  return Parse(kDistributions, "distribution", name, {{"normal", Distribution::kGaussian}});
}
absl::StatusOr<SignSymmetryMode> ParseSignSymmetryMode(absl::string_view name) {
  return Parse(
      kSignModes, "sign symmetry mode", name,
      {{"uniform", SignSymmetryMode::kUniform}, {"fixed_random", SignSymmetryMode::kFixedRandom}});
}

std::vector<Rule> AllRules() {
  std::vector<Rule> rules;
  for (const auto& [k, v] : kRules) rules.push_back(k);
  return rules;
}

absl::Status ValidateOptions(const TrainerOptions& o) {
  const NetworkConfig& n = o.network;
  if (n.sizes.size() < 2)
    return Bad("network.sizes",
               absl::StrCat("needs at least 2 entries (input and output), got ", n.sizes.size()));
  for (size_t i = 0; i < n.sizes.size(); ++i) {
    if (n.sizes[i] < 1)
      return Bad(absl::StrCat("network.sizes[", i, "]"),
                 absl::StrCat("must be >= 1, got ", n.sizes[i]));
  }
  if (n.hidden == Activation::kSoftmax)
    return Bad("network.hidden", "cannot be softmax (softmax is an output activation)");
  if (n.loss == Loss::kCrossEntropy && n.output != Activation::kSoftmax &&
      n.output != Activation::kLogistic)
    return Bad("network.loss",
               absl::StrCat("cross_entropy needs a softmax or logistic output, got ",
                            ActivationName(n.output)));
  if (!(n.connection_sparsity >= 0.0f && n.connection_sparsity < 1.0f))
    return Bad("network.connection_sparsity",
               absl::StrCat("must be in [0, 1), got ", n.connection_sparsity));

  if (!Finite(o.init.scale) || o.init.scale < 0.0f)
    return Bad("init.scale", absl::StrCat("must be finite and >= 0, got ", o.init.scale));

  const FeedbackConfig& f = o.feedback;
  if (!Finite(f.scale) || f.scale < 0.0f)
    return Bad("feedback.scale",
               absl::StrCat("must be finite and >= 0 (0 = automatic), got ", f.scale));
  if (!(f.sparsity >= 0.0f && f.sparsity < 1.0f))
    return Bad("feedback.sparsity", absl::StrCat("must be in [0, 1), got ", f.sparsity));
  if (f.pinv_every < 1)
    return Bad("feedback.pinv_every", absl::StrCat("must be >= 1, got ", f.pinv_every));
  if (!Finite(f.pinv_damping) || f.pinv_damping < 0.0f)
    return Bad("feedback.pinv_damping",
               absl::StrCat("must be finite and >= 0 (0 = exact), got ", f.pinv_damping));

  const OptimizerConfig& opt = o.optimizer;
  if (!Finite(opt.learning_rate) || opt.learning_rate <= 0.0f)
    return Bad("optimizer.learning_rate",
               absl::StrCat("must be finite and > 0, got ", opt.learning_rate));
  if (!(opt.momentum >= 0.0f && opt.momentum < 1.0f))
    return Bad("optimizer.momentum", absl::StrCat("must be in [0, 1), got ", opt.momentum));
  if (!Finite(opt.weight_decay) || opt.weight_decay < 0.0f)
    return Bad("optimizer.weight_decay",
               absl::StrCat("must be finite and >= 0, got ", opt.weight_decay));
  if (!(opt.beta1 >= 0.0f && opt.beta1 < 1.0f))
    return Bad("optimizer.beta1", absl::StrCat("must be in [0, 1), got ", opt.beta1));
  if (!(opt.beta2 >= 0.0f && opt.beta2 < 1.0f))
    return Bad("optimizer.beta2", absl::StrCat("must be in [0, 1), got ", opt.beta2));
  if (!Finite(opt.epsilon) || opt.epsilon <= 0.0f)
    return Bad("optimizer.epsilon", absl::StrCat("must be finite and > 0, got ", opt.epsilon));
  if (!opt.layer_learning_rates.empty()) {
    if (static_cast<int>(opt.layer_learning_rates.size()) != NumLayers(n))
      return Bad("optimizer.layer_learning_rates",
                 absl::StrCat("needs one entry per weight layer (", NumLayers(n), "), got ",
                              opt.layer_learning_rates.size()));
    for (size_t i = 0; i < opt.layer_learning_rates.size(); ++i) {
      const float lr = opt.layer_learning_rates[i];
      if (!Finite(lr) || lr < 0.0f)
        return Bad(absl::StrCat("optimizer.layer_learning_rates[", i, "]"),
                   absl::StrCat("must be finite and >= 0, got ", lr));
    }
  }

  if (o.batch_size < 1) return Bad("batch_size", absl::StrCat("must be >= 1, got ", o.batch_size));
  if (o.threads < 1 || o.threads > kMaxThreads)
    return Bad("threads", absl::StrCat("must be in [1, ", kMaxThreads, "], got ", o.threads));
  if (o.epochs < 0) return Bad("epochs", absl::StrCat("must be >= 0, got ", o.epochs));
  if (o.max_steps < 0) return Bad("max_steps", absl::StrCat("must be >= 0, got ", o.max_steps));
  if (o.epochs == 0 && o.max_steps == 0)
    return Bad("epochs", "and max_steps are both 0: set at least one");
  if (o.metrics_every < 0)
    return Bad("metrics_every", absl::StrCat("must be >= 0, got ", o.metrics_every));
  if (o.eval_every < 0) return Bad("eval_every", absl::StrCat("must be >= 0, got ", o.eval_every));
  if (!(o.validation_fraction >= 0.0f && o.validation_fraction < 1.0f))
    return Bad("validation_fraction",
               absl::StrCat("must be in [0, 1), got ", o.validation_fraction));
  return absl::OkStatus();
}

int64_t ValidationExamples(const TrainerOptions& options, int64_t n) {
  if (!(options.validation_fraction > 0.0f) || n <= 0) return 0;
  const double v = std::round(static_cast<double>(options.validation_fraction) * n);
  return std::clamp<int64_t>(static_cast<int64_t>(v), 1, n);
}

TrainerOptions PaperLinearOptions(Rule rule) {
  TrainerOptions o;
  o.network.sizes = {30, 20, 10};
  o.network.hidden = Activation::kLinear;
  o.network.output = Activation::kLinear;
  o.network.bias = false;
  o.init.kind = WeightInit::kUniform;
  o.init.scale = 0.01f;
  o.feedback.rule = rule;
  o.feedback.scale = 0.5f;
  o.optimizer.learning_rate = 0.002f;
  o.batch_size = 1;
  o.metrics_every = 50;
  return o;
}

}  // namespace alignd::core
