// File: core/trainer.h
// -----------------------------------------------------------------------------
// Trainer: a multilayer perceptron of any depth and the loop that trains it with
// backpropagation or one of the feedback-alignment family (core/learning_rule.h).
//
// Shapes (stated once, llm.c style), with L weight layers and batch size n:
//   a[0] = X                      in x n        (a column per example)
//   z[i+1] = W[i] a[i] + b[i]     W[i] is sizes[i+1] x sizes[i]
//   a[i+1] = f(z[i+1])            f = hidden activation, the output one for i+1 = L
//   delta[L] = dLoss/dz[L]        out x n
//   dh[i] = M[i]^T delta[i+1]     the hidden signal, M[i] = W[i] (BP) or F[i] (the rule's)
//   delta[i] = dh[i] o f'(a[i])
//   W[i] -= lr/n * delta[i+1] a[i]^T
// Feedback matrices F[i] are stored in the shape of W[i] (so BP and FA run the very
// same product, `M.transpose() * delta`, and FA with F = W is BP bit for bit); the
// API speaks the paper's orientation, B[i] = F[i]^T.
//
// Losses are means over the batch. The training step allocates nothing after the
// first batch (tested under EIGEN_RUNTIME_NO_MALLOC); metric steps and evaluations
// may.
//
// Deterministic: the same options, seed, data and build give bit-identical
// weights, and ExportState()/ImportState() continue a run exactly.
//
// Thread-safety: a Trainer is not thread-safe; one thread drives it at a time.
// The data sets are shared and must not change while the Trainer lives.
#ifndef ALIGND_CORE_TRAINER_H_
#define ALIGND_CORE_TRAINER_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/config.h"
#include "core/dataset.h"
#include "core/feedback.h"
#include "core/layers.h"
#include "core/matrix.h"
#include "core/network.h"
#include "core/optimizer.h"
#include "core/random.h"

namespace alignd::core {

// Alignment of one hidden layer (1-based: layer 1 is the first hidden layer).
struct LayerAlignment {
  int layer = 0;
  // Angle between the rule's hidden signal dh and the BP one, per example; degrees.
  double update_angle_mean = kNaN;
  double update_angle_sd = kNaN;
  double positive_fraction = kNaN;  // share of examples with dh_rule . dh_bp > 0
  // Angle between vec(W^T) and vec(B) of the weights above this layer, and |B| / |W|
  // (Frobenius). NaN where the rule has no B shaped like W^T (DFA, shallow).
  double weight_angle = kNaN;
  double norm_ratio = kNaN;
  // Angle to the pseudo-backprop signal W^+ delta (TrainerOptions::pbp_angle).
  double pbp_angle_mean = kNaN;
  double pbp_angle_sd = kNaN;
};

// What one step reports. `loss` every step; the rest on metric steps
// (has_details, every TrainerOptions::metrics_every steps, from step 1).
struct StepMetrics {
  int64_t step = 0;    // steps completed, this one included
  int64_t epoch = 0;   // 0-based epoch this step belongs to
  double loss = kNaN;  // mean loss of the batch, before the update
  bool has_details = false;
  double accuracy = kNaN;                 // classification, on the batch
  double nse = kNaN;                      // regression: sum |e|^2 / sum |y*|^2 on the batch
  std::vector<LayerAlignment> alignment;  // one per hidden layer
};

// Called by Trainer::Run on the training thread (ceres IterationCallback style).
// Returning false stops the run after the current step; Run can be called again.
class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  virtual bool OnStep(const StepMetrics& metrics) = 0;
  virtual bool OnEvaluation(const EvalMetrics& metrics) {
    (void)metrics;
    return true;
  }
};

// Everything needed to continue a run bit for bit. Feedback matrices are in the
// paper's orientation (B[i] shaped like W[i]^T; index = hidden layer, entry 0 unused):
// the fixed B for FA, the learned B for KP, B_i (hidden x out) for DFA, the magnitude
// matrix M for sign symmetry, the current W^+ for pseudo-backprop.
struct TrainerState {
  int64_t step = 0;
  int64_t epoch = 0;
  int64_t position = 0;              // examples consumed in the current epoch
  Rng::State rng{};                  // the shuffling generator
  std::vector<int32_t> permutation;  // this epoch's order
  std::vector<Matrix> weights;       // W[i], sizes[i+1] x sizes[i]
  std::vector<Matrix> biases;        // b[i], sizes[i+1] x 1
  std::vector<Matrix> feedback;      // B[i] (see above); empty where unused
  std::vector<Matrix> weight_masks;  // empty when dense
  std::vector<Matrix> feedback_masks;
  // Optimiser slots: first and second moments (SGD momentum uses the first only), for
  // weights, biases and (Kolen-Pollack) feedback, in that order per layer.
  std::vector<Matrix> moments1;
  std::vector<Matrix> moments2;
  int64_t adam_t = 0;
};

