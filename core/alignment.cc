// File: core/alignment.cc
#include "core/alignment.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace alignd::core {
namespace {

constexpr double kDegrees = 180.0 / M_PI;

double AngleDegrees(double dot, double norm_a, double norm_b) {
  const double c = std::clamp(dot / (norm_a * norm_b), -1.0, 1.0);
  return std::acos(c) * kDegrees;
}

}  // namespace

AngleStats ColumnAngles(ConstMatrixRef a, ConstMatrixRef b) {
  assert(a.rows() == b.rows() && a.cols() == b.cols());
  AngleStats s;
  double sum = 0, sum_sq = 0;
  int positive = 0;
  for (Eigen::Index j = 0; j < a.cols(); ++j) {
    const double na = a.col(j).cast<double>().norm();
    const double nb = b.col(j).cast<double>().norm();
    if (na == 0 || nb == 0) continue;
    const double dot = a.col(j).cast<double>().dot(b.col(j).cast<double>());
    const double angle = AngleDegrees(dot, na, nb);
    sum += angle;
    sum_sq += angle * angle;
    positive += dot > 0;
    ++s.count;
  }
  if (s.count > 0) {
    s.mean = sum / s.count;
    s.sd = std::sqrt(std::max(0.0, sum_sq / s.count - s.mean * s.mean));
    s.positive_fraction = static_cast<double>(positive) / s.count;
  }
  return s;
}

double VectorAngle(ConstMatrixRef a, ConstMatrixRef b) {
  assert(a.rows() == b.rows() && a.cols() == b.cols());
  const double na = a.cast<double>().norm(), nb = b.cast<double>().norm();
  if (na == 0 || nb == 0) return std::numeric_limits<double>::quiet_NaN();
  const double dot = (a.cast<double>().array() * b.cast<double>().array()).sum();
  return AngleDegrees(dot, na, nb);
}

}  // namespace alignd::core
