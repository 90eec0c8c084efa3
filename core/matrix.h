// File: core/matrix.h
// -----------------------------------------------------------------------------
// The engine's Eigen vocabulary (after ceres-solver's internal/eigen.h). Every
// matrix is float32 and column-major, laid out features x batch: a batch `X` of n
// examples with `in` features is `in x n`, a weight matrix `W` is `out x in`, so a
// layer is `Z = W * X` and a wire batch of n rows of `in` floats is the same bytes
// as a column-major `in x n` matrix (Map it, do not copy it).
#ifndef ALIGND_CORE_MATRIX_H_
#define ALIGND_CORE_MATRIX_H_

#include <Eigen/Core>
#include <cstdint>
#include <cstring>

namespace alignd::core {

using Matrix = Eigen::MatrixXf;  // column-major
using Vector = Eigen::VectorXf;  // column vector
using RowVector = Eigen::RowVectorXf;
using MatrixRef = Eigen::Ref<Matrix>;
using ConstMatrixRef = const Eigen::Ref<const Matrix>&;
using MatrixMap = Eigen::Map<Matrix>;
using ConstMatrixMap = Eigen::Map<const Matrix>;

// Whether every entry is finite (no NaN, no Inf), from the floats' exponent bits in a loop
// the compiler vectorises. Eigen 3.4's allFinite() computes (x - x) == (x - x) over the whole
// matrix: 420 us on a 784 x 1000 batch here against 31 us, and Predict checks every request.
inline bool AllFinite(ConstMatrixRef m) {
  uint32_t bad = 0;
  auto scan = [&bad](const float* p, Eigen::Index n) {
    for (Eigen::Index i = 0; i < n; ++i) {
      uint32_t u;
      std::memcpy(&u, p + i, sizeof u);
      bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
  };
  if (m.outerStride() == m.rows())
    scan(m.data(), m.size());
  else
    for (Eigen::Index j = 0; j < m.cols(); ++j) scan(m.data() + j * m.outerStride(), m.rows());
  return bad == 0;
}

}  // namespace alignd::core

#endif  // ALIGND_CORE_MATRIX_H_
