// File: core/trainer.cc
#include "core/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "core/alignment.h"
#include "core/cpu.h"
#include "core/feedback.h"
#include "core/gemm.h"
#include "core/layers.h"
#include "core/learning_rule.h"
#include "core/network.h"
#include "core/optimizer.h"
#include "core/parallel.h"
#include "core/per_example.h"

namespace alignd::core {
namespace {

// m *= c and m = m o mask (weight decay and sparse connectivity), elements split over the
// session's threads in 64-byte-aligned ranges (core/parallel.h): the same bits on any number.
void Scale(float c, Matrix& m) {
  ParallelForFloats(m.size(), [&](int64_t begin, int64_t end) {
    Eigen::Map<Eigen::ArrayXf>(m.data() + begin, end - begin) *= c;
  });
}
void MultiplyBy(const Matrix& mask, Matrix& m) {
  ParallelForFloats(m.size(), [&](int64_t begin, int64_t end) {
    Eigen::Map<Eigen::ArrayXf>(m.data() + begin, end - begin) *=
        Eigen::Map<const Eigen::ArrayXf>(mask.data() + begin, end - begin);
  });
}

absl::Status ShapeError(absl::string_view what, Eigen::Index rows, Eigen::Index cols,
                        Eigen::Index want_rows, Eigen::Index want_cols) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " is ", rows, "x", cols, ", expected ", want_rows, "x", want_cols));
}

}  // namespace

// ---- Construction ------------------------------------------------------------------

int64_t EstimateTrainingBytes(const TrainerOptions& o, int64_t train_examples) {
  // In doubles: the sizes are client-declared, and a product of them may not fit 64 bits.
  const auto& s = o.network.sizes;
  const int L = static_cast<int>(s.size()) - 1;
  const double batch = std::max(1, o.batch_size);
  double params = 0, units = 0, conv_workspace = 0;
  if (o.network.layers.empty()) {
    for (int i = 0; i < L; ++i) params += double(s[i]) * s[i + 1] + s[i + 1];
  } else {
    // Shapes as CompleteNetwork makes them (the sizes follow from the layers); a
    // convolution's workspace is counted as its im2col matrix, kernel x positions x batch
    // (oneDNN's scratchpads and reorders stay below it).
    auto layers = BuildLayers(o.network);
    if (!layers.ok()) return std::numeric_limits<int64_t>::max();
    // oneDNN keeps, per conv layer and kind (forward, backward-data, backward-weights), its
    // input and output in its blocked layout (channels padded to 16), sized for the batch;
    // Predict and Evaluate add a forward at their chunk width (256 with convolutions).
    auto padded = [](const ImageShape& s) {
      return double((s.channels + 15) / 16 * 16) * s.height * s.width;
    };
    for (const auto& l : *layers) {
      params += double(l->weight_rows()) * l->weight_cols() + l->weight_rows();
      if (l->kind() != LayerKind::kConv) continue;
      conv_workspace = std::max(conv_workspace, double(l->weight_cols()) * l->out_shape().height *
                                                    l->out_shape().width * batch);
      conv_workspace += (padded(l->in_shape()) + padded(l->out_shape())) * (3 * batch + 256);
    }
  }
  for (int v : s) units += v;
  double floats = 0;
  floats += params;              // W, b
  floats += 2 * params;          // feedback (incl. sign-symmetry magnitudes) and masks
  floats += 3 * params;          // optimiser moments, and KP's
  floats += params;              // gradient buffers
  floats += 10 * units * batch;  // a, z, delta, dh, bp_delta, bp_dh, pbp_dh, targets, ...
  floats += 2 * units * 1024;    // Evaluate's chunk of 1024 examples
  floats += conv_workspace;
  double pinv = 0;
  if (o.feedback.rule == Rule::kPseudoBackprop || o.pbp_angle)
    for (int i = 1; i < L; ++i) pinv = std::max(pinv, 6.0 * s[i] * s[i + 1] + 2.0 * s[i] * s[i]);
  floats += pinv;
  const double bytes = 4 * floats + 4.0 * std::max<int64_t>(train_examples, 0);  // + permutation
  return bytes >= 9.0e18 ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(bytes);
}

