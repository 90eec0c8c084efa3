// File: tests/core/parallel_test.cc
// The elementwise work split over a session's threads (core/parallel.h): the split covers
// every index once in aligned ranges, runs on the session's threads with flush-to-zero, and
// every split function (bias and activation, derivative, bias gradient, decay, optimiser)
// gives on 2 and 3 threads the bits it gives on one; a whole training step on two threads
// keeps the rules' bit-for-bit properties.
#include "core/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/cpu.h"
#include "core/gemm.h"
#include "core/layers.h"
#include "core/optimizer.h"
#include "core/random.h"
#include "core/trainer.h"
#include "tests/test_util.h"

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace alignd::core {
namespace {

// Restores the calling thread's product threads (other tests in this binary assume 1).
struct ThreadsScope {
  explicit ThreadsScope(int threads) { SetGemmThreads(threads); }
  ~ThreadsScope() { SetGemmThreads(1); }
};

TEST(SplitRangesTest, CoverEveryIndexOnceInAlignedContiguousRanges) {
  for (int64_t n : {0, 1, 15, 16, 17, 100, 1000, 4097, 128000, 128001}) {
    for (int64_t min : {1, 16, 1000, 16384}) {
      for (int64_t align : {1, 16}) {
        for (int threads : {1, 2, 3, 8}) {
          SCOPED_TRACE(::testing::Message() << "n " << n << " min " << min << " align " << align
                                            << " threads " << threads);
          Range r[256];
          const int count = SplitRanges(n, min, align, threads, r);
          if (n == 0) {
            EXPECT_LE(count, 1);
            continue;
          }
          ASSERT_GE(count, 1);
          EXPECT_LE(count, threads);
          EXPECT_EQ(r[0].begin, 0);
          EXPECT_EQ(r[count - 1].end, n);
          for (int k = 0; k < count; ++k) {
            EXPECT_LT(r[k].begin, r[k].end);
            EXPECT_EQ(r[k].begin % align, 0);
            if (k > 0) {
              EXPECT_EQ(r[k].begin, r[k - 1].end);
            }
          }
          // Split as far as the work allows: two threads get two ranges once there is
          // enough for two.
          if (threads >= 2 && n >= 2 * std::max(min, align)) {
            EXPECT_GE(count, 2);
          }
          if (n < 2 * min) {
            EXPECT_EQ(count, 1);
          }
        }
      }
    }
  }
}

TEST(ParallelForTest, RunsEveryIndexOnceOnTheSessionsThreadsWithFlushToZero) {
  EnableFlushToZero();
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE(::testing::Message() << "threads " << threads);
    ThreadsScope scope(threads);
    const int64_t n = 100003;
    std::vector<std::atomic<int>> hits(n);
    std::mutex mu;
    std::set<std::thread::id> ids;
    std::atomic<int> calls{0}, without_ftz{0};
    ParallelFor(n, 1000, 16, [&](int64_t begin, int64_t end) {
      ++calls;
#if defined(__SSE__) || defined(__x86_64__)
      if (_MM_GET_FLUSH_ZERO_MODE() != _MM_FLUSH_ZERO_ON) ++without_ftz;
#endif
      for (int64_t i = begin; i < end; ++i) ++hits[i];
      std::lock_guard<std::mutex> lock(mu);
      ids.insert(std::this_thread::get_id());
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i;
    EXPECT_EQ(without_ftz.load(), 0);
    const int expected = ParallelForIsThreaded() ? threads : 1;
    EXPECT_EQ(calls.load(), expected);
    EXPECT_EQ(static_cast<int>(ids.size()), expected);
    if (expected == 1) {
      EXPECT_TRUE(ids.count(std::this_thread::get_id()));
    }
  }
}

TEST(ParallelForTest, SmallWorkStaysOnTheCallingThread) {
  ThreadsScope scope(2);
  int calls = 0;
  std::thread::id where;
  ParallelFor(100, 64, 16, [&](int64_t begin, int64_t end) {
    ++calls;
    where = std::this_thread::get_id();
    EXPECT_EQ(begin, 0);
    EXPECT_EQ(end, 100);
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(where, std::this_thread::get_id());
  ParallelFor(0, 1, 1, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 1);
}

// ---- Each split function: the same bits on 1, 2 and 3 threads -------------------------

struct Shape {
  Eigen::Index rows, cols;
};
const Shape kShapes[] = {{1000, 128}, {999, 37}, {300, 128}, {10, 128}, {17, 3}, {4096, 9}};

Matrix Random(Eigen::Index r, Eigen::Index c, uint64_t seed, float lo = -3, float hi = 3) {
  Rng rng(seed);
  Matrix m(r, c);
  rng.FillUniform(m, lo, hi);
  return m;
}

bool Same(const Matrix& a, const Matrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}
bool Same(const Vector& a, const Vector& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

// fn(threads) computes something on `threads` threads; each of 2 and 3 must equal 1's bits.
template <typename T, typename Fn>
void ExpectSameOnAnyThreads(Fn fn) {
  T one;
  {
    ThreadsScope scope(1);
    one = fn();
  }
  for (int threads : {2, 3}) {
    ThreadsScope scope(threads);
    EXPECT_TRUE(Same(fn(), one)) << "threads " << threads;
  }
}

TEST(SplitWorkTest, BiasAndActivationAreTheSameOnAnyNumberOfThreads) {
  EnableFlushToZero();
  for (const Shape& s : kShapes) {
    for (Activation act : {Activation::kLinear, Activation::kTanh, Activation::kLogistic,
                           Activation::kRelu, Activation::kSoftmax}) {
      for (bool bias : {false, true}) {
        SCOPED_TRACE(::testing::Message()
                     << s.rows << "x" << s.cols << " act " << int(act) << " bias " << bias);
        const Matrix z0 = Random(s.rows, s.cols, 1);
        const Matrix bm = Random(s.rows, 1, 2);
        const Vector b = bm.col(0);
        auto run = [&] {
          Matrix z = z0, a(s.rows, s.cols);
          Activate(act, bias ? &b : nullptr, z, a);
          Matrix both(s.rows, 2 * s.cols);
          both << z, a;
          return both;
        };
        ExpectSameOnAnyThreads<Matrix>(run);
        // And it is z + b, then f of it.
        const Matrix both = run();
        const Matrix z = both.leftCols(s.cols), a = both.rightCols(s.cols);
        Matrix want_z = z0;
        if (bias) want_z.colwise() += b;
        EXPECT_TRUE(Same(z, want_z));
        Matrix want_a(s.rows, s.cols);
        for (Eigen::Index j = 0; j < s.cols; ++j) {
          const double m = want_z.col(j).maxCoeff();
          double sum = 0;  // softmax's denominator, for its column
          for (Eigen::Index k = 0; k < s.rows; ++k) sum += std::exp(double(want_z(k, j)) - m);
          for (Eigen::Index i = 0; i < s.rows; ++i) {
            const double v = want_z(i, j);
            want_a(i, j) = float(act == Activation::kLinear     ? v
                                 : act == Activation::kTanh     ? std::tanh(v)
                                 : act == Activation::kLogistic ? 1 / (1 + std::exp(-v))
                                 : act == Activation::kRelu     ? std::max(v, 0.0)
                                                                : std::exp(v - m) / sum);
          }
        }
        EXPECT_LT((a - want_a).cwiseAbs().maxCoeff(), 1e-5f);
      }
    }
  }
}

TEST(SplitWorkTest, DerivativeIsTheSameOnAnyNumberOfThreads) {
  for (const Shape& s : kShapes) {
    for (Activation act : {Activation::kTanh, Activation::kLogistic, Activation::kRelu}) {
      SCOPED_TRACE(::testing::Message() << s.rows << "x" << s.cols << " act " << int(act));
      const Matrix a = Random(s.rows, s.cols, 3, -1, 1), d0 = Random(s.rows, s.cols, 4);
      auto run = [&] {
        Matrix d = d0;
        MultiplyByDerivative(act, a, d);
        return d;
      };
      ExpectSameOnAnyThreads<Matrix>(run);
      const Matrix d = run();
      for (Eigen::Index k = 0; k < a.size(); ++k) {
        const float x = a.data()[k];
        const float f = act == Activation::kTanh       ? 1 - x * x
                        : act == Activation::kLogistic ? x * (1 - x)
                                                       : (x > 0 ? 1.0f : 0.0f);
        ASSERT_NEAR(d.data()[k], d0.data()[k] * f, 1e-5f) << k;
      }
    }
  }
}

TEST(SplitWorkTest, BiasGradientIsTheSameOnAnyNumberOfThreads) {
  for (const Shape& s : kShapes) {
    for (bool accumulate : {false, true}) {
      SCOPED_TRACE(::testing::Message() << s.rows << "x" << s.cols << " accumulate " << accumulate);
      const Matrix dz = Random(s.rows, s.cols, 5);
      const Vector db0 = Random(s.rows, 1, 6).col(0);
      auto run = [&] {
        Vector db = db0;
        SumColumns(dz, -0.01f, accumulate, db);
        return db;
      };
      ExpectSameOnAnyThreads<Vector>(run);
      const Vector db = run();
      const Eigen::VectorXd want =
          (accumulate ? Eigen::VectorXd(db0.cast<double>()) : Eigen::VectorXd::Zero(s.rows)) +
          -0.01 * dz.cast<double>().rowwise().sum();
      EXPECT_LT((db.cast<double>() - want).cwiseAbs().maxCoeff(), 1e-5);
    }
  }
  // A block of a larger matrix (the stride is not the rows).
  const Matrix big = Random(40, 50, 7);
  Vector db(30);
  SumColumns(big.block(5, 0, 30, 50), 1.0f, false, db);
  EXPECT_LT((db.cast<double>() - big.block(5, 0, 30, 50).cast<double>().rowwise().sum())
                .cwiseAbs()
                .maxCoeff(),
            1e-4);
}

TEST(SplitWorkTest, OptimizerStepsAreTheSameOnAnyNumberOfThreads) {
  OptimizerConfig momentum;
  momentum.kind = OptimizerKind::kSgd;
  momentum.momentum = 0.9f;
  OptimizerConfig plain = momentum;
  plain.momentum = 0;
  OptimizerConfig adam;
  adam.kind = OptimizerKind::kAdam;
  for (const OptimizerConfig* opt : {&plain, &momentum, &adam}) {
    for (float decay : {0.0f, 1e-3f}) {
      SCOPED_TRACE(::testing::Message() << "kind " << int(opt->kind) << " momentum "
                                        << opt->momentum << " decay " << decay);
      const Matrix w0 = Random(1000, 129, 8), g = Random(1000, 129, 9);
      auto run = [&] {
        Matrix w = w0;
        OptimizerSlot slot;
        if (opt->kind == OptimizerKind::kAdam || opt->momentum > 0)
          slot.m1 = Matrix::Zero(1000, 129);
        if (opt->kind == OptimizerKind::kAdam) slot.m2 = Matrix::Zero(1000, 129);
        for (int t = 1; t <= 3; ++t) ApplyOptimizer(*opt, t, w, g, slot, 0.01f, decay);
        return w;
      };
      ExpectSameOnAnyThreads<Matrix>(run);
      // One element by hand: three steps of the optimiser's formula.
      const Matrix w = run();
      double p = w0(7, 11), m1 = 0, m2 = 0;
      const double gr = g(7, 11);
      for (int t = 1; t <= 3; ++t) {
        const double gd = gr + decay * p;
        if (opt->kind == OptimizerKind::kAdam) {
          m1 = opt->beta1 * m1 + (1 - opt->beta1) * gd;
          m2 = opt->beta2 * m2 + (1 - opt->beta2) * gd * gd;
          p -= 0.01 * (m1 / (1 - std::pow(opt->beta1, t))) /
               (std::sqrt(m2 / (1 - std::pow(opt->beta2, t))) + opt->epsilon);
        } else if (opt->momentum > 0) {
          m1 = opt->momentum * m1 + gd;
          p -= 0.01 * m1;
        } else {
          p = p * (1 - 0.01 * decay) - 0.01 * gr;
        }
      }
      EXPECT_NEAR(w(7, 11), p, 1e-4);
    }
  }
}

// ---- A whole step on two threads ---------------------------------------------------------

std::shared_ptr<const Dataset> Data(int n) {
  const Matrix x = Random(100, n, 10, 0, 1);
  std::vector<int32_t> labels(n);
  for (int j = 0; j < n; ++j) labels[j] = j % 10;
  return std::make_shared<const Dataset>(*MakeClassificationDataset(x, labels, 10));
}

// Wide enough (300 and 200 units at batch 128) that every split above splits.
TrainerOptions TwoThreadOptions(Rule rule) {
  TrainerOptions o;
  o.network.sizes = {100, 300, 200, 10};
  o.network.hidden = Activation::kTanh;
  o.network.output = Activation::kSoftmax;
  o.network.loss = Loss::kCrossEntropy;
  o.feedback.rule = rule;
  o.optimizer.learning_rate = 0.05f;
  o.optimizer.momentum = 0.9f;
  o.optimizer.weight_decay = 1e-4f;
  o.batch_size = 128;
  o.max_steps = 12;
  o.threads = 2;
  return o;
}

TEST(TwoThreadStepTest, FeedbackAlignmentWithWTransposeIsBackpropBitForBit) {
  auto data = Data(1024);
  auto bp = Trainer::Create(TwoThreadOptions(Rule::kBackprop), data);
  auto fa = Trainer::Create(TwoThreadOptions(Rule::kFeedbackAlignment), data);
  ASSERT_OK(bp);
  ASSERT_OK(fa);
  StepMetrics m;
  while (!(*bp)->done()) {
    for (int i = 1; i < (*fa)->num_layers(); ++i)
      ASSERT_OK((*fa)->SetFeedback(i, (*fa)->weights(i).transpose()));
    ASSERT_OK((*bp)->Step(&m));
    ASSERT_OK((*fa)->Step(&m));
  }
  for (int i = 0; i < (*bp)->num_layers(); ++i) {
    EXPECT_TRUE(Same((*bp)->weights(i), (*fa)->weights(i))) << "layer " << i;
    EXPECT_TRUE(Same((*bp)->biases(i), (*fa)->biases(i))) << "layer " << i;
  }
}

TEST(TwoThreadStepTest, TwoRunsOnTwoThreadsAreBitForBitAndLearn) {
  auto data = Data(1024);
  for (Rule rule : {Rule::kBackprop, Rule::kFeedbackAlignment, Rule::kKolenPollack}) {
    SCOPED_TRACE(RuleName(rule));
    TrainerOptions o = TwoThreadOptions(rule);
    o.max_steps = 40;
    auto a = Trainer::Create(o, data);
    auto b = Trainer::Create(o, data);
    ASSERT_OK(a);
    ASSERT_OK(b);
    StepMetrics ma, mb;
    double first = 0;
    while (!(*a)->done()) {
      ASSERT_OK((*a)->Step(&ma));
      ASSERT_OK((*b)->Step(&mb));
      ASSERT_EQ(ma.loss, mb.loss) << "step " << ma.step;
      if (ma.step == 1) first = ma.loss;
    }
    for (int i = 0; i < (*a)->num_layers(); ++i)
      EXPECT_TRUE(Same((*a)->weights(i), (*b)->weights(i))) << "layer " << i;
    EXPECT_LT(ma.loss, first);  // and it trains
  }
}

}  // namespace
}  // namespace alignd::core
