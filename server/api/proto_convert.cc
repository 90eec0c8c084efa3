// File: server/api/proto_convert.cc
#include "server/api/proto_convert.h"

#include <chrono>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "alignd/v1/rule_names.h"
#include "base/status_macros.h"

namespace alignd::server {
namespace {

using core::Activation;

absl::Status Unknown(const char* field, int value) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": unknown value ", value));
}

absl::StatusOr<Activation> ToActivation(v1::Activation a, Activation dflt, const char* field) {
  switch (a) {
    case v1::ACTIVATION_UNSPECIFIED:
      return dflt;
    case v1::ACTIVATION_LINEAR:
      return Activation::kLinear;
    case v1::ACTIVATION_TANH:
      return Activation::kTanh;
    case v1::ACTIVATION_LOGISTIC:
      return Activation::kLogistic;
    case v1::ACTIVATION_RELU:
      return Activation::kRelu;
    case v1::ACTIVATION_SOFTMAX:
      return Activation::kSoftmax;
    default:
      return Unknown(field, a);
  }
}

v1::Activation FromActivation(Activation a) {
  switch (a) {
    case Activation::kLinear:
      return v1::ACTIVATION_LINEAR;
    case Activation::kTanh:
      return v1::ACTIVATION_TANH;
    case Activation::kLogistic:
      return v1::ACTIVATION_LOGISTIC;
    case Activation::kRelu:
      return v1::ACTIVATION_RELU;
    case Activation::kSoftmax:
      return v1::ACTIVATION_SOFTMAX;
  }
  return v1::ACTIVATION_UNSPECIFIED;
}

// Matched by name: the engine's table (core/config.cc) and the enum's rule_name option.
absl::StatusOr<core::Rule> ToRule(v1::Rule r) {
  if (r == v1::RULE_UNSPECIFIED) return core::TrainerOptions().feedback.rule;
  const std::string name = v1::RuleShortName(r);
  auto rule = core::ParseRule(name);
  if (name.empty() || !rule.ok()) return Unknown("config.feedback.rule", r);
  return *rule;
}

}  // namespace

v1::Rule FromRule(core::Rule r) {
  return v1::RuleFromName(std::string(core::RuleName(r))).value_or(v1::RULE_UNSPECIFIED);
}

v1::LayerKind FromLayerKind(core::LayerKind k) {
  switch (k) {
    case core::LayerKind::kDense:
      return v1::LAYER_KIND_DENSE;
    case core::LayerKind::kConv:
      return v1::LAYER_KIND_CONV;
    case core::LayerKind::kMaxPool:
      return v1::LAYER_KIND_MAX_POOL;
    case core::LayerKind::kAvgPool:
      return v1::LAYER_KIND_AVG_POOL;
    case core::LayerKind::kFlatten:
      return v1::LAYER_KIND_FLATTEN;
  }
  return v1::LAYER_KIND_UNSPECIFIED;
}

namespace {

absl::StatusOr<core::LayerKind> ToLayerKind(v1::LayerKind k, const std::string& field) {
  switch (k) {
    case v1::LAYER_KIND_UNSPECIFIED:
    case v1::LAYER_KIND_DENSE:
      return core::LayerKind::kDense;
    case v1::LAYER_KIND_CONV:
      return core::LayerKind::kConv;
    case v1::LAYER_KIND_MAX_POOL:
      return core::LayerKind::kMaxPool;
    case v1::LAYER_KIND_AVG_POOL:
      return core::LayerKind::kAvgPool;
    case v1::LAYER_KIND_FLATTEN:
      return core::LayerKind::kFlatten;
    default:
      return Unknown(field.c_str(), k);
  }
}

// The engine says "network.input"; the wire's field is network.input_shape.
absl::Status WireFieldNames(const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(s.code(),
                      absl::StrReplaceAll(s.message(), {{"network.input", "network.input_shape"}}));
}

}  // namespace

