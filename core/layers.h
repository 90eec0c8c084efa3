// File: core/layers.h
// -----------------------------------------------------------------------------
// The maths of one layer, forward and backward, in the shapes of core/trainer.h
// (a column per example): activations, their derivatives, the output loss and its
// delta, and the forward pass of a whole network. Shared by the Trainer (which trains)
// and the Network (which serves Predict and Evaluate).
#ifndef ALIGND_CORE_LAYERS_H_
#define ALIGND_CORE_LAYERS_H_

#include <vector>

#include "core/config.h"
#include "core/matrix.h"

namespace alignd::core {

// a = f(z), column by column for softmax.
void Activate(Activation act, const Matrix& z, Matrix& a);
// d = d o f'(z), written in terms of a = f(z). Not for softmax (its Jacobian is not
// diagonal: LossAndDelta handles a softmax output).
void MultiplyByDerivative(Activation act, const Matrix& a, Matrix& d);
// Mean loss of outputs y = g(z) against targets t (out x n), and delta = dLoss_j/dz_j
// (per example, not divided by n) into `delta`.
double LossAndDelta(const NetworkConfig& net, const Matrix& y, const Matrix& z, ConstMatrixRef t,
                    Matrix& delta);
// Index of the largest entry (the first of equal ones).
int ArgMax(const Eigen::Ref<const Vector>& v);

// z[i+1] = W[i] a[i] + b[i], a[i+1] = f(z[i+1]) for every layer, from a[0] = x (a[0]
// itself is not written). a and z have L+1 entries sized for x's columns.
void Forward(const NetworkConfig& net, const std::vector<Matrix>& w, const std::vector<Vector>& b,
             ConstMatrixRef x, std::vector<Matrix>& a, std::vector<Matrix>& z);

}  // namespace alignd::core

#endif  // ALIGND_CORE_LAYERS_H_
