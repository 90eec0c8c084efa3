// File: core/gemm.cc
#include "core/gemm.h"

#include <cassert>

#ifdef ALIGND_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace alignd::core {
namespace {

template <typename A, typename B>
void Accumulate(float alpha, const A& a, const B& b, float beta, MatrixRef c) {
  if (beta == 0.0f) {
    c.noalias() = alpha * a * b;
  } else {
    if (beta != 1.0f) c *= beta;
    c.noalias() += alpha * a * b;
  }
}

}  // namespace

void GemmEigen(bool trans_a, bool trans_b, float alpha, ConstMatrixRef a, ConstMatrixRef b,
               float beta, MatrixRef c) {
  if (!trans_a && !trans_b) Accumulate(alpha, a, b, beta, c);
  else if (trans_a && !trans_b) Accumulate(alpha, a.transpose(), b, beta, c);
  else if (!trans_a && trans_b) Accumulate(alpha, a, b.transpose(), beta, c);
  else Accumulate(alpha, a.transpose(), b.transpose(), beta, c);
}

void Gemm(bool trans_a, bool trans_b, float alpha, ConstMatrixRef a, ConstMatrixRef b, float beta,
          MatrixRef c) {
  const Eigen::Index m = c.rows(), n = c.cols();
  const Eigen::Index k = trans_a ? a.rows() : a.cols();
  assert((trans_a ? a.cols() : a.rows()) == m);
  assert((trans_b ? b.rows() : b.cols()) == n);
  assert((trans_b ? b.cols() : b.rows()) == k);
#ifdef ALIGND_HAVE_OPENBLAS
  if (m > 1 && n > 1 && k > 1) {
    cblas_sgemm(CblasColMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
                static_cast<blasint>(n), static_cast<blasint>(k), alpha, a.data(),
                static_cast<blasint>(a.outerStride()), b.data(),
                static_cast<blasint>(b.outerStride()), beta, c.data(),
                static_cast<blasint>(c.outerStride()));
    return;
  }
#endif
  (void)m, (void)n, (void)k;
  GemmEigen(trans_a, trans_b, alpha, a, b, beta, c);
}

const char* GemmBackend() {
#ifdef ALIGND_HAVE_OPENBLAS
  return "openblas";
#else
  return "eigen";
#endif
}

}  // namespace alignd::core