absl::Status ValidateTraining(const TrainerOptions& options, const Dataset& train,
                              const Dataset* eval) {
  RETURN_IF_ERROR(ValidateOptions(options));
  const auto& sizes = options.network.sizes;
  for (const auto& [d, what] : {std::pair<const Dataset*, const char*>{&train, "training"},
                                std::pair<const Dataset*, const char*>{eval, "evaluation"}}) {
    if (d == nullptr) continue;
    if (d->input_dim() != sizes.front())
      return absl::InvalidArgumentError(absl::StrCat("network.sizes[0] is ", sizes.front(),
                                                     " but the ", what, " set has ", d->input_dim(),
                                                     " features"));
    if (d->output_dim() != sizes.back())
      return absl::InvalidArgumentError(absl::StrCat(
          "network.sizes[", sizes.size() - 1, "] is ", sizes.back(), " but the ", what, " set has ",
          d->output_dim(), d->is_classification() ? " classes" : " targets per example"));
  }
  const int64_t held_out = ValidationExamples(options, train.size());
  if (options.batch_size > train.size() - held_out)
    return absl::InvalidArgumentError(
        held_out > 0
            ? absl::StrCat("batch_size is ", options.batch_size, " but only ",
                           train.size() - held_out, " of the training set's ", train.size(),
                           " examples are left for training after validation_fraction ",
                           options.validation_fraction, " holds out ", held_out)
            : absl::StrCat("batch_size is ", options.batch_size, " but the training set has only ",
                           train.size(), " examples"));
  if (options.network.loss == Loss::kCrossEntropy &&
      options.network.output == Activation::kSoftmax && !train.is_classification())
    return absl::InvalidArgumentError(
        "network.loss: softmax cross_entropy needs class labels, the training set has float "
        "targets");
  return absl::OkStatus();
}

int64_t TotalSteps(const TrainerOptions& options, int64_t train_examples) {
  if (options.max_steps > 0) return options.max_steps;
  return TrainingExamples(options, train_examples) / std::max(1, options.batch_size) *
         options.epochs;
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainerOptions& options,
                                                         std::shared_ptr<const Dataset> train,
                                                         std::shared_ptr<const Dataset> eval) {
  RETURN_IF_ERROR(ValidateOptions(options));
  if (train == nullptr) return absl::InvalidArgumentError("train: no training set given");
  RETURN_IF_ERROR(ValidateDataset(*train));
  if (eval != nullptr && eval->size() > 0) RETURN_IF_ERROR(ValidateDataset(*eval));
  RETURN_IF_ERROR(ValidateTraining(options, *train, eval.get()));
  std::unique_ptr<Trainer> t(new Trainer(options, std::move(train), std::move(eval)));
  ASSIGN_OR_RETURN(t->layers_, BuildLayers(options.network));
  t->Initialize();
  return t;
}

Trainer::Trainer(const TrainerOptions& options, std::shared_ptr<const Dataset> train,
                 std::shared_ptr<const Dataset> eval)
    : options_(options),
      train_(std::move(train)),
      eval_(std::move(eval)),
      rng_(options.seed, /*stream=*/3) {}

Trainer::~Trainer() = default;

void Trainer::Initialize() {
  const NetworkConfig& net = options_.network;
  const int L = NumLayers(net);
  Rng init_rng(options_.seed, /*stream=*/1);
  const bool own_fb_seed = options_.feedback.seed != 0;
  Rng fb_rng(own_fb_seed ? options_.feedback.seed : options_.seed, own_fb_seed ? 0 : 2);
  Rng mask_rng(options_.seed, /*stream=*/4);

  w_.resize(L);
  b_.resize(L);
  weight_index_.assign(L, -1);
  signal_below_.assign(L, 0);
  for (int i = 0, k = 0; i < L; ++i) {
    if (layers_[i]->has_weights()) weight_index_[i] = k++;
    signal_below_[i] = k > (weight_index_[i] >= 0 ? 1 : 0);  // a weight layer below i
  }
  for (int i = 0; i < L; ++i) {
    const Layer& layer = *layers_[i];
    w_[i].resize(layer.weight_rows(), layer.weight_cols());
    const float fan_in = static_cast<float>(layer.fan_in());
    const float fan_out = static_cast<float>(layer.fan_out());
    switch (options_.init.kind) {
      case WeightInit::kUniform:
        init_rng.FillUniform(w_[i], -options_.init.scale, options_.init.scale);
        break;
      case WeightInit::kXavier: {
        const float r = std::sqrt(6.0f / (fan_in + fan_out));
        init_rng.FillUniform(w_[i], -r, r);
        break;
      }
      case WeightInit::kHe:
        init_rng.FillNormal(w_[i], std::sqrt(2.0f / fan_in));
        break;
    }
    b_[i] = Vector::Zero(layer.weight_rows());
  }

  const float sparse = net.connection_sparsity;
  auto draw_mask = [&](Eigen::Index rows, Eigen::Index cols) {
    Matrix m(rows, cols);
    for (Eigen::Index j = 0; j < cols; ++j)
      for (Eigen::Index i = 0; i < rows; ++i) m(i, j) = mask_rng.Uniform01() < sparse ? 0.0f : 1.0f;
    return m;
  };
  if (sparse > 0) {
    w_mask_.resize(L);
    for (int i = 0; i < L; ++i) {
      w_mask_[i] = draw_mask(w_[i].rows(), w_[i].cols());
      w_[i].array() *= w_mask_[i].array();
    }
  }

  // Feedback matrices, one per hidden layer i in [1, L-1] (core/feedback.h).
  feedback_.Initialize(options_, layers_, w_, w_mask_, fb_rng, draw_mask);
  learns_hidden_ = RuleLearnsHidden(feedback_.rule());
  signal_at_.assign(L, 0);
  for (int i = 0; i < L; ++i) signal_at_[i] = ComputeSignalAt(i);

  // Optimiser slots.
  const OptimizerConfig& opt = options_.optimizer;
  const bool first = opt.kind == OptimizerKind::kAdam || opt.momentum > 0;
  const bool second = opt.kind == OptimizerKind::kAdam;
  slot_w_.assign(L, OptimizerSlot());
  slot_b_.assign(L, OptimizerSlot());
  slot_f_.assign(L, OptimizerSlot());
  for (int i = 0; i < L; ++i) {
    auto init = [&](OptimizerSlot& slot, Eigen::Index r, Eigen::Index c) {
      if (first) slot.m1 = Matrix::Zero(r, c);
      if (second) slot.m2 = Matrix::Zero(r, c);
    };
    init(slot_w_[i], w_[i].rows(), w_[i].cols());
    if (net.bias) init(slot_b_[i], b_[i].rows(), 1);
    if (feedback_.LearnsLikeW() && i >= 1)
      init(slot_f_[i], feedback_.matrix(i).rows(), feedback_.matrix(i).cols());
  }

  // The per-example path: batch 1 through dense layers only, with plain SGD (momentum and
  // Adam keep slots the kernels do not; weight decay, masks and Kolen-Pollack's B they do).
  per_example_ = options_.batch_size == 1 && opt.kind == OptimizerKind::kSgd && opt.momentum == 0 &&
                 std::all_of(layers_.begin(), layers_.end(),
                             [](const auto& l) { return l->kind() == LayerKind::kDense; });

  // Schedule.
  const int64_t n = TrainingExamples(options_, train_->size());
  num_train_ = n;
  steps_per_epoch_ = n / options_.batch_size;
  total_steps_ = TotalSteps(options_, train_->size());
  perm_.resize(n);
  ShuffleForEpoch();
}