absl::StatusOr<core::TrainerOptions> ToTrainerOptions(const v1::TrainingConfig& c,
                                                      const std::vector<int64_t>* feature_shape) {
  core::TrainerOptions o;
  const core::TrainerOptions d;
  const auto& n = c.network();
  o.network.sizes.assign(n.sizes().begin(), n.sizes().end());
  for (int k = 0; k < n.layers_size(); ++k) {
    const v1::LayerSpec& l = n.layers(k);
    core::LayerSpec spec;
    ASSIGN_OR_RETURN(spec.kind,
                     ToLayerKind(l.kind(), absl::StrCat("config.network.layers[", k, "].kind")));
    spec.units = l.units();
    spec.kernel_h = l.kernel_h();
    spec.kernel_w = l.kernel_w();
    spec.stride = l.stride();
    spec.padding = l.padding();
    o.network.layers.push_back(spec);
  }
  // The input's image shape: as given, else (with layers) the training set's feature shape.
  // A flat data set (one dimension) or one of rank > 3 leaves it unset: dense layers take it,
  // a conv or pooling layer is refused below, with a word on what to do.
  std::string flat_data;
  if (n.has_input_shape()) {
    o.network.input = {n.input_shape().channels(), n.input_shape().height(),
                       n.input_shape().width()};
    if (o.network.input.empty())
      return absl::InvalidArgumentError(
          "config.network.input_shape must be >= 1 in every dimension, got 0x0x0 (leave it "
          "unset to take the training set's feature_shape)");
  } else if (!o.network.layers.empty() && feature_shape != nullptr && !feature_shape->empty()) {
    const std::vector<int64_t>& f = *feature_shape;
    auto fits = [](int64_t v) { return v >= 1 && v <= (int64_t{1} << 30); };
    if (f.size() == 2 && fits(f[0]) && fits(f[1])) {
      o.network.input = {1, static_cast<int>(f[0]), static_cast<int>(f[1])};
    } else if (f.size() == 3 && fits(f[0]) && fits(f[1]) && fits(f[2])) {
      o.network.input = {static_cast<int>(f[0]), static_cast<int>(f[1]), static_cast<int>(f[2])};
    } else {
      int64_t features = 1;
      for (int64_t v : f) features *= v;
      if (o.network.sizes.empty() && fits(features))
        o.network.sizes.push_back(static_cast<int>(features));
      flat_data =
          absl::StrCat("the training set's examples have feature_shape [", absl::StrJoin(f, ", "),
                       "], not an image's [H, W] or [C, H, W]: set "
                       "config.network.input_shape, or upload images");
    }
  }
  if (!o.network.layers.empty()) {
    if (absl::Status st = core::CompleteNetwork(&o.network); !st.ok()) {
      absl::Status wire = WireFieldNames(st);
      if (!flat_data.empty() && o.network.input.empty())
        return absl::InvalidArgumentError(
            absl::StrCat("config.", wire.message(), " (", flat_data, ")"));
      return absl::InvalidArgumentError(absl::StrCat("config.", wire.message()));
    }
  }
  ASSIGN_OR_RETURN(o.network.hidden, ToActivation(n.hidden_activation(), d.network.hidden,
                                                  "config.network.hidden_activation"));
  ASSIGN_OR_RETURN(o.network.output, ToActivation(n.output_activation(), d.network.output,
                                                  "config.network.output_activation"));
  switch (n.loss()) {
    case v1::LOSS_UNSPECIFIED:
    case v1::LOSS_SQUARED_ERROR:
      o.network.loss = core::Loss::kSquaredError;
      break;
    case v1::LOSS_CROSS_ENTROPY:
      o.network.loss = core::Loss::kCrossEntropy;
      break;
    default:
      return Unknown("config.network.loss", n.loss());
  }
  o.network.bias = n.has_bias() ? n.bias() : d.network.bias;
  o.network.connection_sparsity = n.connection_sparsity();

  switch (c.init().kind()) {
    case v1::WEIGHT_INIT_UNSPECIFIED:
      o.init.kind = d.init.kind;
      break;
    case v1::WEIGHT_INIT_UNIFORM:
      o.init.kind = core::WeightInit::kUniform;
      break;
    case v1::WEIGHT_INIT_XAVIER:
      o.init.kind = core::WeightInit::kXavier;
      break;
    case v1::WEIGHT_INIT_HE:
      o.init.kind = core::WeightInit::kHe;
      break;
    default:
      return Unknown("config.init.kind", c.init().kind());
  }
  o.init.scale = c.init().has_scale() ? c.init().scale() : d.init.scale;

  const auto& f = c.feedback();
  ASSIGN_OR_RETURN(o.feedback.rule, ToRule(f.rule()));
  switch (f.distribution()) {
    case v1::DISTRIBUTION_UNSPECIFIED:
    case v1::DISTRIBUTION_UNIFORM:
      o.feedback.distribution = core::Distribution::kUniform;
      break;
    case v1::DISTRIBUTION_GAUSSIAN:
      o.feedback.distribution = core::Distribution::kGaussian;
      break;
    default:
      return Unknown("config.feedback.distribution", f.distribution());
  }
  if (f.has_scale() && !(f.scale() > 0))
    return absl::InvalidArgumentError(absl::StrCat(
        "config.feedback.scale must be > 0 (leave it unset for the automatic scale), got ",
        f.scale()));
  o.feedback.scale = f.has_scale() ? f.scale() : 0.0f;  // core: 0 = automatic
  o.feedback.sparsity = f.sparsity();
  o.feedback.seed = f.seed();  // core: 0 = derived from the session's seed
  switch (f.sign_mode()) {
    case v1::SIGN_SYMMETRY_MODE_UNSPECIFIED:
      o.feedback.sign_mode = d.feedback.sign_mode;
      break;
    case v1::SIGN_SYMMETRY_MODE_SCALED:
      o.feedback.sign_mode = core::SignSymmetryMode::kScaled;
      break;
    case v1::SIGN_SYMMETRY_MODE_UNIFORM:
      o.feedback.sign_mode = core::SignSymmetryMode::kUniform;
      break;
    case v1::SIGN_SYMMETRY_MODE_FIXED_RANDOM:
      o.feedback.sign_mode = core::SignSymmetryMode::kFixedRandom;
      break;
    case v1::SIGN_SYMMETRY_MODE_BATCH_RANDOM:
      o.feedback.sign_mode = core::SignSymmetryMode::kBatchRandom;
      break;
    default:
      return Unknown("config.feedback.sign_mode", f.sign_mode());
  }
  o.feedback.pinv_every = f.has_pinv_every() ? f.pinv_every() : d.feedback.pinv_every;
  o.feedback.pinv_damping = f.pinv_damping();

  const auto& opt = c.optimizer();
  switch (opt.kind()) {
    case v1::OPTIMIZER_UNSPECIFIED:
    case v1::OPTIMIZER_SGD:
      o.optimizer.kind = core::OptimizerKind::kSgd;
      break;
    case v1::OPTIMIZER_ADAM:
      o.optimizer.kind = core::OptimizerKind::kAdam;
      break;
    default:
      return Unknown("config.optimizer.kind", opt.kind());
  }
  o.optimizer.learning_rate =
      opt.has_learning_rate() ? opt.learning_rate() : d.optimizer.learning_rate;
  o.optimizer.momentum = opt.momentum();
  o.optimizer.weight_decay = opt.weight_decay();
  o.optimizer.beta1 = opt.has_beta1() ? opt.beta1() : d.optimizer.beta1;
  o.optimizer.beta2 = opt.has_beta2() ? opt.beta2() : d.optimizer.beta2;
  o.optimizer.epsilon = opt.has_epsilon() ? opt.epsilon() : d.optimizer.epsilon;
  o.optimizer.layer_learning_rates.assign(opt.layer_learning_rates().begin(),
                                          opt.layer_learning_rates().end());
  o.optimizer.decay_epochs.assign(opt.decay_epochs().begin(), opt.decay_epochs().end());
  o.optimizer.decay_factor = opt.has_decay_factor() ? opt.decay_factor() : d.optimizer.decay_factor;

  o.batch_size = c.has_batch_size() ? c.batch_size() : d.batch_size;
  o.epochs = c.has_epochs() ? c.epochs() : d.epochs;
  o.max_steps = c.max_steps();
  o.seed = c.has_seed() ? c.seed() : d.seed;
  o.shuffle = c.has_shuffle() ? c.shuffle() : d.shuffle;
  o.metrics_every = c.has_metrics_every() ? c.metrics_every() : d.metrics_every;
  o.pbp_angle = c.pbp_angle();
  o.eval_every = c.eval_every();
  o.threads = c.has_threads() ? c.threads() : d.threads;
  o.validation_fraction = c.validation_fraction();

  const absl::Status s = WireFieldNames(core::ValidateOptions(o));
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("config.", s.message()));
  return o;
}

