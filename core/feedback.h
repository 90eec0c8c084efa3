// File: core/feedback.h
// -----------------------------------------------------------------------------
// Feedback: the one room that knows each learning rule's backward path (the table in
// core/learning_rule.h) — what carries the error down to hidden layer i:
//
//   rule     the matrix F[i] (stored in W[i]'s shape; the API's B[i] = F[i]^T)
//   bp       none: W[i] itself
//   fa       drawn once from FeedbackConfig, fixed
//   dfa      drawn once, out x hidden: applied to the output delta directly
//   sign     sign(W[i]) o M[i]: M = mean|W[i]| (scaled), 1 (uSF), |drawn| (frSF) or
//            |drawn anew every step| (brSF); follows W every step
//   kp       drawn once, then updated like W[i] (Trainer::UpdateLayer asks LearnsLikeW)
//   pbp      (W[i]^+)^T (or the damped pseudo-inverse's), recomputed every pinv_every steps
//   shallow  none: hidden layers get no signal
//
// Layers (core/layers.h): F[i] exists for a layer i with weights that has a layer with
// weights below it (its signal is used), in W[i]'s shape; DFA's F[i] exists where layer i-1
// has weights (a[i] is its output), out x sizes[i]. The API's B[i] is F[i]^T for a dense
// layer and DFA, and F[i] itself (a kernel of W's shape) for a convolution.
//
// A new rule is a row of core/learning_rule.h's table, its draw, refresh and signal here, and
// its value in proto/alignd/v1/config.proto.
//
// Not thread-safe; owned by one Trainer.
#ifndef ALIGND_CORE_FEEDBACK_H_
#define ALIGND_CORE_FEEDBACK_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "core/config.h"
#include "core/layers.h"
#include "core/matrix.h"
#include "core/random.h"

namespace alignd::core {

// (W^+)^T, in W's shape. Allocates; pseudo-backprop runs it every pinv_every steps.
// damping > 0: the damped pseudo-inverse's, ((W^T W + lambda I)^-1 W^T)^T with
// lambda = damping * |W|_F^2 / min(rows, cols) (FeedbackConfig::pinv_damping).
Matrix PseudoInverseTransposed(const Matrix& w, float damping = 0.0f);

class Feedback {
 public:
  // Draws the rule's matrices for a network with weights `w` (masks already applied) from
  // `fb_rng`; with connection sparsity, masks them (`draw_mask(rows, cols)` draws a fresh
  // mask; Kolen-Pollack takes W's masks `w_mask` instead, so that W - B^T can decay
  // everywhere). Then Refresh(w, 0).
  void Initialize(const TrainerOptions& options, const Layers& layers, const std::vector<Matrix>& w,
                  const std::vector<Matrix>& w_mask, Rng& fb_rng,
                  const std::function<Matrix(Eigen::Index, Eigen::Index)>& draw_mask);

  // Whether hidden layer i receives a signal through a matrix of this rule's (see above).
  static bool At(Rule rule, const Layers& layers, int i);

  // Before a step (or Gradients) at `step`: sign symmetry takes W's signs (brSF: and draws
  // its magnitudes for this step, a function of the seed and the step); pseudo-backprop
  // recomputes W^+ at every pinv_every-th step (once per step).
  void Refresh(const std::vector<Matrix>& w, int64_t step);

  // dh = M^T delta: the hidden signal of hidden layer i (1 <= i < L, At(i)), from the delta
  // of the layer above (`delta_above` = delta[i+1], through layer i's BackwardData with M
  // in W's place; `x` = a[i]) or, for DFA, the output's (`delta_out`).
  void HiddenSignal(int i, const Layers& layers, const std::vector<Matrix>& w, const Matrix& x,
                    const Matrix& delta_above, const Matrix& delta_out, Matrix& dh) const;

  // The matrix that stands for W[i] (BP: W[i] itself), for the weight angle and norm ratio;
  // null where the rule has none that means W[i]^T (shallow; DFA except at its last hidden
  // layer, whose B maps the output error and so is W[L-1]^T's counterpart).
  const Matrix* StandsForW(int i, const std::vector<Matrix>& w) const;

  // Kolen-Pollack: F[i] receives W[i]'s updates (the trainer applies them to matrix(i) and
  // then the mask, if any).
  bool LearnsLikeW() const { return rule_ == Rule::kKolenPollack; }
  Matrix& matrix(int i) { return f_[i]; }
  const Matrix& matrix(int i) const { return f_[i]; }
  // F[i]'s mask, or null when dense.
  const Matrix* mask(int i) const { return mask_.empty() ? nullptr : &mask_[i]; }

  // The API's B[i] = F[i]^T, or F[i] for a convolution (sign symmetry: its magnitudes M^T,
  // scaled: mean|W| where W is not 0); empty where none.
  Matrix Get(int i) const;
  // The same into `out` (its storage reused when the shape is the same; empty where none).
  void Get(int i, Matrix* out) const;
  // Replaces B[i] (sign symmetry frSF: sets M = |B|). InvalidArgument for a rule without a
  // settable B (BP, shallow, pseudo-backprop, sign symmetry uSF) or a wrong shape.
  absl::Status Set(int i, ConstMatrixRef b, const Matrix& w_i);

  // The masks in the API's orientation (empty when dense), and back. Import expects shapes
  // already checked against Get().
  std::vector<Matrix> ExportMasks() const;
  void ExportMasks(std::vector<Matrix>* out) const;  // reusing out's storage
  absl::Status ImportMasks(const std::vector<Matrix>& masks);
  // What ImportMasks checks, changing nothing.
  absl::Status CheckMasks(const std::vector<Matrix>& masks) const;
  // Takes B[i] as Get() returns it, then the next Refresh recomputes what is derived.
  void Import(int i, ConstMatrixRef b);

  Rule rule() const { return rule_; }
  int layers() const { return static_cast<int>(f_.size()); }

 private:
  Rule rule_ = Rule::kBackprop;
  FeedbackConfig config_;
  std::vector<Matrix> f_;         // F[i], i >= 1; f_[0] unused
  std::vector<Matrix> mask_;      // empty when dense
  std::vector<Matrix> sign_m_;    // sign symmetry magnitudes M (F's shape; scaled: ones)
  std::vector<double> present_;   // scaled sign symmetry: W[i]'s connections (mask's ones)
  int64_t pinv_step_ = -1;        // pseudo-backprop: the step at which f_ was last W^+
  std::vector<char> transposed_;  // B[i] = F[i]^T (dense, DFA); else B[i] = F[i] (conv)
  std::vector<float> scale_;      // the draw's scale per layer (brSF draws again)
  uint64_t seed_ = 0;             // brSF: its draws are of Rng(seed_, step)
  void DrawMagnitudes(int64_t step);
  // Matrix i in the API's orientation (copying into out).
  void ToApi(int i, const Matrix& m, Matrix* out) const;
};

}  // namespace alignd::core

#endif  // ALIGND_CORE_FEEDBACK_H_
