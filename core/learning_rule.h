// File: core/learning_rule.h
// -----------------------------------------------------------------------------
// The learning rules, one row each. Every rule updates the output layer the same way
// (dW = -lr delta h^T); they differ in what carries the error down to a hidden layer,
// the hidden signal dh = M^T delta (core/feedback.h does it):
//
//   rule     M (stored in W's shape)            reference
//   bp       W                                  backpropagation
//   fa       F = B^T, fixed random              Lillicrap et al., Nat. Commun. 7:13276 (2016)
//   dfa      F_i = B_i^T (out x hidden), applied to delta_out directly
//                                               Nokland, NeurIPS 2016
//   sign     sign(W) o M: M = mean|W| (scaled), 1 (uSF), |B| fixed (frSF) or |B| redrawn
//            every step (brSF)                  Liao, Leibo, Poggio, AAAI 2016
//   kp       F, updated like W (same gradient, same weight decay), so W - F decays
//                                               Akrout et al., NeurIPS 2019
//   pbp      (W^+)^T, recomputed every pinv_every steps (dense layers only: the
//            pseudo-inverse of a convolution is not a convolution)
//                                               (the paper's "Proof 2": Gauss-Newton-like)
//   shallow  none: only the last layer learns   (the paper's lower baseline)
//
// On a convolution, M is a kernel of W's shape and dh = M^T delta is backward-data with M in
// W's place (core/conv.h). DFA's B_i maps the output error to every unit of hidden layer i,
// a convolution's output included (Nokland's dense projection, not a kernel): see
// docs/SCIENCE.md.
//
// A new rule is a row of kRuleTable below, its value in core/config.h's Rule and in
// proto/alignd/v1/config.proto, and its signal in core/feedback.cc; the predicates below,
// the names, the API's rule list and the dashboard's all come from the table.
#ifndef ALIGND_CORE_LEARNING_RULE_H_
#define ALIGND_CORE_LEARNING_RULE_H_

#include "absl/strings/string_view.h"
#include "core/config.h"

namespace alignd::core {

// What B is, for a rule that has one.
enum class FeedbackShape {
  kNone,           // no B (bp uses W itself; shallow sends nothing)
  kLikeW,          // B in W's place: W^T's shape for a dense layer, W's kernel for a conv one
  kOutputToUnits,  // DFA: hidden units x outputs
};

struct RuleTraits {
  Rule rule;
  absl::string_view name;       // the short name: "fa"
  absl::string_view long_name;  // accepted too: "feedback_alignment"
  absl::string_view title;      // "Feedback alignment"
  bool learns_hidden;           // hidden layers receive a learning signal
  bool has_feedback;            // keeps a matrix per hidden layer (drawn or computed)
  bool draws_feedback;          // that matrix is drawn from FeedbackConfig at the start
  bool learns_feedback;         // B receives W's updates (Kolen-Pollack)
  bool refreshes;               // M is recomputed from W as it trains (sign, pbp)
  bool settable;                // SetFeedback accepts a B (sign symmetry: in frsf mode only)
  bool conv;                    // trains convolution layers
  FeedbackShape shape;
  absl::string_view reference;
};

inline constexpr RuleTraits kRuleTable[] = {
    {Rule::kBackprop, "bp", "backprop", "Backpropagation", true, false, false, false, false, false,
     true, FeedbackShape::kNone, "Rumelhart, Hinton, Williams 1986"},
    {Rule::kFeedbackAlignment, "fa", "feedback_alignment", "Feedback alignment", true, true, true,
     false, false, true, true, FeedbackShape::kLikeW, "Lillicrap et al., Nat. Commun. 2016"},
    {Rule::kDirectFeedbackAlignment, "dfa", "direct_feedback_alignment",
     "Direct feedback alignment", true, true, true, false, false, true, true,
     FeedbackShape::kOutputToUnits, "Nokland, NeurIPS 2016"},
    {Rule::kSignSymmetry, "sign", "sign_symmetry", "Sign symmetry", true, true, true, false, true,
     true, true, FeedbackShape::kLikeW, "Liao, Leibo, Poggio, AAAI 2016"},
    {Rule::kKolenPollack, "kp", "kolen_pollack", "Kolen-Pollack", true, true, true, true, false,
     true, true, FeedbackShape::kLikeW, "Akrout et al., NeurIPS 2019"},
    {Rule::kPseudoBackprop, "pbp", "pseudo_backprop", "Pseudo-backprop", true, true, false, false,
     true, false, false, FeedbackShape::kLikeW, "Lillicrap et al. 2016, Proof 2"},
    {Rule::kShallow, "shallow", "shallow", "Shallow (last layer only)", false, false, false, false,
     false, false, true, FeedbackShape::kNone, "the paper's lower baseline"},
};

// The rule's row (every Rule has one: tests/core/learning_rule_test.cc).
constexpr const RuleTraits& Traits(Rule r) {
  for (const RuleTraits& t : kRuleTable)
    if (t.rule == r) return t;
  return kRuleTable[0];
}

// True if the rule keeps a matrix per hidden layer (drawn at the start or computed).
constexpr bool RuleHasFeedback(Rule r) { return Traits(r).has_feedback; }
// True if the rule's feedback matrix is drawn from FeedbackConfig (random).
constexpr bool RuleDrawsFeedback(Rule r) { return Traits(r).draws_feedback; }
// True if hidden layers receive a learning signal.
constexpr bool RuleLearnsHidden(Rule r) { return Traits(r).learns_hidden; }

}  // namespace alignd::core

#endif  // ALIGND_CORE_LEARNING_RULE_H_
