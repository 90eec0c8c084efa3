// The per-example kernels (core/per_example.h) against plain double-precision loops, and the
// identities the trainer relies on: the fused pass's forward product is the plain forward's
// through the updated weights, bit for bit; the same update with and without the forward
// leaves equal matrices equal; skipped columns are untouched.
#include "core/per_example.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/random.h"

namespace alignd::core {
namespace {

// An input with exact zeros in about `zero_share` of its entries (MNIST's pixels).
Vector SparseInput(Rng& rng, Eigen::Index n, double zero_share) {
  Vector x(n);
  rng.FillUniform(x, -1, 1);
  for (Eigen::Index j = 0; j < n; ++j)
    if (rng.Uniform01() < zero_share) x[j] = 0.0f;
  return x;
}

bool SameBits(const float* a, const float* b, Eigen::Index n) {
  return std::memcmp(a, b, sizeof(float) * n) == 0;
}

struct Case {
  Eigen::Index rows, cols;
  double zero_share;
  float keep;
  bool mask;
};

class PerExampleTest : public ::testing::TestWithParam<Case> {};

TEST_P(PerExampleTest, UpdateAndForwardMatchThePlainLoopsAndEachOther) {
  const Case c = GetParam();
  Rng rng(7);
  Matrix w(c.rows, c.cols), m;
  rng.FillUniform(w, -0.5f, 0.5f);
  if (c.mask) {
    m.resize(c.rows, c.cols);
    for (Eigen::Index k = 0; k < m.size(); ++k) m.data()[k] = rng.Uniform01() < 0.3 ? 0.0f : 1.0f;
    w.array() *= m.array();
  }
  Vector d(c.rows);
  rng.FillUniform(d, -1, 1);
  const Vector x = SparseInput(rng, c.cols, c.zero_share);
  const Vector next = SparseInput(rng, c.cols, c.zero_share);
  std::vector<int32_t> scratch;

  // The plain forward against a double loop.
  Vector z(c.rows);
  PerExampleForward(w, x.data(), z.data(), scratch);
  const Eigen::VectorXd z_ref = w.cast<double>() * x.cast<double>();
  EXPECT_LT((z.cast<double>() - z_ref).norm(), 1e-5 * (1 + z_ref.norm()));

  // The update, fused with the next forward.
  ColumnUpdate u;
  u.alpha = -0.05f;
  u.keep = c.keep;
  u.d = d.data();
  u.x = x.data();
  u.next = next.data();
  u.mask = c.mask ? m.data() : nullptr;
  Matrix fused = w, plain = w;
  Vector zn(c.rows);
  PerExampleUpdate(fused, u, zn.data(), scratch);
  PerExampleUpdate(plain, u, nullptr, scratch);
  // Kolen-Pollack's B^T and W: the same update with and without the forward, equal bits.
  EXPECT_TRUE(SameBits(fused.data(), plain.data(), fused.size()));

  // The update against double arithmetic; skipped columns untouched.
  Eigen::MatrixXd want =
      w.cast<double>() * c.keep + double(u.alpha) * d.cast<double>() * x.cast<double>().transpose();
  if (c.mask) want.array() *= m.cast<double>().array();
  EXPECT_LT((fused.cast<double>() - want).norm(), 1e-6 * (1 + want.norm()));
  // Without decay a column of x[j] = 0 keeps its values; one with next[j] = 0 too is not
  // visited at all (its bits stay, -0 included: a masked-out negative weight is -0).
  for (Eigen::Index j = 0; j < c.cols && c.keep == 1.0f; ++j) {
    if (x[j] != 0.0f) continue;
    EXPECT_TRUE(fused.col(j) == w.col(j)) << "column " << j;
    if (next[j] == 0.0f)
      EXPECT_TRUE(SameBits(fused.col(j).data(), w.col(j).data(), c.rows)) << "column " << j;
  }

  // The fused forward is the plain forward through the updated weights, bit for bit.
  Vector zp(c.rows);
  PerExampleForward(fused, next.data(), zp.data(), scratch);
  EXPECT_TRUE(SameBits(zn.data(), zp.data(), c.rows));
  const Eigen::VectorXd zn_ref = fused.cast<double>() * next.cast<double>();
  EXPECT_LT((zn.cast<double>() - zn_ref).norm(), 1e-5 * (1 + zn_ref.norm()));
}

// Shapes with 4-column blocks and remainders, dense and sparse inputs, decay and masks.
INSTANTIATE_TEST_SUITE_P(
    Shapes, PerExampleTest,
    ::testing::Values(Case{1000, 784, 0.81, 1.0f, false}, Case{1000, 784, 0.0, 1.0f, false},
                      Case{10, 1000, 0.0, 0.99f, false}, Case{17, 13, 0.5, 1.0f, true},
                      Case{17, 13, 0.5, 0.999f, true}, Case{3, 1, 0.0, 1.0f, false},
                      Case{33, 7, 1.0, 1.0f, false}, Case{16, 32, 0.3, 1.0f, false},
                      Case{8, 48, 0.3, 0.999f, true}, Case{16, 17, 0.0, 1.0f, true}),
    [](const auto& info) {
      const Case& c = info.param;
      return std::to_string(c.rows) + "x" + std::to_string(c.cols) + "_zeros" +
             std::to_string(int(c.zero_share * 100)) + (c.keep != 1.0f ? "_decay" : "") +
             (c.mask ? "_mask" : "");
    });

// An input of zeros: the forward is +0 everywhere (never -0), and the update moves nothing.
TEST(PerExampleTest, AllZeroInputGivesPositiveZerosAndMovesNothing) {
  Matrix w = Matrix::Constant(5, 4, -0.25f);
  const Vector x = Vector::Zero(4), d = Vector::Constant(5, 1.0f);
  std::vector<int32_t> scratch;
  Vector z(5);
  PerExampleForward(w, x.data(), z.data(), scratch);
  for (Eigen::Index r = 0; r < 5; ++r) EXPECT_FALSE(std::signbit(z[r]));
  ColumnUpdate u;
  u.alpha = -1.0f;
  u.d = d.data();
  u.x = x.data();
  u.next = x.data();
  const Matrix before = w;
  PerExampleUpdate(w, u, z.data(), scratch);
  EXPECT_TRUE(w == before);
  for (Eigen::Index r = 0; r < 5; ++r) EXPECT_EQ(z[r], 0.0f);
}

}  // namespace
}  // namespace alignd::core
