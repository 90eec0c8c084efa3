// File: core/gemm.h
// -----------------------------------------------------------------------------
// The engine's matrix products, behind one small interface:
//
//   C = alpha * op(A) * op(B) + beta * C,   op(X) = X or X^T
//
// Products of two matrices go to OpenBLAS (Debian's single-threaded build,
// libopenblas-serial, selected at run time for the CPU, so the binary stays
// portable) when the build has it (CMake option ALIGND_OPENBLAS, on by default):
// on this project's reference machine its AVX-512 SGEMM runs the 784x1000 layer
// products about twice as fast as Eigen 3.4's. Products in which one side is a
// vector (batch 1) stay with Eigen, whose GEMV and rank-1 update already run at
// the memory bound. tests/core/gemm_test.cc checks both paths against each other.
//
// Deterministic: the same shapes and inputs give bit-identical results on one
// machine. Not a general BLAS wrapper: A, B and C must not alias.
#ifndef ALIGND_CORE_GEMM_H_
#define ALIGND_CORE_GEMM_H_

#include "core/matrix.h"

namespace alignd::core {

void Gemm(bool trans_a, bool trans_b, float alpha, ConstMatrixRef a, ConstMatrixRef b, float beta,
          MatrixRef c);

// The same product with Eigen only (the reference the tests compare against).
void GemmEigen(bool trans_a, bool trans_b, float alpha, ConstMatrixRef a, ConstMatrixRef b,
               float beta, MatrixRef c);

// "openblas" or "eigen": which library runs the matrix-matrix products.
const char* GemmBackend();

}  // namespace alignd::core

#endif  // ALIGND_CORE_GEMM_H_