v1::TrainingConfig ToProto(const core::TrainerOptions& o) {
  v1::TrainingConfig c;
  auto* n = c.mutable_network();
  for (int s : o.network.sizes) n->add_sizes(s);
  for (const core::LayerSpec& l : o.network.layers) {
    v1::LayerSpec* p = n->add_layers();
    p->set_kind(FromLayerKind(l.kind));
    p->set_units(l.units);
    p->set_kernel_h(l.kernel_h);
    p->set_kernel_w(l.kernel_w);
    p->set_stride(l.stride);
    p->set_padding(l.padding);
  }
  if (!o.network.input.empty()) {
    n->mutable_input_shape()->set_channels(o.network.input.channels);
    n->mutable_input_shape()->set_height(o.network.input.height);
    n->mutable_input_shape()->set_width(o.network.input.width);
  }
  n->set_hidden_activation(FromActivation(o.network.hidden));
  n->set_output_activation(FromActivation(o.network.output));
  n->set_loss(o.network.loss == core::Loss::kCrossEntropy ? v1::LOSS_CROSS_ENTROPY
                                                          : v1::LOSS_SQUARED_ERROR);
  n->set_bias(o.network.bias);
  n->set_connection_sparsity(o.network.connection_sparsity);
  auto* init = c.mutable_init();
  init->set_kind(o.init.kind == core::WeightInit::kUniform ? v1::WEIGHT_INIT_UNIFORM
                 : o.init.kind == core::WeightInit::kHe    ? v1::WEIGHT_INIT_HE
                                                           : v1::WEIGHT_INIT_XAVIER);
  init->set_scale(o.init.scale);
  auto* f = c.mutable_feedback();
  f->set_rule(FromRule(o.feedback.rule));
  f->set_distribution(o.feedback.distribution == core::Distribution::kGaussian
                          ? v1::DISTRIBUTION_GAUSSIAN
                          : v1::DISTRIBUTION_UNIFORM);
  if (o.feedback.scale > 0) f->set_scale(o.feedback.scale);  // unset: automatic
  f->set_sparsity(o.feedback.sparsity);
  if (o.feedback.seed != 0) f->set_seed(o.feedback.seed);  // unset: derived
  switch (o.feedback.sign_mode) {
    case core::SignSymmetryMode::kScaled:
      f->set_sign_mode(v1::SIGN_SYMMETRY_MODE_SCALED);
      break;
    case core::SignSymmetryMode::kUniform:
      f->set_sign_mode(v1::SIGN_SYMMETRY_MODE_UNIFORM);
      break;
    case core::SignSymmetryMode::kFixedRandom:
      f->set_sign_mode(v1::SIGN_SYMMETRY_MODE_FIXED_RANDOM);
      break;
    case core::SignSymmetryMode::kBatchRandom:
      f->set_sign_mode(v1::SIGN_SYMMETRY_MODE_BATCH_RANDOM);
      break;
  }
  f->set_pinv_every(o.feedback.pinv_every);
  f->set_pinv_damping(o.feedback.pinv_damping);
  auto* opt = c.mutable_optimizer();
  opt->set_kind(o.optimizer.kind == core::OptimizerKind::kAdam ? v1::OPTIMIZER_ADAM
                                                               : v1::OPTIMIZER_SGD);
  opt->set_learning_rate(o.optimizer.learning_rate);
  opt->set_momentum(o.optimizer.momentum);
  opt->set_weight_decay(o.optimizer.weight_decay);
  opt->set_beta1(o.optimizer.beta1);
  opt->set_beta2(o.optimizer.beta2);
  opt->set_epsilon(o.optimizer.epsilon);
  for (float lr : o.optimizer.layer_learning_rates) opt->add_layer_learning_rates(lr);
  for (int e : o.optimizer.decay_epochs) opt->add_decay_epochs(e);
  opt->set_decay_factor(o.optimizer.decay_factor);
  c.set_batch_size(o.batch_size);
  c.set_epochs(o.epochs);
  c.set_max_steps(o.max_steps);
  c.set_seed(o.seed);
  c.set_shuffle(o.shuffle);
  c.set_metrics_every(o.metrics_every);
  c.set_pbp_angle(o.pbp_angle);
  c.set_eval_every(o.eval_every);
  c.set_threads(o.threads);
  c.set_validation_fraction(o.validation_fraction);
  return c;
}

