// core/conv.h: the library path (oneDNN, when built) and the im2col reference against a
// plain double-precision loop on LeNet's shapes, strides, paddings, non-square and 1x1
// kernels; the backward passes as the adjoints of the forward; pooling's routing and its
// finite-difference gradient; bit-identical results per thread count, also from several
// threads at once. (That a cached call allocates nothing: tests/core/no_malloc_test.cc.)
#include "core/conv.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "core/gemm.h"
#include "core/random.h"

namespace alignd::core {
namespace {

using MatrixD = Eigen::MatrixXd;

// Calls f(o, k, z index, x index) for every tap of the convolution that falls inside the
// input (k = w's column), straight from the definition in core/conv.h.
template <typename F>
void ForEachTap(const ConvShape& s, F&& f) {
  for (int o = 0; o < s.out_c; ++o)
    for (int y = 0; y < s.out_h(); ++y)
      for (int x = 0; x < s.out_w(); ++x)
        for (int i = 0; i < s.in_c; ++i)
          for (int r = 0; r < s.kernel_h; ++r)
            for (int c = 0; c < s.kernel_w; ++c) {
              const int iy = y * s.stride - s.padding + r, ix = x * s.stride - s.padding + c;
              if (iy < 0 || iy >= s.in_h || ix < 0 || ix >= s.in_w) continue;
              f(o, (i * s.kernel_h + r) * s.kernel_w + c, (o * s.out_h() + y) * s.out_w() + x,
                (i * s.in_h + iy) * s.in_w + ix);
            }
}

MatrixD NaiveForward(const ConvShape& s, const Matrix& x, const Matrix& w, const Vector& b) {
  MatrixD z(s.out_size(), x.cols());
  for (int j = 0; j < x.cols(); ++j) {
    for (int q = 0; q < s.out_size(); ++q) z(q, j) = b(q / (s.out_h() * s.out_w()));
    ForEachTap(s, [&](int o, int k, int zi, int xi) { z(zi, j) += double(w(o, k)) * x(xi, j); });
  }
  return z;
}

MatrixD NaiveBackwardData(const ConvShape& s, const Matrix& dz, const Matrix& m) {
  MatrixD dx = MatrixD::Zero(s.in_size(), dz.cols());
  for (int j = 0; j < dz.cols(); ++j)
    ForEachTap(s, [&](int o, int k, int zi, int xi) { dx(xi, j) += double(m(o, k)) * dz(zi, j); });
  return dx;
}

void NaiveBackwardWeights(const ConvShape& s, const Matrix& x, const Matrix& dz, MatrixD* dw,
                          Eigen::VectorXd* db) {
  *dw = MatrixD::Zero(s.out_c, s.kernel_size());
  *db = Eigen::VectorXd::Zero(s.out_c);
  for (int j = 0; j < x.cols(); ++j) {
    ForEachTap(s,
               [&](int o, int k, int zi, int xi) { (*dw)(o, k) += double(x(xi, j)) * dz(zi, j); });
    for (int q = 0; q < s.out_size(); ++q) (*db)(q / (s.out_h() * s.out_w())) += dz(q, j);
  }
}

double MaxDiff(const Matrix& a, const MatrixD& b) {
  return (a.cast<double>() - b).cwiseAbs().maxCoeff();
}
// As gemm_test: a sum of k products of U(-1, 1) entries.
double Tolerance(int64_t k) { return std::sqrt(double(k)) * 1e-5 * 4; }

struct Case {
  std::string name;
  ConvShape s;
};

std::vector<Case> Cases() {
  auto shape = [](int in_c, int in_h, int in_w, int out_c, int kh, int kw, int stride, int pad) {
    ConvShape s;
    s.in_c = in_c, s.in_h = in_h, s.in_w = in_w, s.out_c = out_c;
    s.kernel_h = kh, s.kernel_w = kw, s.stride = stride, s.padding = pad;
    return s;
  };
  return {{"lenet_conv1", shape(1, 32, 32, 6, 5, 5, 1, 0)},
          {"lenet_conv2", shape(6, 14, 14, 16, 5, 5, 1, 0)},
          {"stride2_pad1", shape(3, 9, 9, 4, 3, 3, 2, 1)},
          {"stride2_pad2_even", shape(2, 10, 8, 5, 5, 5, 2, 2)},
          {"kernel3x1_pad2", shape(2, 8, 7, 5, 3, 1, 1, 2)},
          {"kernel1x1", shape(4, 6, 6, 3, 1, 1, 1, 0)},
          {"kernel1x1_stride2", shape(3, 6, 7, 2, 1, 1, 2, 0)}};
}

TEST(ConvTest, LibraryAndReferenceMatchAPlainLoop) {
  Rng rng(5);
  for (const Case& c : Cases())
    for (int n : {1, 7}) {
      const ConvShape& s = c.s;
      SCOPED_TRACE(testing::Message() << c.name << " n=" << n);
      Matrix x(s.in_size(), n), w(s.out_c, s.kernel_size()), dz(s.out_size(), n);
      Vector b(s.out_c);
      rng.FillUniform(x, -1, 1);
      rng.FillUniform(w, -1, 1);
      rng.FillUniform(dz, -1, 1);
      rng.FillUniform(b, -1, 1);
      // Forward, with and without bias.
      const MatrixD z_ref = NaiveForward(s, x, w, b);
      const MatrixD z_nobias = NaiveForward(s, x, w, Vector::Zero(s.out_c));
      Matrix z(s.out_size(), n), z_eigen(s.out_size(), n);
      const double tol_f = Tolerance(s.kernel_size() + 1);
      ConvForward(s, x, w, &b, z);
      ConvForwardReference(s, x, w, &b, z_eigen);
      EXPECT_LT(MaxDiff(z, z_ref), tol_f);
      EXPECT_LT(MaxDiff(z_eigen, z_ref), tol_f);
      ConvForward(s, x, w, nullptr, z);
      ConvForwardReference(s, x, w, nullptr, z_eigen);
      EXPECT_LT(MaxDiff(z, z_nobias), tol_f);
      EXPECT_LT(MaxDiff(z_eigen, z_nobias), tol_f);
      // Backward-data, with w and with another kernel in its place.
      Matrix m(s.out_c, s.kernel_size());
      rng.FillUniform(m, -1, 1);
      const double tol_d = Tolerance(int64_t(s.out_c) * s.kernel_h * s.kernel_w);
      for (const Matrix* k : {&w, &m}) {
        const MatrixD dx_ref = NaiveBackwardData(s, dz, *k);
        Matrix dx = Matrix::Constant(s.in_size(), n, 7), dx_eigen = dx;
        ConvBackwardData(s, dz, *k, dx);
        ConvBackwardDataReference(s, dz, *k, dx_eigen);
        EXPECT_LT(MaxDiff(dx, dx_ref), tol_d);
        EXPECT_LT(MaxDiff(dx_eigen, dx_ref), tol_d);
      }
      // Backward-weights: sums over the batch, with and without the bias gradient.
      MatrixD dw_ref;
      Eigen::VectorXd db_ref;
      NaiveBackwardWeights(s, x, dz, &dw_ref, &db_ref);
      const double tol_w = Tolerance(int64_t(n) * s.out_h() * s.out_w());
      Matrix dw = Matrix::Constant(s.out_c, s.kernel_size(), 7), dw_eigen = dw;
      Vector db = Vector::Constant(s.out_c, 7), db_eigen = db;
      ConvBackwardWeights(s, x, dz, dw, &db);
      ConvBackwardWeightsReference(s, x, dz, dw_eigen, &db_eigen);
      EXPECT_LT(MaxDiff(dw, dw_ref), tol_w);
      EXPECT_LT(MaxDiff(dw_eigen, dw_ref), tol_w);
      EXPECT_LT(MaxDiff(db, db_ref), tol_w);
      EXPECT_LT(MaxDiff(db_eigen, db_ref), tol_w);
      dw.setConstant(7);
      ConvBackwardWeights(s, x, dz, dw, nullptr);
      EXPECT_LT(MaxDiff(dw, dw_ref), tol_w);
    }
}

// <dz, conv(x, w)> = <conv_bwd_data(dz, w), x> = <conv_bwd_weights(x, dz), w>, both paths.
TEST(ConvTest, BackwardPassesAreTheAdjointsOfTheForward) {
  Rng rng(6);
  for (const Case& c : Cases()) {
    const ConvShape& s = c.s;
    SCOPED_TRACE(c.name);
    const int n = 3;
    Matrix x(s.in_size(), n), w(s.out_c, s.kernel_size()), dz(s.out_size(), n);
    rng.FillUniform(x, -1, 1);
    rng.FillUniform(w, -1, 1);
    rng.FillUniform(dz, -1, 1);
    for (bool library : {true, false}) {
      Matrix z(s.out_size(), n), dx(s.in_size(), n), dw(s.out_c, s.kernel_size());
      if (library) {
        ConvForward(s, x, w, nullptr, z);
        ConvBackwardData(s, dz, w, dx);
        ConvBackwardWeights(s, x, dz, dw, nullptr);
      } else {
        ConvForwardReference(s, x, w, nullptr, z);
        ConvBackwardDataReference(s, dz, w, dx);
        ConvBackwardWeightsReference(s, x, dz, dw, nullptr);
      }
      const double forward = (dz.cast<double>().array() * z.cast<double>().array()).sum();
      const double data = (dx.cast<double>().array() * x.cast<double>().array()).sum();
      const double weights = (dw.cast<double>().array() * w.cast<double>().array()).sum();
      const double tol = 1e-5 * double(z.size() + x.size()) + 1e-4;
      EXPECT_NEAR(data, forward, tol) << "library=" << library;
      EXPECT_NEAR(weights, forward, tol) << "library=" << library;
    }
  }
}

TEST(ConvTest, OneByOneConvolutionOfAOneByOneImageIsTheDenseProduct) {
  Rng rng(7);
  ConvShape s;
  s.in_c = 5, s.out_c = 4;
  Matrix x(5, 3), w(4, 5);
  Vector b(4);
  rng.FillUniform(x, -1, 1);
  rng.FillUniform(w, -1, 1);
  rng.FillUniform(b, -1, 1);
  Matrix dense = w * x;
  dense.colwise() += b;
  Matrix z(4, 3), z_eigen(4, 3);
  ConvForward(s, x, w, &b, z);
  ConvForwardReference(s, x, w, &b, z_eigen);
  EXPECT_LT((z - dense).cwiseAbs().maxCoeff(), 1e-5f);
  EXPECT_LT((z_eigen - dense).cwiseAbs().maxCoeff(), 1e-5f);
}

// Blocks with an outer stride are taken (the library path hands them to the reference).
TEST(ConvTest, WorksOnBlocksWithAnOuterStride) {
  Rng rng(8);
  const ConvShape s = Cases()[2].s;
  Matrix big_x(s.in_size() + 3, 4), w(s.out_c, s.kernel_size()), big_z(s.out_size() + 5, 4);
  rng.FillUniform(big_x, -1, 1);
  rng.FillUniform(w, -1, 1);
  big_z.setZero();
  Matrix x = big_x.topRows(s.in_size()), z(s.out_size(), 4);
  ConvForward(s, big_x.topRows(s.in_size()), w, nullptr, big_z.middleRows(2, s.out_size()));
  ConvForward(s, x, w, nullptr, z);
  EXPECT_LT((big_z.middleRows(2, s.out_size()) - z).cwiseAbs().maxCoeff(), 1e-5f);
  EXPECT_EQ(big_z.topRows(2).cwiseAbs().maxCoeff(), 0.0f);
  EXPECT_EQ(big_z.bottomRows(3).cwiseAbs().maxCoeff(), 0.0f);
}

// The three passes of a shape, for the determinism tests.
struct Passes {
  Matrix z, dx, dw;
  Vector db;
  bool operator==(const Passes& o) const {
    return z == o.z && dx == o.dx && dw == o.dw && db == o.db;
  }
};

Passes RunPasses(const ConvShape& s, const Matrix& x, const Matrix& w, const Vector& b,
                 const Matrix& dz) {
  Passes p{Matrix(s.out_size(), x.cols()), Matrix(s.in_size(), x.cols()),
           Matrix(s.out_c, s.kernel_size()), Vector(s.out_c)};
  ConvForward(s, x, w, &b, p.z);
  ConvBackwardData(s, dz, w, p.dx);
  ConvBackwardWeights(s, x, dz, p.dw, &p.db);
  return p;
}

TEST(ConvTest, RepeatedCallsAreBitIdenticalPerThreadCount) {
  Rng rng(9);
  for (int threads : {1, 2}) {
    SetGemmThreads(threads);
    for (const Case& c : {Cases()[0], Cases()[1], Cases()[2]}) {
      SCOPED_TRACE(testing::Message() << c.name << " threads=" << threads);
      const ConvShape& s = c.s;
      Matrix x(s.in_size(), 64), w(s.out_c, s.kernel_size()), dz(s.out_size(), 64);
      Vector b(s.out_c);
      rng.FillUniform(x, -1, 1);
      rng.FillUniform(w, -1, 1);
      rng.FillUniform(dz, -1, 1);
      rng.FillUniform(b, -1, 1);
      const Passes first = RunPasses(s, x, w, b, dz);
      for (int r = 0; r < 3; ++r) EXPECT_TRUE(RunPasses(s, x, w, b, dz) == first);
    }
  }
  SetGemmThreads(1);
}

// Four threads run the same passes at once, each many times: every result equals, bit for
// bit, the one computed alone beforehand.
TEST(ConvTest, PassesFromFourThreadsAtOnceEqualTheOneThreadReference) {
  Rng rng(10);
  for (const Case& c : {Cases()[0], Cases()[1]}) {
    SCOPED_TRACE(c.name);
    const ConvShape& s = c.s;
    Matrix x(s.in_size(), 16), w(s.out_c, s.kernel_size()), dz(s.out_size(), 16);
    Vector b(s.out_c);
    rng.FillUniform(x, -1, 1);
    rng.FillUniform(w, -1, 1);
    rng.FillUniform(dz, -1, 1);
    rng.FillUniform(b, -1, 1);
    const Passes ref = RunPasses(s, x, w, b, dz);
    std::atomic<long> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        for (int r = 0; r < 50; ++r)
          if (!(RunPasses(s, x, w, b, dz) == ref)) wrong.fetch_add(1);
      });
    for (auto& t : threads) t.join();
    EXPECT_EQ(wrong.load(), 0) << "results differing from the one-thread reference";
  }
}