// Binary encoding of a TrainerState (little-endian floats; a versioned header).
std::string SerializeState(const TrainerState& state);
// Returns InvalidArgument if `bytes` is not a complete state of a known version.
absl::StatusOr<TrainerState> ParseState(const std::string& bytes);

// Bytes a Trainer with these options holds at its peak while it trains on a set of
// `train_examples` examples (the data sets themselves not included): weights, biases,
// feedback and masks, optimiser slots, the step's workspaces at batch_size (about ten
// matrices of sizes[i] x batch per layer), the evaluation's chunks, the shuffle order,
// and a pseudo-inverse's temporaries. An upper estimate, computed without allocating
// (and without overflow for any sizes that pass ValidateOptions): the service refuses
// sessions over its memory limit with it before they are queued.
int64_t EstimateTrainingBytes(const TrainerOptions& options, int64_t train_examples);

// What Trainer::Create checks of options against data, without building a network (no
// weights drawn, nothing allocated): InvalidArgument names the bad field. The data sets'
// own values are not checked here (ValidateDataset). `eval` may be null.
absl::Status ValidateTraining(const TrainerOptions& options, const Dataset& train,
                              const Dataset* eval);
// Steps a run of these options takes on a training set of `train_examples` examples.
int64_t TotalSteps(const TrainerOptions& options, int64_t train_examples);