void ToProto(const core::StepMetrics& m, v1::StepMetrics* out) {
  out->set_step(m.step);
  out->set_epoch(m.epoch);
  out->set_loss(m.loss);
  out->set_accuracy(m.accuracy);
  out->set_nse(m.nse);
  for (const core::LayerAlignment& a : m.alignment) {
    auto* p = out->add_alignment();
    p->set_layer(a.layer);
    p->set_update_angle_mean(a.update_angle_mean);
    p->set_update_angle_sd(a.update_angle_sd);
    p->set_positive_fraction(a.positive_fraction);
    p->set_weight_angle(a.weight_angle);
    p->set_norm_ratio(a.norm_ratio);
    p->set_pbp_angle_mean(a.pbp_angle_mean);
    p->set_pbp_angle_sd(a.pbp_angle_sd);
  }
}

void ToProto(const core::EvalMetrics& m, v1::EvalMetrics* out) {
  out->set_step(m.step);
  out->set_epoch(m.epoch);
  out->set_examples(m.examples);
  out->set_loss(m.loss);
  out->set_accuracy(m.accuracy);
  out->set_error_rate(m.error_rate);
  out->set_nse(m.nse);
  out->set_validation(m.validation);
}

std::string StateName(v1::SessionState state) {
  std::string name = v1::SessionState_Name(state);
  constexpr absl::string_view kPrefix = "SESSION_STATE_";
  if (absl::StartsWith(name, kPrefix)) name.erase(0, kPrefix.size());
  return name.empty() ? absl::StrCat(static_cast<int>(state)) : name;
}