TEST(ConvTest, ReportsTheImplementations) {
  ConvShape conv1, conv2;
  conv1.in_h = conv1.in_w = 32, conv1.out_c = 6, conv1.kernel_h = conv1.kernel_w = 5;
  conv2.in_c = 6, conv2.in_h = conv2.in_w = 14, conv2.out_c = 16;
  conv2.kernel_h = conv2.kernel_w = 5;
  for (int n : {1, 64, 256}) {
    const std::string a = ConvForwardImplementation(conv1, n);
    const std::string b = ConvForwardImplementation(conv2, n);
    EXPECT_FALSE(a.empty());
    RecordProperty("conv1_n" + std::to_string(n), a);
    RecordProperty("conv2_n" + std::to_string(n), b);
    std::cout << ConvBackend() << " n=" << n << ": conv1 " << a << ", conv2 " << b << "\n";
  }
}

// A thread that convolves many batch widths (Predict's and Evaluate's last chunks) keeps at
// most 16 built, the least recently used going first, and every call stays right.
TEST(ConvTest, TheCacheOfBuiltConvolutionsIsBounded) {
  std::thread([] {
    ConvShape s;
    s.in_c = 2, s.in_h = s.in_w = 9, s.out_c = 3, s.kernel_h = s.kernel_w = 3;
    Rng rng(4);
    Matrix w(s.out_c, s.kernel_size());
    rng.FillUniform(w, -1, 1);
    for (int n = 1; n <= 40; ++n) {
      Matrix x(s.in_size(), n), z(s.out_size(), n), ref(s.out_size(), n);
      rng.FillUniform(x, -1, 1);
      ConvForward(s, x, w, nullptr, z);
      ConvForwardReference(s, x, w, nullptr, ref);
      ASSERT_LT((z - ref).cwiseAbs().maxCoeff(), 1e-4f) << "n = " << n;
      EXPECT_LE(CachedConvolutions(), 16u);
    }
    if (std::string(ConvBackend()) == "onednn") {
      EXPECT_EQ(CachedConvolutions(), 16u);
    }
  }).join();
}