void Trainer::ShuffleForEpoch() {
  std::iota(perm_.begin(), perm_.end(), 0);
  if (options_.shuffle) rng_.Shuffle(perm_);
}

void Trainer::AllocateWorkspace(int n) {
  if (ws_n_ == n) return;
  ws_n_ = n;
  next_ready_ = false;
  const auto& s = options_.network.sizes;
  const int L = num_layers();
  a_.resize(L + 1);
  z_.resize(L + 1);
  delta_.resize(L + 1);
  dh_.resize(L + 1);
  bp_delta_.resize(L + 1);
  bp_dh_.resize(L + 1);
  pbp_dh_.resize(L + 1);
  for (int i = 0; i <= L; ++i) {
    a_[i].resize(s[i], n);
    z_[i].resize(s[i], n);
    delta_[i].resize(s[i], n);
    dh_[i].resize(s[i], n);
    bp_delta_[i].resize(s[i], n);
    bp_dh_[i].resize(s[i], n);
  }
  if (per_example_ && n == 1) {
    an_.resize(L + 1);
    zn_.resize(L + 1);
    for (int i = 0; i <= L; ++i) an_[i].resize(s[i], 1), zn_[i].resize(s[i], 1);
    columns_.resize(*std::max_element(s.begin(), s.end()));
  }
  targets_.resize(s[L], n);
  grad_w_.resize(L);
  grad_b_.resize(L);
  for (int i = 0; i < L; ++i) {
    grad_w_[i].resize(w_[i].rows(), w_[i].cols());
    grad_b_[i].resize(b_[i].rows());
  }
  scratch_metrics_.alignment.reserve(L);
}

// ---- The step ----------------------------------------------------------------------

void Trainer::GatherBatch() {
  const Dataset& d = *train_;
  const int n = options_.batch_size;
  Matrix& x = a_[0];
  const bool classes = d.is_classification();
  // Columns split over the session's threads: each column is a copy from wherever the
  // shuffled example lies (memory latency more than bandwidth), so two threads gather faster.
  ParallelFor(n, MinColumnsPerRange(x.rows(), kMinCopyFloatsPerRange), 1,
              [&](int64_t begin, int64_t end) {
                for (int64_t j = begin; j < end; ++j) {
                  const int32_t k = perm_[position_ + j];
                  x.col(j) = d.features.col(k);
                  if (classes) {
                    targets_.col(j).setZero();
                    targets_(d.labels[k], j) = 1.0f;
                  } else {
                    targets_.col(j) = d.targets.col(k);
                  }
                }
              });
}

void Trainer::ForwardInto(ConstMatrixRef x, std::vector<Matrix>& a, std::vector<Matrix>& z) const {
  Forward(layers_, options_.network, w_, b_, x, a, z);
}