google::protobuf::Timestamp Now() {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  google::protobuf::Timestamp t;
  t.set_seconds(ns / 1'000'000'000);
  t.set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
  return t;
}

absl::StatusOr<core::ConstMatrixMap> MapProto(const v1::Tensor& t, const char* field) {
  // rows and cols are client-declared int64s: their product may overflow; values_size()
  // bounds any honest one.
  int64_t count = 0;
  if (t.rows() < 0 || t.cols() < 0 || __builtin_mul_overflow(t.rows(), t.cols(), &count) ||
      count != t.values_size())
    return absl::InvalidArgumentError(absl::StrCat(
        field, " has ", t.values_size(), " values for a ", t.rows(), " x ", t.cols(), " matrix"));
  core::ConstMatrixMap m(t.values().data(), t.rows(), t.cols());
  if (!core::AllFinite(m))
    return absl::InvalidArgumentError(absl::StrCat(field, " contains NaN or Inf"));
  return m;
}

absl::StatusOr<core::Matrix> FromProto(const v1::Tensor& t, const char* field) {
  ASSIGN_OR_RETURN(core::ConstMatrixMap m, MapProto(t, field));
  return core::Matrix(m);
}

void ToProto(const core::Matrix& m, v1::Tensor* out) {
  out->set_rows(m.rows());
  out->set_cols(m.cols());
  out->mutable_values()->Resize(static_cast<int>(m.size()), 0.0f);
  core::MatrixMap(out->mutable_values()->mutable_data(), m.rows(), m.cols()) = m;
}

}  // namespace alignd::server