// Pooling.

Matrix PoolForwardOf(const PoolShape& s, const Matrix& x) {
  Matrix y(s.out_size(), x.cols());
  PoolForward(s, x, y);
  return y;
}

Matrix PoolBackwardOf(const PoolShape& s, const Matrix& x, const Matrix& dy) {
  Matrix dx = Matrix::Constant(s.in_size(), x.cols(), 7);  // overwritten
  PoolBackward(s, x, dy, dx);
  return dx;
}

TEST(PoolTest, MaxRoutesTheGradientToTheFirstLargestEntry) {
  PoolShape s;
  s.c = 2, s.in_h = 4, s.in_w = 4, s.window = 2, s.stride = 2;
  // Channel 0: a clear maximum in each window. Channel 1: ties, the first in row-major order
  // wins: {3,3;1,3} -> (0,0); {1,5;5,5} -> (0,1); {0,0;0,0} -> (0,0); {1,2;4,4} -> (1,0).
  const float image[2][4][4] = {{{1, 2, 9, 0}, {3, 4, 1, 1}, {0, 0, 2, 2}, {8, 0, 2, 5}},
                                {{3, 3, 1, 5}, {1, 3, 5, 5}, {0, 0, 1, 2}, {0, 0, 4, 4}}};
  Matrix x(32, 1);
  for (int c = 0; c < 2; ++c)
    for (int y = 0; y < 4; ++y)
      for (int w = 0; w < 4; ++w) x((c * 4 + y) * 4 + w, 0) = image[c][y][w];
  const int argmax[8][2] = {{1, 1}, {0, 2}, {3, 0}, {3, 3}, {0, 0}, {0, 3}, {2, 0}, {3, 2}};
  Matrix dy(8, 1);
  for (int o = 0; o < 8; ++o) dy(o, 0) = 10.0f + o;
  const Matrix y = PoolForwardOf(s, x), dx = PoolBackwardOf(s, x, dy);
  Matrix expected = Matrix::Zero(32, 1);
  for (int o = 0; o < 8; ++o) {
    const int at = ((o / 4) * 4 + argmax[o][0]) * 4 + argmax[o][1];
    EXPECT_EQ(y(o, 0), x(at, 0)) << o;
    expected(at, 0) = dy(o, 0);
  }
  EXPECT_TRUE(dx == expected) << dx.transpose();
}

