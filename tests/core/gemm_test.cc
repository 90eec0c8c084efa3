// core/gemm.h: the OpenBLAS path (when built) against Eigen's, for every transpose,
// alpha/beta combination and the shapes the engine uses, including vectors.
#include "core/gemm.h"

#include <string>
#include <tuple>

#include <gtest/gtest.h>

#include "core/random.h"

namespace alignd::core {
namespace {

TEST(GemmTest, MatchesEigenOnEveryShapeAndTranspose) {
  Rng rng(9);
  const std::tuple<int, int, int> kShapes[] = {
      {1000, 32, 784}, {10, 128, 1000}, {1000, 1, 784}, {1, 1000, 10}, {17, 5, 3}, {3, 7, 1}};
  for (const auto& [m, n, k] : kShapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (const auto& [alpha, beta] : {std::pair{1.0f, 0.0f}, std::pair{-0.5f, 1.0f},
                                          std::pair{2.0f, 0.25f}}) {
          SCOPED_TRACE(testing::Message() << m << "x" << n << "x" << k << " ta=" << ta
                                          << " tb=" << tb << " alpha=" << alpha << " beta=" << beta);
          Matrix a = ta ? Matrix(k, m) : Matrix(m, k);
          Matrix b = tb ? Matrix(n, k) : Matrix(k, n);
          Matrix c0(m, n);
          rng.FillUniform(a, -1, 1);
          rng.FillUniform(b, -1, 1);
          rng.FillUniform(c0, -1, 1);
          Matrix c = c0, ref = c0;
          Gemm(ta, tb, alpha, a, b, beta, c);
          GemmEigen(ta, tb, alpha, a, b, beta, ref);
          // Plain loop as the independent reference for Eigen itself.
          Matrix naive = beta * c0;
          for (int i = 0; i < m; ++i)
            for (int j = 0; j < n; ++j) {
              double s = 0;
              for (int p = 0; p < k; ++p)
                s += double(ta ? a(p, i) : a(i, p)) * double(tb ? b(j, p) : b(p, j));
              naive(i, j) += alpha * static_cast<float>(s);
            }
          const float scale = std::sqrt(float(k)) * 1e-5f * std::max(1.0f, std::abs(alpha));
          EXPECT_LT((c - ref).cwiseAbs().maxCoeff(), scale * 4);
          EXPECT_LT((ref - naive).cwiseAbs().maxCoeff(), scale * 4);
        }
}

TEST(GemmTest, WorksOnBlocksWithAnOuterStride) {
  Rng rng(2);
  Matrix a(40, 30), b(30, 50), c = Matrix::Zero(60, 50);
  rng.FillUniform(a, -1, 1);
  rng.FillUniform(b, -1, 1);
  Gemm(false, false, 1.0f, a.topRows(20), b, 0.0f, c.middleRows(5, 20));
  Matrix ref = a.topRows(20) * b;
  EXPECT_LT((c.middleRows(5, 20) - ref).cwiseAbs().maxCoeff(), 1e-4f);
  EXPECT_EQ(c.topRows(5).cwiseAbs().maxCoeff(), 0.0f);
  EXPECT_EQ(c.bottomRows(35).cwiseAbs().maxCoeff(), 0.0f);
}

TEST(GemmTest, IsDeterministic) {
  Rng rng(3);
  Matrix a(1000, 784), b(784, 32), c1(1000, 32), c2(1000, 32);
  rng.FillUniform(a, -1, 1);
  rng.FillUniform(b, -1, 1);
  Gemm(false, false, 1.0f, a, b, 0.0f, c1);
  Gemm(false, false, 1.0f, a, b, 0.0f, c2);
  EXPECT_TRUE(c1 == c2);
  RecordProperty("backend", GemmBackend());
}

}  // namespace
}  // namespace alignd::core
