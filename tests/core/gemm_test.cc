// core/gemm.h: the library path (oneDNN, when built) against Eigen's and a plain
// loop, for every transpose, alpha/beta combination and the shapes the engine uses,
// including vectors; and products from several threads at once against a
// one-thread reference (Debian's serial OpenBLAS, used before, failed that).
#include "core/gemm.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "core/random.h"

namespace alignd::core {
namespace {

TEST(GemmTest, MatchesEigenOnEveryShapeAndTranspose) {
  Rng rng(9);
  const std::tuple<int, int, int> kShapes[] = {{1000, 32, 784}, {10, 128, 1000}, {1000, 1, 784},
                                               {1, 1000, 10},   {17, 5, 3},      {3, 7, 1}};
  for (const auto& [m, n, k] : kShapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (const auto& [alpha, beta] :
             {std::pair{1.0f, 0.0f}, std::pair{-0.5f, 1.0f}, std::pair{2.0f, 0.25f}}) {
          SCOPED_TRACE(testing::Message() << m << "x" << n << "x" << k << " ta=" << ta << " tb="
                                          << tb << " alpha=" << alpha << " beta=" << beta);
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

// Four threads multiply the same inputs at once, each many times, on the shapes of
// the engine's small and large layers; every product must equal, bit for bit, the
// one computed alone beforehand.
TEST(GemmTest, ProductsFromFourThreadsAtOnceEqualTheOneThreadReference) {
  struct Case {
    int m, n, k;
    bool ta, tb;
    int repeats;
  };
  const Case kCases[] = {{128, 16, 128, false, false, 5000},
                         {1000, 32, 784, false, false, 40},
                         {784, 32, 1000, true, false, 40},
                         {1000, 784, 32, false, true, 20}};
  Rng rng(11);
  for (const Case& c : kCases) {
    SCOPED_TRACE(testing::Message()
                 << c.m << "x" << c.n << "x" << c.k << " ta=" << c.ta << " tb=" << c.tb);
    Matrix a = c.ta ? Matrix(c.k, c.m) : Matrix(c.m, c.k);
    Matrix b = c.tb ? Matrix(c.n, c.k) : Matrix(c.k, c.n);
    rng.FillUniform(a, -1, 1);
    rng.FillUniform(b, -1, 1);
    Matrix ref(c.m, c.n);
    Gemm(c.ta, c.tb, 1.0f, a, b, 0.0f, ref);
    std::atomic<long> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        Matrix out(c.m, c.n);
        for (int r = 0; r < c.repeats; ++r) {
          Gemm(c.ta, c.tb, 1.0f, a, b, 0.0f, out);
          if (!(out == ref)) wrong.fetch_add(1);
        }
      });
    for (auto& t : threads) t.join();
    EXPECT_EQ(wrong.load(), 0) << "products differing from the one-thread reference";
  }
}

// The thread setting is per calling thread, and a product on two threads is still a
// correct product (close to one thread's; equal bits are only promised per thread count).
TEST(GemmTest, ThreadCountIsPerCallingThread) {
  EXPECT_EQ(GemmThreads(), 1);
  SetGemmThreads(2);
  EXPECT_EQ(GemmThreads(), 2);
  int other = 0;
  std::thread([&] { other = GemmThreads(); }).join();
  EXPECT_EQ(other, 1);
  Rng rng(4);
  Matrix a(500, 300), b(300, 64), two(500, 64), one(500, 64);
  rng.FillUniform(a, -1, 1);
  rng.FillUniform(b, -1, 1);
  Gemm(false, false, 1.0f, a, b, 0.0f, two);
  Matrix two_again(500, 64);
  Gemm(false, false, 1.0f, a, b, 0.0f, two_again);
  EXPECT_TRUE(two == two_again);
  SetGemmThreads(1);
  Gemm(false, false, 1.0f, a, b, 0.0f, one);
  EXPECT_LT((one - two).cwiseAbs().maxCoeff(), 1e-3f);
}

}  // namespace
}  // namespace alignd::core