class Trainer {
 public:
  // Validates `options` against the data: InvalidArgument names the bad field
  // (e.g. "network.sizes[0] is 784 but the training set has 30 features").
  // `eval` may be null. Both data sets must outlive nothing: they are shared.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      const TrainerOptions& options, std::shared_ptr<const Dataset> train,
      std::shared_ptr<const Dataset> eval = nullptr);

  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;
  ~Trainer();

  // Trains until done() or the observer returns false (observer may be null).
  // Evaluates every eval_every steps and once at the end (also when
  // the observer asks to stop at the last step), each step's evaluation once: a run
  // continued after ImportState makes an evaluation due at its first step unless
  // MarkEvaluated() says it was made. Each evaluation is the validation examples'
  // (if validation_fraction > 0), then the eval set's (if given), one OnEvaluation
  // each. Returns FailedPrecondition if the loss turns NaN
  // or infinite (diverged), naming the step.
  absl::Status Run(TrainingObserver* observer);

  // Says that the evaluations at the current step were made (and reported) already, by
  // the run whose state was imported: Run() does not repeat them. MarkValidated(): only
  // the validation examples' was (the run stopped between the two).
  void MarkEvaluated() { last_eval_step_ = last_validation_step_ = step_; }
  void MarkValidated() { last_validation_step_ = step_; }

  // One training step; fills `metrics`. Same error as Run.
  absl::Status Step(StepMetrics* metrics);

  // Loss, accuracy / NSE of the current weights on `data` (shapes must match the
  // network: InvalidArgument otherwise).
  absl::StatusOr<EvalMetrics> Evaluate(const Dataset& data) const;
  // The same on the validation examples held out of the training set
  // (validation_fraction; FailedPrecondition if none), `validation` set.
  absl::StatusOr<EvalMetrics> EvaluateValidation() const;
  // Whether Run() evaluates: validation examples are held out or an eval set is given.
  bool has_evaluations() const {
    return num_train_ < train_->size() || (eval_ != nullptr && eval_->size() > 0);
  }
  // Network outputs for inputs `x` (in x n).
  absl::StatusOr<Matrix> Predict(ConstMatrixRef x) const;

  // The rule's pseudo-gradients of the mean loss of (x, targets) with the current
  // weights, without updating (for BP: the true gradients): what the next Step()
  // would apply to that batch, with the feedback it would use. targets is out x n.
  absl::Status Gradients(ConstMatrixRef x, ConstMatrixRef targets, std::vector<Matrix>* grad_w,
                         std::vector<Matrix>* grad_b);
  // Mean loss of (x, targets) with the current weights.
  double Loss(ConstMatrixRef x, ConstMatrixRef targets) const;

  TrainerState ExportState() const;
  // The same into `out`, reusing its buffers: exporting again into the same state (same
  // network) allocates nothing, so a recorder can take checkpoints often without a heap
  // allocation per checkpoint.
  void ExportState(TrainerState* out) const;
  // Returns InvalidArgument if the state does not fit this network and rule.
  absl::Status ImportState(const TrainerState& state);

  // Replaces the feedback matrix B of hidden layer `hidden_layer` (1-based; paper
  // orientation). For sign symmetry in frSF mode B sets the magnitudes M = |B|.
  // InvalidArgument on a wrong layer or shape, or a rule without B (BP, shallow,
  // pseudo-backprop, sign symmetry in uSF mode).
  absl::Status SetFeedback(int hidden_layer, ConstMatrixRef b);
  Matrix Feedback(int hidden_layer) const;  // paper orientation; empty if none

  const TrainerOptions& options() const { return options_; }
  int num_layers() const { return static_cast<int>(w_.size()); }
  const Matrix& weights(int i) const { return w_[i]; }
  const Vector& biases(int i) const { return b_[i]; }
  // For tests and tools that perturb parameters (e.g. finite differences). Write through the
  // reference before the next Step(), not after it: the call says the weights may change
  // (the per-example path's forward made ahead is dropped), a later write goes unseen.
  Matrix& mutable_weights(int i) {
    next_ready_ = false;
    return w_[i];
  }
  Vector& mutable_biases(int i) {
    next_ready_ = false;
    return b_[i];
  }
  int64_t step() const { return step_; }
  int64_t epoch() const { return epoch_; }
  int64_t total_steps() const { return total_steps_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  bool done() const { return step_ >= total_steps_; }

 private:
  Trainer(const TrainerOptions& options, std::shared_ptr<const Dataset> train,
          std::shared_ptr<const Dataset> eval);
  void Initialize();
  void AllocateWorkspace(int n);
  void GatherBatch();
  // a[i], z[i] for i >= 1 from input x (a[0] is not touched).
  void ForwardInto(ConstMatrixRef x, std::vector<Matrix>& a, std::vector<Matrix>& z) const;
  // Batch 1, dense layers, plain SGD (per_example_): z = W a through core/per_example.h's
  // kernel, the pass that UpdatePerExample's fused forward agrees with bit for bit.
  void ForwardPerExample();
  enum class BackwardMode { kUpdate, kGradients, kSignals };
  // From delta_[L]: hidden signals dh_, deltas, and per mode the updates, grad_w_/grad_b_,
  // or nothing more (kSignals: UpdatePerExample updates after).
  void Backward(int n, BackwardMode mode, bool metrics);
  // The per-example step's updates, bottom up, each fused with the next example's forward
  // product through the updated layer (into an_, zn_; next_ready_) when the next example
  // is known (not at an epoch's end).
  void UpdatePerExample();
  void UpdateLayer(int i, int n);
  void ComputeBpSignals();
  bool ComputeSignalAt(int i) const;
  void ShuffleForEpoch();
  void RefreshFeedback();
  void ComputeAlignment(StepMetrics* metrics, int n);
  float LearningRate(int i) const;

  const TrainerOptions options_;
  const std::shared_ptr<const Dataset> train_;
  const std::shared_ptr<const Dataset> eval_;

  // The layers (core/layers.h), and per layer: its index among the weight layers (-1 for
  // none), and whether a weight layer lies below it (its input's signal is used).
  Layers layers_;
  std::vector<int> weight_index_;
  std::vector<char> signal_below_;
  std::vector<char> signal_at_;  // the rule sends a[i] a signal (ComputeSignalAt)
  bool learns_hidden_ = true;

  // Parameters.
  std::vector<Matrix> w_;
  std::vector<Vector> b_;
  std::vector<Matrix> w_mask_;  // empty when dense
  class Feedback feedback_;     // the rule's F[i] (core/feedback.h)
  std::vector<OptimizerSlot> slot_w_, slot_b_, slot_f_;
  int64_t adam_t_ = 0;

  // Schedule.
  Rng rng_;
  std::vector<int32_t> perm_;
  int64_t step_ = 0, epoch_ = 0, position_ = 0;
  int64_t steps_per_epoch_ = 0, total_steps_ = 0;
  // Examples trained on: the first num_train_ of train_; the rest are for validation.
  int64_t num_train_ = 0;

  // Workspace for batch size ws_n_ (mutable: Forward is shared with const evaluation).
  int ws_n_ = -1;
  std::vector<Matrix> a_, z_;
  // The per-example path (batch 1, every layer dense, plain SGD without momentum): the next
  // step's activations, made by this step's update pass, and whether they are current.
  bool per_example_ = false;
  bool next_ready_ = false;
  std::vector<Matrix> an_, zn_;
  std::vector<int32_t> columns_;
  std::vector<Matrix> delta_, dh_;
  Matrix targets_;
  std::vector<Matrix> bp_delta_, bp_dh_, pbp_dh_;
  std::vector<Matrix> grad_w_;
  std::vector<Vector> grad_b_;
  StepMetrics scratch_metrics_;
  int64_t last_eval_step_ = -1;
  int64_t last_validation_step_ = -1;
};

}  // namespace alignd::core

#endif  // ALIGND_CORE_TRAINER_H_
