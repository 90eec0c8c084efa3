// File: core/per_example.h
// -----------------------------------------------------------------------------
// The dense layer's products at batch 1 (the paper's per-example SGD), written for the
// memory bound. At batch 1 a step is matrix-vector work: on 784-1000-10 it reads W0
// (3.1 MB) for the forward product and reads and writes it again for the rank-1 update,
// so what it costs is the bytes it moves, not its FMAs. These kernels move each weight
// once per step:
//
//   UpdateAndForward   W = (keep * W + alpha * d x^T) o mask, and in the same pass over W
//                      z = W next (the next example's forward product through the
//                      updated weights: the next example is known, and plain SGD's next
//                      forward uses exactly these weights);
//   Forward            z = W x, for a step whose forward was not made in the update
//                      before it (the first step, a step after ImportState, after an
//                      epoch's end).
//
// Columns j where x[j] = 0 (and next[j] = 0) are skipped when there is nothing to scale:
// their update is zero and their product term too. MNIST's pixels are 81 % zeros.
//
// Arithmetic (the reason this is its own translation unit, compiled without FP
// contraction: the compiler fuses nothing on its own): per weight t = w * keep (only when
// keep != 1), t = (alpha*x[j]) * d[r] + t, t = t * mask; per output z[r] = next[j] * t + z[r],
// over j ascending, from z = +0; each product-and-sum rounded once where the build's CPU has
// FMA, twice otherwise. Forward(W', next) and UpdateAndForward's z are therefore the same
// bits: a term the fused pass adds for a column whose next[j] is 0 is +-0, and z, a sum
// started at +0, is -0 only where a first product underflowed to -0 and every later one was
// zero (then the fused z may be +0: a sign of zero, which the bias add erases); the weights
// finite (a non-finite loss stops training first).
// Layers of at most 16 rows (output layers) take a path of their own with AVX-512: 16
// columns as whole vectors, the sums kept per lane and added up at the end, in an order
// that Forward and UpdateAndForward share. The bits depend on the build's instruction set,
// as the products' do.
#ifndef ALIGND_CORE_PER_EXAMPLE_H_
#define ALIGND_CORE_PER_EXAMPLE_H_

#include <cstdint>
#include <vector>

#include "core/matrix.h"

namespace alignd::core {

// What one dense layer's update at batch 1 is made of.
struct ColumnUpdate {
  float alpha = 0;              // -learning rate (batch 1: the mean is the example)
  float keep = 1;               // 1 - lr * weight_decay; 1 for none
  const float* d = nullptr;     // the layer's delta, W.rows() entries
  const float* x = nullptr;     // this example's input to the layer, W.cols() entries
  const float* next = nullptr;  // the next example's input (null: none known)
  const float* mask = nullptr;  // W's connection mask, column-major like W (null: dense)
};

// z = W x (W.rows() entries). `columns` is scratch (W.cols() entries once reserved:
// no allocation after the first call).
void PerExampleForward(ConstMatrixRef w, const float* x, float* z, std::vector<int32_t>& columns);

// The update, and with `z` non-null the forward product of u.next through the updated W
// (u.next must be set then). The columns touched depend on x and next only: the same
// ColumnUpdate applied to two equal matrices (Kolen-Pollack's W and B^T), one with z and one
// without, leaves them equal bit for bit.
void PerExampleUpdate(MatrixRef w, const ColumnUpdate& u, float* z, std::vector<int32_t>& columns);

}  // namespace alignd::core

#endif  // ALIGND_CORE_PER_EXAMPLE_H_