// LeNet's 2x2 max pooling has loops of its own (core/conv.cc): bit for bit the general rule,
// checked against a plain loop of it on odd sizes (a row and a column no window covers), ties,
// NaN, infinities and signed zeros, in values and in gradients.
TEST(PoolTest, TheTwoByTwoMaxPathIsTheGeneralRuleBitForBit) {
  PoolShape s;
  s.c = 3, s.in_h = 7, s.in_w = 9, s.window = 2, s.stride = 2;
  const int n = 4;
  Rng rng(21);
  Matrix x(s.in_size(), n), dy(s.out_size(), n);
  rng.FillUniform(x, -1, 1);
  rng.FillUniform(dy, -1, 1);
  const float special[] = {0.0f, -0.0f, 1.0f, 1.0f, std::nanf(""), INFINITY, -INFINITY, 0.5f};
  for (int64_t i = 0; i < x.size(); i += 3) x.data()[i] = special[(i / 3) % 8];
  for (int64_t i = 0; i < dy.size(); i += 5) dy.data()[i] = i % 2 ? -0.0f : 0.0f;
  Matrix y_ref(s.out_size(), n), dx_ref = Matrix::Zero(s.in_size(), n);
  for (int j = 0; j < n; ++j)
    for (int c = 0; c < s.c; ++c)
      for (int oy = 0; oy < s.out_h(); ++oy)
        for (int ox = 0; ox < s.out_w(); ++ox) {
          int64_t best = (int64_t(c) * s.in_h + 2 * oy) * s.in_w + 2 * ox;
          for (int r = 0; r < 2; ++r)
            for (int q = 0; q < 2; ++q) {
              const int64_t at = (int64_t(c) * s.in_h + 2 * oy + r) * s.in_w + 2 * ox + q;
              if (x(at, j) > x(best, j)) best = at;
            }
          const int64_t o = (int64_t(c) * s.out_h() + oy) * s.out_w() + ox;
          y_ref(o, j) = x(best, j);
          dx_ref(best, j) += dy(o, j);
        }
  const Matrix y = PoolForwardOf(s, x), dx = PoolBackwardOf(s, x, dy);
  EXPECT_EQ(std::memcmp(y.data(), y_ref.data(), sizeof(float) * y.size()), 0);
  EXPECT_EQ(std::memcmp(dx.data(), dx_ref.data(), sizeof(float) * dx.size()), 0);
}