void Trainer::ForwardPerExample() {
  const NetworkConfig& net = options_.network;
  const int L = num_layers();
  for (int i = 0; i < L; ++i) {
    PerExampleForward(w_[i], a_[i].data(), z_[i + 1].data(), columns_);
    Activate(i + 1 == L ? net.output : net.hidden, net.bias ? &b_[i] : nullptr, z_[i + 1],
             a_[i + 1]);
  }
}

void Trainer::UpdatePerExample() {
  const NetworkConfig& net = options_.network;
  const int L = num_layers();
  // The next example, if this epoch has one (position_ is this step's).
  const float* next =
      position_ + 2 <= num_train_ ? train_->features.col(perm_[position_ + 1]).data() : nullptr;
  const bool kp = feedback_.LearnsLikeW();
  for (int i = 0; i < L; ++i) {
    if (i < L - 1 && !learns_hidden_) {
      // A rule that trains the output layer only (shallow): the next forward alone.
      if (next == nullptr) continue;
      PerExampleForward(w_[i], i == 0 ? next : an_[i].data(), zn_[i + 1].data(), columns_);
      Activate(net.hidden, net.bias ? &b_[i] : nullptr, zn_[i + 1], an_[i + 1]);
      continue;
    }
    const float lr = LearningRate(i);
    ColumnUpdate u;
    u.alpha = -lr;
    u.keep =
        options_.optimizer.weight_decay > 0 ? 1.0f - lr * options_.optimizer.weight_decay : 1.0f;
    u.d = delta_[i + 1].data();
    u.x = a_[i].data();
    u.next = next == nullptr ? nullptr : (i == 0 ? next : an_[i].data());
    u.mask = w_mask_.empty() ? nullptr : w_mask_[i].data();
    PerExampleUpdate(w_[i], u, next == nullptr ? nullptr : zn_[i + 1].data(), columns_);
    if (net.bias) layers_[i]->BiasGradient(delta_[i + 1], -lr, /*accumulate=*/true, b_[i]);
    // Kolen-Pollack: B^T receives W's update by the very same arithmetic and columns.
    if (kp && i >= 1 && feedback_.matrix(i).size() != 0) {
      const Matrix* fm = feedback_.mask(i);
      u.mask = fm == nullptr ? nullptr : fm->data();
      PerExampleUpdate(feedback_.matrix(i), u, nullptr, columns_);
    }
    if (next == nullptr) continue;
    Activate(i + 1 == L ? net.output : net.hidden, net.bias ? &b_[i] : nullptr, zn_[i + 1],
             an_[i + 1]);
  }
  next_ready_ = next != nullptr;
}

float Trainer::LearningRate(int i) const {
  const OptimizerConfig& opt = options_.optimizer;
  const auto& per_layer = opt.layer_learning_rates;
  float lr = per_layer.empty() ? opt.learning_rate : per_layer[weight_index_[i]];
  // Step decay: a function of the epoch alone, so a run continued from a state decays alike.
  for (int e : opt.decay_epochs)
    if (epoch_ >= e) lr *= opt.decay_factor;
  return lr;
}

// The feedback the next update uses (Feedback::Refresh): Gradients() and the Step() after
// it share one refresh per step.
void Trainer::RefreshFeedback() { feedback_.Refresh(w_, step_); }

// BP's hidden signals on the same batch, for the update angles: dh[i] = W[i]^T delta[i+1]
// through each layer (pooling's exact routing included), down to the lowest layer whose
// signal a weight layer uses.
void Trainer::ComputeBpSignals() {
  const int L = num_layers();
  bp_delta_[L] = delta_[L];
  for (int i = L - 1; i >= 1 && signal_below_[i]; --i) {
    layers_[i]->BackwardData(w_[i], a_[i], bp_delta_[i + 1], bp_dh_[i]);
    bp_delta_[i] = bp_dh_[i];
    if (layers_[i - 1]->activated())
      MultiplyByDerivative(options_.network.hidden, a_[i], bp_delta_[i]);
  }
}

// Whether the rule sends hidden layer i (the units a[i]) a signal: fixed by the rule and the
// layers, so computed once (Initialize) rather than on every step.
bool Trainer::ComputeSignalAt(int i) const {
  const Rule rule = feedback_.rule();
  if (i < 1 || !RuleLearnsHidden(rule)) return false;
  if (rule == Rule::kDirectFeedbackAlignment) return Feedback::At(rule, layers_, i);
  return signal_below_[i] != 0;
}

