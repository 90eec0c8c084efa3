// File: core/layers.cc
#include "core/layers.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "core/gemm.h"

namespace alignd::core {

void Activate(Activation act, const Matrix& z, Matrix& a) {
  switch (act) {
    case Activation::kLinear:
      a = z;
      break;
    case Activation::kTanh:
      a.array() = z.array().tanh();
      break;
    case Activation::kLogistic:
      a.array() = z.array().logistic();
      break;
    case Activation::kRelu:
      a.array() = z.array().cwiseMax(0.0f);
      break;
    case Activation::kSoftmax:
      for (Eigen::Index j = 0; j < z.cols(); ++j) {
        const float m = z.col(j).maxCoeff();
        a.col(j).array() = (z.col(j).array() - m).exp();
        a.col(j) /= a.col(j).sum();
      }
      break;
  }
}

void MultiplyByDerivative(Activation act, const Matrix& a, Matrix& d) {
  switch (act) {
    case Activation::kLinear:
      break;
    case Activation::kTanh:
      d.array() *= 1.0f - a.array().square();
      break;
    case Activation::kLogistic:
      d.array() *= a.array() * (1.0f - a.array());
      break;
    case Activation::kRelu:
      d.array() *= (a.array() > 0.0f).cast<float>();
      break;
    case Activation::kSoftmax:
      assert(false);
      break;
  }
}

double LossAndDelta(const NetworkConfig& net, const Matrix& y, const Matrix& z, ConstMatrixRef t,
                    Matrix& delta) {
  const Eigen::Index n = y.cols();
  double loss = 0;
  if (net.loss == Loss::kSquaredError) {
    delta = y - t;
    loss = 0.5 * delta.cast<double>().squaredNorm();
    if (net.output == Activation::kSoftmax) {
      for (Eigen::Index j = 0; j < n; ++j) {
        const float s = y.col(j).dot(delta.col(j));
        delta.col(j).array() = y.col(j).array() * (delta.col(j).array() - s);
      }
    } else {
      MultiplyByDerivative(net.output, y, delta);
    }
  } else if (net.output == Activation::kSoftmax) {
    // -sum_k t_k log softmax(z)_k = sum_k t_k (logsumexp(z) - z_k)
    for (Eigen::Index j = 0; j < n; ++j) {
      const float m = z.col(j).maxCoeff();
      const double lse = m + std::log(static_cast<double>((z.col(j).array() - m).exp().sum()));
      loss += lse * t.col(j).cast<double>().sum() -
              t.col(j).cast<double>().dot(z.col(j).cast<double>());
    }
    delta = y - t;
  } else {  // logistic outputs, binary cross-entropy per unit: softplus(z) - t z
    for (Eigen::Index j = 0; j < n; ++j)
      for (Eigen::Index i = 0; i < y.rows(); ++i) {
        const double zi = z(i, j);
        loss += std::max(zi, 0.0) + std::log1p(std::exp(-std::abs(zi))) - t(i, j) * zi;
      }
    delta = y - t;
  }
  return loss / static_cast<double>(n);
}

int ArgMax(const Eigen::Ref<const Vector>& v) {
  Eigen::Index k = 0;
  v.maxCoeff(&k);
  return static_cast<int>(k);
}

void Forward(const NetworkConfig& net, const std::vector<Matrix>& w, const std::vector<Vector>& b,
             ConstMatrixRef x, std::vector<Matrix>& a, std::vector<Matrix>& z) {
  const int L = static_cast<int>(w.size());
  for (int i = 0; i < L; ++i) {
    if (i == 0)
      Gemm(false, false, 1.0f, w[0], x, 0.0f, z[1]);
    else
      Gemm(false, false, 1.0f, w[i], a[i], 0.0f, z[i + 1]);
    if (net.bias) z[i + 1].colwise() += b[i];
    Activate(i + 1 == L ? net.output : net.hidden, z[i + 1], a[i + 1]);
  }
}

}  // namespace alignd::core