TEST(PoolTest, AverageSpreadsTheGradientEvenly) {
  PoolShape s;
  s.c = 1, s.in_h = 4, s.in_w = 6, s.window = 2, s.stride = 2, s.max = false;
  Rng rng(11);
  Matrix x(24, 2), dy(6, 2);
  rng.FillUniform(x, -1, 1);
  rng.FillUniform(dy, -1, 1);
  const Matrix y = PoolForwardOf(s, x), dx = PoolBackwardOf(s, x, dy);
  for (int j = 0; j < 2; ++j)
    for (int yy = 0; yy < 4; ++yy)
      for (int xx = 0; xx < 6; ++xx) {
        const int o = (yy / 2) * 3 + xx / 2;
        EXPECT_FLOAT_EQ(dx(yy * 6 + xx, j), dy(o, j) / 4);
        if (yy % 2 == 0 && xx % 2 == 0) {
          EXPECT_NEAR(y(o, j),
                      (x(yy * 6 + xx, j) + x(yy * 6 + xx + 1, j) + x(yy * 6 + xx + 6, j) +
                       x(yy * 6 + xx + 7, j)) /
                          4,
                      1e-6);
        }
      }
}

TEST(PoolTest, OverlappingWindowsAccumulate) {
  PoolShape s;
  s.c = 1, s.in_h = 5, s.in_w = 5, s.window = 3, s.stride = 2;  // 2x2 windows, all hold (2,2)
  Matrix x = Matrix::Zero(25, 1), dy(4, 1);
  x(12, 0) = 1;  // the centre: every window's maximum
  dy << 1, 2, 3, 4;
  Matrix expected = Matrix::Zero(25, 1);
  expected(12, 0) = 10;
  EXPECT_TRUE(PoolBackwardOf(s, x, dy) == expected);
  s.max = false;
  const Matrix dx = PoolBackwardOf(s, x, dy);
  EXPECT_FLOAT_EQ(dx(12, 0), 10.0f / 9);     // in all four windows
  EXPECT_FLOAT_EQ(dx(0, 0), 1.0f / 9);       // in the first only
  EXPECT_FLOAT_EQ(dx(2, 0), 3.0f / 9);       // in the first two
  EXPECT_FLOAT_EQ(dx(10 + 4, 0), 6.0f / 9);  // (2,4): in the second and fourth
}