void Trainer::Backward(int n, BackwardMode mode, bool metrics) {
  const int L = num_layers();
  const bool learns_hidden = learns_hidden_;
  const bool direct = feedback_.rule() == Rule::kDirectFeedbackAlignment;
  for (int i = L - 1; i >= 0; --i) {
    const Layer& layer = *layers_[i];
    if (i < L - 1 && !learns_hidden) break;
    // The signal at a[i] (the input of layer i): through layer i with the rule's matrix in
    // W's place; exact through a layer without weights; DFA's from the output's delta
    // straight to each weight layer's output.
    if (signal_at_[i]) {
      // The signal itself (dh, before the derivative) is kept only for the metrics' angles;
      // otherwise it goes straight into delta (a copy less: a conv layer's is ~1 MB at batch 64).
      Matrix& signal = metrics ? dh_[i] : delta_[i];
      if (direct || layer.has_weights())
        feedback_.HiddenSignal(i, layers_, w_, a_[i], delta_[i + 1], delta_[L], signal);
      else
        layer.BackwardData(w_[i], a_[i], delta_[i + 1], signal);
      if (metrics && options_.pbp_angle && layer.kind() == LayerKind::kDense)
        pbp_dh_[i] = PseudoInverseTransposed(w_[i]).transpose() * delta_[i + 1];
      if (metrics) delta_[i] = dh_[i];
      if (layers_[i - 1]->activated())
        MultiplyByDerivative(options_.network.hidden, a_[i], delta_[i]);
    }
    if (!layer.has_weights() || mode == BackwardMode::kSignals) continue;
    if (mode == BackwardMode::kUpdate) {
      UpdateLayer(i, n);
    } else {
      layer.WeightGradient(a_[i], delta_[i + 1], 1.0f / n, 0.0f, grad_w_[i]);
      layer.BiasGradient(delta_[i + 1], 1.0f / n, false, grad_b_[i]);
    }
  }
}

void Trainer::UpdateLayer(int i, int n) {
  const OptimizerConfig& opt = options_.optimizer;
  const Layer& layer = *layers_[i];
  const float lr = LearningRate(i);
  const float decay = opt.weight_decay;
  const Matrix& x = a_[i];
  const Matrix& d = delta_[i + 1];
  const bool kp = feedback_.LearnsLikeW() && feedback_.matrix(i).size() != 0;
  if (opt.kind == OptimizerKind::kSgd && opt.momentum == 0) {
    // Plain SGD: fold the update into the product (W -= lr/n d x^T is one GEMM with
    // alpha), so no gradient matrix is written and read back.
    // A convolution's gradient is a product of its own: computed once into grad_w_, then
    // added to W (and to KP's B).
    const bool fold = layer.kind() == LayerKind::kDense;
    if (!fold) layer.WeightGradient(x, d, 1.0f, 0.0f, grad_w_[i]);
    if (decay > 0) Scale(1.0f - lr * decay, w_[i]);
    if (fold)
      layer.WeightGradient(x, d, -lr / n, 1.0f, w_[i]);
    else
      w_[i].noalias() += (-lr / n) * grad_w_[i];
    if (options_.network.bias) layer.BiasGradient(d, -(lr / n), /*accumulate=*/true, b_[i]);
    // Kolen-Pollack: B^T receives W's update by the very same arithmetic, so that
    // B = W^T stays so bit for bit (and KP from B = W^T is BP exactly).
    if (kp) {
      Matrix& f = feedback_.matrix(i);
      if (decay > 0) Scale(1.0f - lr * decay, f);
      if (fold)
        layer.WeightGradient(x, d, -lr / n, 1.0f, f);
      else
        f.noalias() += (-lr / n) * grad_w_[i];
    }
  } else {
    layer.WeightGradient(x, d, 1.0f / n, 0.0f, grad_w_[i]);
    ApplyOptimizer(opt, adam_t_, w_[i], grad_w_[i], slot_w_[i], lr, decay);
    if (options_.network.bias) {
      layer.BiasGradient(d, 1.0f / n, false, grad_b_[i]);
      ApplyOptimizer(opt, adam_t_, b_[i], grad_b_[i], slot_b_[i], lr, 0.0f);
    }
    // Kolen-Pollack: B receives W^T's update, with the same weight decay.
    if (kp) ApplyOptimizer(opt, adam_t_, feedback_.matrix(i), grad_w_[i], slot_f_[i], lr, decay);
  }
  if (!w_mask_.empty()) MultiplyBy(w_mask_[i], w_[i]);
  if (kp && feedback_.mask(i) != nullptr) MultiplyBy(*feedback_.mask(i), feedback_.matrix(i));
}

