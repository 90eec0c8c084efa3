// Tests for core/alignment.h.
#include "core/alignment.h"

#include <gtest/gtest.h>

#include <cmath>

namespace alignd::core {
namespace {

TEST(AlignmentTest, ColumnAnglesAreUnfoldedDegrees) {
  Matrix a(2, 4), b(2, 4);
  a << 1, 1, 1, 0, 0, 0, 0, 0;
  b << 1, 0, -1, 1, 0, 1, 0, 1;
  // Angles 0, 90, 180; the last column has a zero vector and no angle.
  const AngleStats s = ColumnAngles(a, b);
  EXPECT_EQ(s.count, 3);
  EXPECT_NEAR(s.mean, 90.0, 1e-9);
  EXPECT_NEAR(s.sd, std::sqrt((90.0 * 90 + 0 + 90.0 * 90) / 3), 1e-9);
  EXPECT_NEAR(s.positive_fraction, 1.0 / 3, 1e-12);
}

TEST(AlignmentTest, VectorAngle) {
  Matrix a(2, 2), b(2, 2);
  a << 1, 0, 0, 1;
  b << 1, 0, 0, -1;
  EXPECT_NEAR(VectorAngle(a, b), 90.0, 1e-9);
  EXPECT_NEAR(VectorAngle(a, a), 0.0, 1e-4);
  EXPECT_NEAR(VectorAngle(a, -a), 180.0, 1e-4);
  EXPECT_TRUE(std::isnan(VectorAngle(a, Matrix::Zero(2, 2))));
}

TEST(AlignmentTest, AllZeroColumnsGiveNaN) {
  const AngleStats s = ColumnAngles(Matrix::Zero(3, 2), Matrix::Ones(3, 2));
  EXPECT_EQ(s.count, 0);
  EXPECT_TRUE(std::isnan(s.mean));
}

}  // namespace
}  // namespace alignd::core