// Central differences of <dy, pool(x)> against PoolBackward, on inputs whose entries are
// 1e-2 apart at least (so that no window's maximum changes within the step).
TEST(PoolTest, BackwardMatchesFiniteDifferences) {
  Rng rng(12);
  for (bool max : {true, false})
    for (auto [window, stride] : {std::pair{2, 2}, std::pair{3, 2}, std::pair{3, 1}}) {
      PoolShape s;
      s.c = 2, s.in_h = 7, s.in_w = 6, s.window = window, s.stride = stride, s.max = max;
      SCOPED_TRACE(testing::Message()
                   << "max=" << max << " window=" << window << " stride=" << stride);
      const int n = 2;
      std::vector<int32_t> order(s.in_size() * n);
      for (size_t i = 0; i < order.size(); ++i) order[i] = int32_t(i);
      rng.Shuffle(order);
      Matrix x(s.in_size(), n), dy(s.out_size(), n);
      for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = 0.01f * float(order[i]);
      rng.FillUniform(dy, -1, 1);
      const Matrix dx = PoolBackwardOf(s, x, dy);
      const float h = 1e-3f;
      for (int64_t i = 0; i < x.size(); ++i) {
        Matrix plus = x, minus = x;
        plus.data()[i] += h;
        minus.data()[i] -= h;
        const double numeric = ((PoolForwardOf(s, plus) - PoolForwardOf(s, minus))
                                    .cwiseProduct(dy)
                                    .cast<double>()
                                    .sum()) /
                               (plus.data()[i] - minus.data()[i]);
        EXPECT_NEAR(dx.data()[i], numeric, 2e-3) << "entry " << i;
      }
    }
}

}  // namespace
}  // namespace alignd::core
