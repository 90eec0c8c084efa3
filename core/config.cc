// File: core/config.cc
#include "core/config.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <iterator>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/learning_rule.h"

namespace alignd::core {
namespace {

template <typename E, size_t N>
using NameTable = std::array<std::pair<E, absl::string_view>, N>;

constexpr size_t kNumRules = std::size(kRuleTable);
constexpr NameTable<Rule, kNumRules> RuleNames() {
  NameTable<Rule, kNumRules> t{};
  for (size_t i = 0; i < kNumRules; ++i) t[i] = {kRuleTable[i].rule, kRuleTable[i].name};
  return t;
}
constexpr NameTable<Rule, kNumRules> kRules = RuleNames();
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
constexpr NameTable<SignSymmetryMode, 4> kSignModes = {{{SignSymmetryMode::kScaled, "scaled"},
                                                        {SignSymmetryMode::kUniform, "usf"},
                                                        {SignSymmetryMode::kFixedRandom, "frsf"},
                                                        {SignSymmetryMode::kBatchRandom, "brsf"}}};
constexpr NameTable<LayerKind, 5> kLayerKinds = {{{LayerKind::kDense, "dense"},
                                                  {LayerKind::kConv, "conv"},
                                                  {LayerKind::kMaxPool, "maxpool"},
                                                  {LayerKind::kAvgPool, "avgpool"},
                                                  {LayerKind::kFlatten, "flatten"}}};

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
absl::string_view LayerKindName(LayerKind k) { return NameOf(kLayerKinds, k); }

absl::StatusOr<Rule> ParseRule(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  for (const RuleTraits& t : kRuleTable)
    if (t.long_name == lower) return t.rule;
  return Parse(kRules, "rule", name);
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
  return Parse(kSignModes, "sign symmetry mode", name,
               {{"uniform", SignSymmetryMode::kUniform},
                {"fixed_random", SignSymmetryMode::kFixedRandom},
                {"batch_random", SignSymmetryMode::kBatchRandom}});
}
absl::StatusOr<LayerKind> ParseLayerKind(absl::string_view name) {
  return Parse(kLayerKinds, "layer kind", name,
               {{"pool", LayerKind::kMaxPool},
                {"max_pool", LayerKind::kMaxPool},
                {"avg_pool", LayerKind::kAvgPool},
                {"conv2d", LayerKind::kConv},
                {"linear", LayerKind::kDense}});
}

std::vector<LayerSpec> LayerSpecs(const NetworkConfig& n) {
  if (!n.layers.empty()) return n.layers;
  std::vector<LayerSpec> specs;
  for (size_t i = 1; i < n.sizes.size(); ++i) {
    LayerSpec l;
    l.kind = LayerKind::kDense;
    l.units = n.sizes[i];
    specs.push_back(l);
  }
  return specs;
}

int NumWeightLayers(const NetworkConfig& n) {
  if (n.layers.empty()) return NumLayers(n);
  int k = 0;
  for (const LayerSpec& l : n.layers) k += HasWeights(l.kind);
  return k;
}

absl::Status CompleteNetwork(NetworkConfig* net) {
  if (net->layers.empty()) return absl::OkStatus();
  // The sizes are client-declared: every dimension is capped before it is multiplied, so no
  // product below can overflow (each at most 2^16 x 2^16 x 2^16, a kernel's area 2^24).
  constexpr int64_t kMaxUnits = int64_t{1} << 30;   // a layer's outputs, a kernel's columns
  constexpr int64_t kMaxDim = int64_t{1} << 16;     // channels, height, width of an image
  constexpr int64_t kMaxKernel = int64_t{1} << 12;  // kernel side, stride, padding
  constexpr size_t kMaxLayers = 1024;
  if (net->layers.size() > kMaxLayers)
    return Bad("network.layers",
               absl::StrCat("has ", net->layers.size(), " layers; at most ", kMaxLayers));
  struct Shape {
    int64_t c, h, w;
    bool spatial;
  };
  Shape cur{};
  const ImageShape& in = net->input;
  if (!in.empty()) {
    if (in.channels < 1 || in.height < 1 || in.width < 1 || in.channels > kMaxDim ||
        in.height > kMaxDim || in.width > kMaxDim)
      return Bad("network.input",
                 absl::StrCat("must be in [1, ", kMaxDim, "] in every dimension, got ", in.channels,
                              "x", in.height, "x", in.width));
    cur = {in.channels, in.height, in.width, true};
    if (cur.c * cur.h * cur.w > kMaxUnits)
      return Bad("network.input", absl::StrCat("has more than ", kMaxUnits, " values"));
    if (!net->sizes.empty() && net->sizes[0] != cur.c * cur.h * cur.w)
      return Bad("network.input", absl::StrCat("is ", in.channels, "x", in.height, "x", in.width,
                                               " (", cur.c * cur.h * cur.w,
                                               " values) but network.sizes[0] is ", net->sizes[0]));
  } else {
    if (net->sizes.empty() || net->sizes[0] < 1)
      return Bad("network.input",
                 "is not given: set it (channels, height, width) or network.sizes[0]");
    cur = {net->sizes[0], 1, 1, false};
  }
  std::vector<int> sizes = {static_cast<int>(cur.c * cur.h * cur.w)};
  for (size_t k = 0; k < net->layers.size(); ++k) {
    const LayerSpec& l = net->layers[k];
    const std::string field = absl::StrCat("network.layers[", k, "]");
    const bool pool = l.kind == LayerKind::kMaxPool || l.kind == LayerKind::kAvgPool;
    if ((l.kind == LayerKind::kConv || pool) && !cur.spatial)
      return Bad(field, absl::StrCat("(", LayerKindName(l.kind), ") needs an image input, ",
                                     k == 0 ? "and network.input is not given (channels, "
                                              "height, width)"
                                            : "but the layer before it is flat"));
    const auto in_str = absl::StrCat(cur.c, "x", cur.h, "x", cur.w);
    switch (l.kind) {
      case LayerKind::kDense:
        if (l.units < 1)
          return Bad(field, absl::StrCat("(dense) units must be >= 1, got ", l.units));
        cur = {l.units, 1, 1, false};
        break;
      case LayerKind::kConv: {
        const int64_t kh = l.kernel_h, kw = l.kernel_w == 0 ? l.kernel_h : l.kernel_w;
        const int64_t stride = l.stride == 0 ? 1 : l.stride, pad = l.padding;
        if (l.units < 1 || l.units > kMaxDim)
          return Bad(field,
                     absl::StrCat("(conv) channels must be in [1, ", kMaxDim, "], got ", l.units));
        if (kh < 1 || kw < 1 || kh > kMaxKernel || kw > kMaxKernel)
          return Bad(field, absl::StrCat("(conv) kernel must be in [1, ", kMaxKernel, "], got ", kh,
                                         "x", kw));
        if (stride < 1 || stride > kMaxKernel)
          return Bad(field,
                     absl::StrCat("(conv) stride must be in [1, ", kMaxKernel, "], got ", stride));
        if (cur.c * kh * kw > kMaxUnits)
          return Bad(field,
                     absl::StrCat("(conv): a ", cur.c, "x", kh, "x", kw, " kernel has more than ",
                                  kMaxUnits, " weights per filter"));
        if (pad < 0 || pad >= std::min(kh, kw))
          return Bad(field, absl::StrCat("(conv) padding must be in [0, kernel), got ", pad,
                                         " for a ", kh, "x", kw, " kernel"));
        if (kh > cur.h + 2 * pad || kw > cur.w + 2 * pad)
          return Bad(field, absl::StrCat("(conv): a ", kh, "x", kw, " kernel is larger than its ",
                                         in_str, " input", pad > 0 ? " with padding" : ""));
        cur = {l.units, (cur.h + 2 * pad - kh) / stride + 1, (cur.w + 2 * pad - kw) / stride + 1,
               true};
        break;
      }
      case LayerKind::kMaxPool:
      case LayerKind::kAvgPool: {
        const int64_t win = l.kernel_h, stride = l.stride == 0 ? win : l.stride;
        if (win < 1 || win > kMaxKernel)
          return Bad(field,
                     absl::StrCat("(pool) window must be in [1, ", kMaxKernel, "], got ", win));
        if (l.kernel_w != 0 && l.kernel_w != l.kernel_h)
          return Bad(field,
                     absl::StrCat("(pool) windows are square, got ", l.kernel_h, "x", l.kernel_w));
        if (stride < 1 || stride > kMaxKernel)
          return Bad(field,
                     absl::StrCat("(pool) stride must be in [1, ", kMaxKernel, "], got ", stride));
        if (l.padding != 0) return Bad(field, "(pool) takes no padding");
        if (win > cur.h || win > cur.w)
          return Bad(field, absl::StrCat("(pool): a ", win, "x", win, " window is larger than its ",
                                         in_str, " input"));
        cur = {cur.c, (cur.h - win) / stride + 1, (cur.w - win) / stride + 1, true};
        break;
      }
      case LayerKind::kFlatten:
        cur = {cur.c * cur.h * cur.w, 1, 1, false};
        break;
    }
    if (cur.c * cur.h * cur.w > kMaxUnits)
      return Bad(field, absl::StrCat("has more than ", kMaxUnits, " outputs"));
    sizes.push_back(static_cast<int>(cur.c * cur.h * cur.w));
  }
  if (!HasWeights(net->layers.back().kind))
    return Bad(absl::StrCat("network.layers[", net->layers.size() - 1, "]"),
               absl::StrCat("is ", LayerKindName(net->layers.back().kind),
                            ": the last layer must be dense or conv (it makes the outputs)"));
  if (net->sizes.size() > 1 && net->sizes != sizes)
    return Bad("network.sizes",
               absl::StrCat("is [", absl::StrJoin(net->sizes, ", "), "] but network.layers make [",
                            absl::StrJoin(sizes, ", "), "]: give one or the other"));
  net->sizes = std::move(sizes);
  return absl::OkStatus();
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
  if (!n.layers.empty()) {
    NetworkConfig complete = n;
    if (absl::Status s = CompleteNetwork(&complete); !s.ok()) return s;
    if (complete.sizes != n.sizes)
      return Bad("network.sizes", "does not follow from network.layers (CompleteNetwork)");
    if (!Traits(o.feedback.rule).conv)
      for (size_t k = 0; k < n.layers.size(); ++k)
        if (n.layers[k].kind == LayerKind::kConv)
          return Bad("feedback.rule",
                     absl::StrCat(RuleName(o.feedback.rule),
                                  " does not train convolution "
                                  "layers (network.layers[",
                                  k, "]): ",
                                  o.feedback.rule == Rule::kPseudoBackprop
                                      ? "the pseudo-inverse of a convolution is not a "
                                        "convolution; use it with dense layers"
                                      : "use it with dense layers"));
  } else if (!n.input.empty() && n.input.size() != n.sizes[0]) {
    return Bad("network.input",
               absl::StrCat("is ", n.input.channels, "x", n.input.height, "x", n.input.width,
                            " but network.sizes[0] is ", n.sizes[0]));
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
    if (static_cast<int>(opt.layer_learning_rates.size()) != NumWeightLayers(n))
      return Bad("optimizer.layer_learning_rates",
                 absl::StrCat("needs one entry per weight layer (", NumWeightLayers(n), "), got ",
                              opt.layer_learning_rates.size()));
    for (size_t i = 0; i < opt.layer_learning_rates.size(); ++i) {
      const float lr = opt.layer_learning_rates[i];
      if (!Finite(lr) || lr < 0.0f)
        return Bad(absl::StrCat("optimizer.layer_learning_rates[", i, "]"),
                   absl::StrCat("must be finite and >= 0, got ", lr));
    }
  }

  for (size_t i = 0; i < opt.decay_epochs.size(); ++i)
    if (opt.decay_epochs[i] < 1 || (i > 0 && opt.decay_epochs[i] <= opt.decay_epochs[i - 1]))
      return Bad(
          absl::StrCat("optimizer.decay_epochs[", i, "]"),
          absl::StrCat("must be >= 1 and larger than the one before, got ", opt.decay_epochs[i]));
  if (!(opt.decay_factor > 0.0f && opt.decay_factor <= 1.0f))
    return Bad("optimizer.decay_factor", absl::StrCat("must be in (0, 1], got ", opt.decay_factor));

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
