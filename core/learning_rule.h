// File: core/learning_rule.h
// -----------------------------------------------------------------------------
// The learning rules, and what each sends back to a hidden layer. Every rule
// updates the output layer the same way (dW = -lr delta h^T); they differ in one
// line of Trainer::Backward, the hidden signal dh = M^T delta:
//
//   rule     M (stored in W's shape)            reference
//   bp       W                                  backpropagation
//   fa       F = B^T, fixed random              Lillicrap et al., Nat. Commun. 7:13276 (2016)
//   dfa      F_i = B_i^T (out x hidden), applied to delta_out directly
//                                               Nokland, NeurIPS 2016
//   sign     sign(W) o M, M = 1 (uSF) or |B| (frSF)
//                                               Liao, Leibo, Poggio, AAAI 2016
//   kp       F, updated like W (same gradient, same weight decay), so W - F decays
//                                               Akrout et al., NeurIPS 2019
//   pbp      (W^+)^T, recomputed every pinv_every steps
//                                               (the paper's "Proof 2": Gauss-Newton-like)
//   shallow  none: only the last layer learns   (the paper's lower baseline)
#ifndef ALIGND_CORE_LEARNING_RULE_H_
#define ALIGND_CORE_LEARNING_RULE_H_

#include "core/config.h"

namespace alignd::core {

// True if the rule keeps a matrix per hidden layer (drawn at the start or computed).
constexpr bool RuleHasFeedback(Rule r) { return r != Rule::kBackprop && r != Rule::kShallow; }
// True if the rule's feedback matrix is drawn from FeedbackConfig (random).
constexpr bool RuleDrawsFeedback(Rule r) {
  return r == Rule::kFeedbackAlignment || r == Rule::kDirectFeedbackAlignment ||
         r == Rule::kSignSymmetry || r == Rule::kKolenPollack;
}
// True if hidden layers receive a learning signal.
constexpr bool RuleLearnsHidden(Rule r) { return r != Rule::kShallow; }

}  // namespace alignd::core

#endif  // ALIGND_CORE_LEARNING_RULE_H_
