// File: core/optimizer.h
// -----------------------------------------------------------------------------
// The optimisers: one update of a parameter from its (pseudo-)gradient, for SGD (with
// optional momentum) and Adam, with decoupled-from-nothing L2 weight decay folded in
// as the paper's rules do (the gradient of decay/2 |W|^2). The rule decides *what*
// gradient a layer gets (core/trainer.cc's Backward); this decides how it is applied.
#ifndef ALIGND_CORE_OPTIMIZER_H_
#define ALIGND_CORE_OPTIMIZER_H_

#include <cmath>
#include <cstdint>

#include "core/config.h"
#include "core/matrix.h"

namespace alignd::core {

// A parameter's optimiser state: the first moment (SGD momentum, Adam) and the second
// (Adam). Empty where the optimiser does not use it.
struct OptimizerSlot {
  Matrix m1, m2;
};

// param -= the optimiser's step for `grad` at learning rate lr and weight decay `decay`.
// `adam_t` is Adam's step count, already advanced for this step.
template <typename P, typename G>
void ApplyOptimizer(const OptimizerConfig& opt, int64_t adam_t, P& param, const G& grad,
                    OptimizerSlot& slot, float lr, float decay) {
  if (opt.kind == OptimizerKind::kSgd) {
    if (opt.momentum > 0) {
      slot.m1 = opt.momentum * slot.m1 + grad;
      if (decay > 0) slot.m1 += decay * param;
      param -= lr * slot.m1;
    } else {
      if (decay > 0) param *= 1.0f - lr * decay;
      param -= lr * grad;
    }
    return;
  }
  const float c1 = 1.0f / (1.0f - std::pow(opt.beta1, static_cast<float>(adam_t)));
  const float c2 = 1.0f / (1.0f - std::pow(opt.beta2, static_cast<float>(adam_t)));
  if (decay > 0) {
    slot.m1 = opt.beta1 * slot.m1 + (1.0f - opt.beta1) * (grad + decay * param);
    slot.m2.array() =
        opt.beta2 * slot.m2.array() + (1.0f - opt.beta2) * (grad + decay * param).array().square();
  } else {
    slot.m1 = opt.beta1 * slot.m1 + (1.0f - opt.beta1) * grad;
    slot.m2.array() = opt.beta2 * slot.m2.array() + (1.0f - opt.beta2) * grad.array().square();
  }
  param.array() -= lr * (slot.m1.array() * c1) / ((slot.m2.array() * c2).sqrt() + opt.epsilon);
}

}  // namespace alignd::core

#endif  // ALIGND_CORE_OPTIMIZER_H_