absl::Status Trainer::Step(StepMetrics* metrics) {
  if (done())
    return absl::FailedPreconditionError(absl::StrCat("training is done (", step_, " steps)"));
  EnableFlushToZero();               // cheap; the caller's thread may not have it
  SetGemmThreads(options_.threads);  // per thread, and so is the caller's
  const int n = options_.batch_size;
  AllocateWorkspace(n);
  if (per_example_ && next_ready_) {
    // The previous step's update pass made this example's forward: a_[0] is gathered anew.
    std::swap(a_, an_);
    std::swap(z_, zn_);
    next_ready_ = false;
    GatherBatch();
  } else {
    GatherBatch();
    if (per_example_)
      ForwardPerExample();
    else
      ForwardInto(a_[0], a_, z_);
  }
  const int L = num_layers();
  const double loss = LossAndDelta(options_.network, a_[L], z_[L], targets_, delta_[L]);
  if (!std::isfinite(loss))
    return absl::FailedPreconditionError(
        absl::StrCat("training diverged: the loss is ", loss, " at step ", step_ + 1,
                     "; lower optimizer.learning_rate or the init/feedback scale"));
  RefreshFeedback();
  const bool details = options_.metrics_every > 0 && step_ % options_.metrics_every == 0;
  if (details) ComputeBpSignals();
  if (options_.optimizer.kind == OptimizerKind::kAdam) ++adam_t_;
  if (per_example_) {
    Backward(n, BackwardMode::kSignals, details);
    UpdatePerExample();
  } else {
    Backward(n, BackwardMode::kUpdate, details);
  }

  metrics->step = step_ + 1;
  metrics->epoch = epoch_;
  metrics->loss = loss;
  metrics->has_details = details;
  metrics->alignment.clear();
  metrics->accuracy = kNaN;
  metrics->nse = kNaN;
  if (details) ComputeAlignment(metrics, n);

  ++step_;
  position_ += n;
  if (position_ + n > num_train_) {
    position_ = 0;
    ++epoch_;
    ShuffleForEpoch();
  }
  return absl::OkStatus();
}

void Trainer::ComputeAlignment(StepMetrics* metrics, int n) {
  const int L = num_layers();
  if (train_->is_classification()) {
    int correct = 0;
    for (int j = 0; j < n; ++j) correct += ArgMax(a_[L].col(j)) == ArgMax(targets_.col(j));
    metrics->accuracy = static_cast<double>(correct) / n;
  } else {
    const double t2 = targets_.cast<double>().squaredNorm();
    metrics->nse = (a_[L] - targets_).cast<double>().squaredNorm() / t2;
  }
  for (int i = 1; i < L; ++i) {
    LayerAlignment la;
    la.layer = i;
    if (signal_at_[i]) {
      const AngleStats s = ColumnAngles(dh_[i], bp_dh_[i]);
      la.update_angle_mean = s.mean;
      la.update_angle_sd = s.sd;
      la.positive_fraction = s.positive_fraction;
      if (options_.pbp_angle && layers_[i]->kind() == LayerKind::kDense) {
        const AngleStats p = ColumnAngles(dh_[i], pbp_dh_[i]);
        la.pbp_angle_mean = p.mean;
        la.pbp_angle_sd = p.sd;
      }
    }
    if (const Matrix* m = feedback_.StandsForW(i, w_)) {
      la.weight_angle = VectorAngle(w_[i], *m);
      la.norm_ratio = m->norm() / w_[i].norm();
    }
    metrics->alignment.push_back(la);
  }
}

absl::Status Trainer::Run(TrainingObserver* observer) {
  EnableFlushToZero();
  SetGemmThreads(options_.threads);  // the evaluations too
  StepMetrics& m = scratch_metrics_;
  const bool has_eval = has_evaluations();
  auto eval_due = [&] {
    return has_eval && options_.eval_every > 0 && step_ % options_.eval_every == 0;
  };
  // The step's evaluations, validation first; false if the observer asked to stop.
  auto evaluate = [&]() -> absl::StatusOr<bool> {
    last_eval_step_ = step_;
    bool go_on = true;
    if (num_train_ < train_->size() && last_validation_step_ != step_) {
      ASSIGN_OR_RETURN(EvalMetrics e, EvaluateValidation());
      last_validation_step_ = step_;
      go_on = (observer == nullptr || observer->OnEvaluation(e)) && go_on;
    }
    if (eval_ != nullptr && eval_->size() > 0) {
      ASSIGN_OR_RETURN(EvalMetrics e, Evaluate(*eval_));
      go_on = (observer == nullptr || observer->OnEvaluation(e)) && go_on;
    }
    return go_on;
  };
  // An evaluation due at the step a run continues from (after ImportState) that was
  // not made before the state was saved: make it first.
  if (step_ > 0 && !done() && eval_due() && last_eval_step_ != step_) {
    ASSIGN_OR_RETURN(bool go_on, evaluate());
    if (!go_on) return absl::OkStatus();
  }
  while (!done()) {
    RETURN_IF_ERROR(Step(&m));
    bool go_on = observer == nullptr || observer->OnStep(m);
    if (eval_due()) {
      ASSIGN_OR_RETURN(bool eval_go_on, evaluate());
      go_on = eval_go_on && go_on;
    }
    // A stop asked for at the last step still gets the end-of-run evaluation below:
    // the run is complete, and its final figures belong to it.
    if (!go_on && !done()) return absl::OkStatus();
  }
  if (has_eval && last_eval_step_ != step_) RETURN_IF_ERROR(evaluate().status());
  return absl::OkStatus();
}

