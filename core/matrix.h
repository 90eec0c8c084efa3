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

namespace alignd::core {

using Matrix = Eigen::MatrixXf;  // column-major
using Vector = Eigen::VectorXf;  // column vector
using RowVector = Eigen::RowVectorXf;
using MatrixRef = Eigen::Ref<Matrix>;
using ConstMatrixRef = const Eigen::Ref<const Matrix>&;
using MatrixMap = Eigen::Map<Matrix>;
using ConstMatrixMap = Eigen::Map<const Matrix>;

}  // namespace alignd::core

#endif  // ALIGND_CORE_MATRIX_H_