// ---- Evaluation --------------------------------------------------------------------

absl::StatusOr<EvalMetrics> Trainer::Evaluate(const Dataset& data) const {
  ASSIGN_OR_RETURN(EvalMetrics e, EvaluateWeights(layers_, options_.network, w_, b_,
                                                  train_->is_classification(), data));
  e.step = step_;
  e.epoch = epoch_;
  return e;
}

absl::StatusOr<EvalMetrics> Trainer::EvaluateValidation() const {
  const int64_t held_out = train_->size() - num_train_;
  if (held_out == 0) return absl::FailedPreconditionError("no validation examples held out");
  ASSIGN_OR_RETURN(EvalMetrics e,
                   EvaluateWeights(layers_, options_.network, w_, b_, train_->is_classification(),
                                   *train_, num_train_, held_out));
  e.step = step_;
  e.epoch = epoch_;
  e.validation = true;
  return e;
}

absl::StatusOr<Matrix> Trainer::Predict(ConstMatrixRef x) const {
  return PredictWeights(layers_, options_.network, w_, b_, x);
}

double Trainer::Loss(ConstMatrixRef x, ConstMatrixRef targets) const {
  EnableFlushToZero();
  const auto& s = options_.network.sizes;
  const int L = num_layers();
  std::vector<Matrix> a(L + 1), z(L + 1);
  for (int i = 1; i <= L; ++i) {
    a[i].resize(s[i], x.cols());
    z[i].resize(s[i], x.cols());
  }
  ForwardInto(x, a, z);
  Matrix delta;
  return LossAndDelta(options_.network, a[L], z[L], targets, delta);
}

absl::Status Trainer::Gradients(ConstMatrixRef x, ConstMatrixRef targets,
                                std::vector<Matrix>* grad_w, std::vector<Matrix>* grad_b) {
  const auto& s = options_.network.sizes;
  if (x.rows() != s.front() || targets.rows() != s.back() || x.cols() != targets.cols())
    return absl::InvalidArgumentError(
        absl::StrCat("x is ", x.rows(), "x", x.cols(), " and targets ", targets.rows(), "x",
                     targets.cols(), "; the network is ", s.front(), " -> ", s.back()));
  EnableFlushToZero();
  const int n = static_cast<int>(x.cols());
  AllocateWorkspace(n);
  a_[0] = x;
  // The forward the next Step() would make (per example: the kernel's, bit for bit).
  if (per_example_ && n == 1) {
    ForwardPerExample();
  } else {
    ForwardInto(a_[0], a_, z_);
  }
  const int L = num_layers();
  LossAndDelta(options_.network, a_[L], z_[L], targets, delta_[L]);
  RefreshFeedback();  // what the next Step() would use
  for (int i = 0; i < L; ++i) grad_w_[i].setZero(), grad_b_[i].setZero();
  Backward(n, BackwardMode::kGradients, /*metrics=*/false);
  grad_w->assign(grad_w_.begin(), grad_w_.end());
  grad_b->clear();
  for (const Vector& g : grad_b_) grad_b->push_back(g);
  return absl::OkStatus();
}

// ---- Feedback access ---------------------------------------------------------------

absl::Status Trainer::SetFeedback(int hidden_layer, ConstMatrixRef b) {
  if (hidden_layer < 1 || hidden_layer >= num_layers())
    return absl::InvalidArgumentError(
        absl::StrCat("hidden_layer must be in [1, ", num_layers() - 1, "], got ", hidden_layer));
  return feedback_.Set(hidden_layer, b, w_[hidden_layer]);
}

Matrix Trainer::Feedback(int hidden_layer) const { return feedback_.Get(hidden_layer); }

// ---- State -------------------------------------------------------------------------

TrainerState Trainer::ExportState() const {
  TrainerState st;
  ExportState(&st);
  return st;
}

void Trainer::ExportState(TrainerState* out) const {
  // Assignments into what `out` holds: a std::vector of the same length and an Eigen
  // matrix of the same shape keep their storage, so a state exported into again
  // allocates nothing.
  TrainerState& st = *out;
  const int L = num_layers();
  st.step = step_;
  st.epoch = epoch_;
  st.position = position_;
  st.rng = rng_.state();
  st.permutation = perm_;
  st.weights = w_;
  st.biases.resize(L);
  for (int i = 0; i < L; ++i) st.biases[i] = b_[i];
  st.feedback.resize(L);
  st.feedback[0].resize(0, 0);
  for (int i = 1; i < L; ++i) feedback_.Get(i, &st.feedback[i]);
  if (w_mask_.empty())
    st.weight_masks.clear();
  else
    st.weight_masks = w_mask_;
  feedback_.ExportMasks(&st.feedback_masks);
  size_t slots = 0;
  for (const auto* v : {&slot_w_, &slot_b_, &slot_f_}) slots += v->size();
  st.moments1.resize(slots);
  st.moments2.resize(slots);
  size_t k = 0;
  for (const auto* v : {&slot_w_, &slot_b_, &slot_f_})
    for (const OptimizerSlot& s : *v) {
      st.moments1[k] = s.m1;
      st.moments2[k] = s.m2;
      ++k;
    }
  st.adam_t = adam_t_;
}

absl::Status Trainer::ImportState(const TrainerState& st) {
  const int L = num_layers();
  if (static_cast<int>(st.weights.size()) != L || static_cast<int>(st.biases.size()) != L ||
      static_cast<int>(st.feedback.size()) != L)
    return absl::InvalidArgumentError(
        absl::StrCat("state has ", st.weights.size(), " weight layers; the network has ", L));
  for (int i = 0; i < L; ++i) {
    if (st.weights[i].rows() != w_[i].rows() || st.weights[i].cols() != w_[i].cols())
      return ShapeError(absl::StrCat("state weights[", i, "]"), st.weights[i].rows(),
                        st.weights[i].cols(), w_[i].rows(), w_[i].cols());
    if (st.biases[i].rows() != b_[i].rows() || st.biases[i].cols() != 1)
      return ShapeError(absl::StrCat("state biases[", i, "]"), st.biases[i].rows(),
                        st.biases[i].cols(), b_[i].rows(), 1);
    const Matrix current = i >= 1 ? Feedback(i) : Matrix();
    if (st.feedback[i].rows() != current.rows() || st.feedback[i].cols() != current.cols())
      return ShapeError(absl::StrCat("state feedback[", i, "]"), st.feedback[i].rows(),
                        st.feedback[i].cols(), current.rows(), current.cols());
  }
  // Everything is checked before anything changes: a refused state leaves the trainer as it was.
  if (st.weight_masks.size() != w_mask_.size())
    return absl::InvalidArgumentError("state masks do not match network.connection_sparsity");
  for (size_t i = 0; i < w_mask_.size(); ++i)
    if (st.weight_masks[i].rows() != w_mask_[i].rows() ||
        st.weight_masks[i].cols() != w_mask_[i].cols())
      return ShapeError(absl::StrCat("state weight_masks[", i, "]"), st.weight_masks[i].rows(),
                        st.weight_masks[i].cols(), w_mask_[i].rows(), w_mask_[i].cols());
  RETURN_IF_ERROR(feedback_.CheckMasks(st.feedback_masks));
  if (static_cast<int64_t>(st.permutation.size()) != num_train_)
    return absl::InvalidArgumentError(absl::StrCat("state permutation has ", st.permutation.size(),
                                                   " entries; the training set has ", num_train_,
                                                   " examples to train on"));
  if (st.moments1.size() != 3 * static_cast<size_t>(L) ||
      st.moments2.size() != 3 * static_cast<size_t>(L))
    return absl::InvalidArgumentError("state optimiser slots do not match the network");
  for (size_t k = 0; k < 3 * static_cast<size_t>(L); ++k) {
    const auto& slots = k < size_t(L) ? slot_w_ : (k < 2 * size_t(L) ? slot_b_ : slot_f_);
    const OptimizerSlot& s = slots[k % L];
    if (st.moments1[k].rows() != s.m1.rows() || st.moments1[k].cols() != s.m1.cols() ||
        st.moments2[k].rows() != s.m2.rows() || st.moments2[k].cols() != s.m2.cols())
      return absl::InvalidArgumentError(
          absl::StrCat("state optimiser slot ", k, " does not match the optimiser"));
  }
  if (st.step < 0 || st.position < 0 || st.position + options_.batch_size > num_train_)
    return absl::InvalidArgumentError(
        absl::StrCat("state position ", st.position, " is outside the training set"));
  for (int32_t k : st.permutation)
    if (k < 0 || k >= num_train_)
      return absl::InvalidArgumentError("state permutation has an out-of-range index");

  step_ = st.step;
  epoch_ = st.epoch;
  position_ = st.position;
  rng_.set_state(st.rng);
  perm_ = st.permutation;
  w_ = st.weights;
  for (int i = 0; i < L; ++i) b_[i] = st.biases[i];
  for (int i = 1; i < L; ++i) feedback_.Import(i, st.feedback[i]);
  w_mask_ = st.weight_masks;
  RETURN_IF_ERROR(feedback_.ImportMasks(st.feedback_masks));
  for (size_t k = 0; k < 3 * static_cast<size_t>(L); ++k) {
    auto& slots = k < size_t(L) ? slot_w_ : (k < 2 * size_t(L) ? slot_b_ : slot_f_);
    slots[k % L].m1 = st.moments1[k];
    slots[k % L].m2 = st.moments2[k];
  }
  adam_t_ = st.adam_t;
  next_ready_ = false;
  last_eval_step_ = last_validation_step_ = -1;
  RefreshFeedback();
  return absl::OkStatus();
}

}  // namespace alignd::core
