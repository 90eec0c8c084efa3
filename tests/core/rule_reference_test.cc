// Every rule's update against an independent double-precision reference written
// from the equations (core/feedback.h, docs/SCIENCE.md),
// plus the exact checks that pin each rule's identity: KP from B = W^T is BP bit for
// bit, Adam's first step, the pseudo-backprop angle against an SVD pseudo-inverse,
// the paper's Figure 4 ordering, DFA's own signal path and metrics, and golden
// first-ten losses per rule.
//
// Shapes as in core/trainer.h: W[i] is sizes[i+1] x sizes[i], examples are columns.
#include <gtest/gtest.h>

#include <Eigen/SVD>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/cpu.h"
#include "core/learning_rule.h"
#include "core/trainer.h"
#include "tests/test_util.h"

namespace alignd::core {
namespace {

using MatrixD = Eigen::MatrixXd;

std::shared_ptr<const Dataset> Share(Dataset d) {
  return std::make_shared<const Dataset>(std::move(d));
}

std::unique_ptr<Trainer> MustCreate(const TrainerOptions& o, std::shared_ptr<const Dataset> train) {
  auto t = Trainer::Create(o, std::move(train));
  EXPECT_OK(t);
  return t.ok() ? std::move(*t) : nullptr;
}

MatrixD PinvD(const MatrixD& w) {
  Eigen::JacobiSVD<MatrixD> svd(w, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::VectorXd& s = svd.singularValues();
  Eigen::VectorXd inv = s;
  const double tol = 1e-12 * s(0) * std::max(w.rows(), w.cols());
  for (Eigen::Index k = 0; k < s.size(); ++k) inv(k) = s(k) > tol ? 1.0 / s(k) : 0.0;
  return svd.matrixV() * inv.asDiagonal() * svd.matrixU().transpose();
}

// What a rule's step does, in double precision, for tanh hidden units, linear outputs,
// squared error and a mean over the batch: returns the gradients (per weight layer)
// that the rule applies, and fills the hidden signals dh[i] and, for pseudo-backprop's
// angle, W^+ delta[i+1].
struct Reference {
  std::vector<MatrixD> grad_w, grad_b, dh, pinv_signal, bp_dh;
};

Reference ComputeReference(const Trainer& t, Rule rule, const MatrixD& x, const MatrixD& y) {
  const int L = t.num_layers();
  const double n = static_cast<double>(x.cols());
  std::vector<MatrixD> a(L + 1);
  a[0] = x;
  for (int i = 0; i < L; ++i) {
    MatrixD z = t.weights(i).cast<double>() * a[i];
    z.colwise() += t.biases(i).cast<double>();
    a[i + 1] = i + 1 == L ? z : MatrixD(z.array().tanh());
  }
  Reference r;
  r.grad_w.resize(L);
  r.grad_b.resize(L);
  r.dh.resize(L);
  r.pinv_signal.resize(L);
  r.bp_dh.resize(L);
  std::vector<MatrixD> delta(L + 1);
  delta[L] = a[L] - y;
  for (int i = L - 1; i >= 0; --i) {
    if (i >= 1 && RuleLearnsHidden(rule)) {
      const MatrixD w = t.weights(i).cast<double>();
      const MatrixD b = t.Feedback(i).cast<double>();  // the paper's orientation
      MatrixD dh;
      switch (rule) {
        case Rule::kBackprop:
          dh = w.transpose() * delta[i + 1];
          break;
        case Rule::kFeedbackAlignment:
        case Rule::kKolenPollack:
          dh = b * delta[i + 1];
          break;
        case Rule::kDirectFeedbackAlignment:
          dh = b * delta[L];
          break;
        case Rule::kSignSymmetry: {
          // Feedback() is the magnitude matrix M (paper orientation) for sign symmetry.
          const MatrixD signs = w.transpose().array().sign().matrix();
          dh = MatrixD(signs.array() * b.array()) * delta[i + 1];
          break;
        }
        case Rule::kPseudoBackprop:
          dh = PinvD(w) * delta[i + 1];
          break;
        case Rule::kShallow:
          break;
      }
      r.dh[i] = dh;
      r.pinv_signal[i] = PinvD(w) * delta[i + 1];
      r.bp_dh[i] = w.transpose() * delta[i + 1];
      delta[i] = dh.array() * (1.0 - a[i].array().square());
    }
    if (i < L - 1 && !RuleLearnsHidden(rule)) {
      r.grad_w[i] = MatrixD::Zero(t.weights(i).rows(), t.weights(i).cols());
      r.grad_b[i] = MatrixD::Zero(t.biases(i).rows(), 1);
      continue;
    }
    r.grad_w[i] = delta[i + 1] * a[i].transpose() / n;
    r.grad_b[i] = delta[i + 1].rowwise().sum() / n;
  }
  return r;
}

double RelativeError(const MatrixD& got, const MatrixD& want) {
  const double scale = std::max(want.norm(), 1e-30);
  return (got - want).norm() / scale;
}

TrainerOptions SmallNet(Rule rule, int batch) {
  TrainerOptions o;
  o.network.sizes = {6, 9, 7, 4};
  o.network.hidden = Activation::kTanh;
  o.network.output = Activation::kLinear;
  o.network.loss = Loss::kSquaredError;
  o.init.kind = WeightInit::kUniform;
  o.init.scale = 0.5f;
  o.feedback.rule = rule;
  o.feedback.sign_mode = SignSymmetryMode::kFixedRandom;
  o.optimizer.learning_rate = 0.05f;
  o.batch_size = batch;
  o.shuffle = false;
  o.max_steps = 1000;
  o.metrics_every = 0;
  return o;
}

std::shared_ptr<const Dataset> SmallData(int n) {
  Rng rng(21);
  Matrix x(6, n), y(4, n);
  rng.FillUniform(x, -1, 1);
  rng.FillUniform(y, -1, 1);
  return Share(*MakeRegressionDataset(x, y));
}

// ---- Every rule's update against the reference ---------------------------------------

class RuleReferenceTest : public ::testing::TestWithParam<Rule> {};

// Step() on a batch moves W by exactly -lr times the reference gradient; Gradients()
// returns that gradient, on a fresh trainer and after steps (the feedback it uses is
// the one the next step will use).
// W moved by exactly -lr times the reference gradient since `before` (not at all where it is 0).
void ExpectUpdatesOf(const Trainer& t, const std::vector<MatrixD>& before, const Reference& ref,
                     float lr) {
  for (int i = 0; i < t.num_layers(); ++i) {
    const MatrixD moved = t.weights(i).cast<double>() - before[i];
    const MatrixD want = -lr * ref.grad_w[i];
    if (want.norm() == 0) {
      EXPECT_EQ(moved.norm(), 0.0) << "W" << i << " moved";
    } else {
      EXPECT_LT(RelativeError(moved, want), 1e-4) << "update of W" << i;
    }
  }
}

TEST_P(RuleReferenceTest, StepAndGradientsMatchTheDoublePrecisionReference) {
  const Rule rule = GetParam();
  const int batch = 5;
  auto data = SmallData(batch);
  TrainerOptions o = SmallNet(rule, batch);
  o.feedback.pinv_every = 1;
  auto t = MustCreate(o, data);
  const MatrixD x = data->features.cast<double>(), y = data->targets.cast<double>();
  for (int step = 0; step < 4; ++step) {
    SCOPED_TRACE(::testing::Message() << RuleName(rule) << " before step " << step + 1);
    // Gradients() first: on a fresh trainer, then after steps.
    std::vector<Matrix> gw, gb;
    ASSERT_OK(t->Gradients(data->features, data->targets, &gw, &gb));
    const Reference ref = ComputeReference(*t, rule, x, y);
    for (int i = 0; i < t->num_layers(); ++i) {
      EXPECT_LT(RelativeError(gw[i].cast<double>(), ref.grad_w[i]), 1e-5) << "grad W" << i;
      EXPECT_LT(RelativeError(gb[i].cast<double>(), ref.grad_b[i]), 1e-5) << "grad b" << i;
    }
    std::vector<MatrixD> before;
    for (int i = 0; i < t->num_layers(); ++i) before.push_back(t->weights(i).cast<double>());
    const MatrixD kp_b_before =
        rule == Rule::kKolenPollack ? MatrixD(t->Feedback(1).cast<double>()) : MatrixD();
    StepMetrics m;
    ASSERT_OK(t->Step(&m));
    ExpectUpdatesOf(*t, before, ref, o.optimizer.learning_rate);
    if (rule == Rule::kKolenPollack) {
      // B receives W^T's update.
      const MatrixD moved = t->Feedback(1).cast<double>() - kp_b_before;
      EXPECT_LT(RelativeError(moved, -o.optimizer.learning_rate * ref.grad_w[1].transpose()), 1e-4);
    }
  }
}

// The per-example path (batch 1: core/per_example.h, each update fused with the next
// example's forward): every step of every rule against the reference on its own example,
// through epoch ends, with Gradients() before each step.
TEST_P(RuleReferenceTest, PerExampleStepsMatchTheDoublePrecisionReference) {
  const Rule rule = GetParam();
  auto data = SmallData(3);
  TrainerOptions o = SmallNet(rule, 1);
  o.feedback.pinv_every = 1;
  auto t = MustCreate(o, data);
  for (int step = 0; step < 8; ++step) {
    SCOPED_TRACE(::testing::Message() << RuleName(rule) << " before step " << step + 1);
    const int k = step % 3;  // no shuffling: example k
    const Matrix xk = data->features.col(k), yk = data->targets.col(k);
    std::vector<Matrix> gw, gb;
    ASSERT_OK(t->Gradients(xk, yk, &gw, &gb));
    const Reference ref = ComputeReference(*t, rule, xk.cast<double>(), yk.cast<double>());
    std::vector<MatrixD> before;
    for (int i = 0; i < t->num_layers(); ++i) {
      EXPECT_LT(RelativeError(gw[i].cast<double>(), ref.grad_w[i]), 1e-5) << "grad W" << i;
      before.push_back(t->weights(i).cast<double>());
    }
    StepMetrics m;
    ASSERT_OK(t->Step(&m));
    ExpectUpdatesOf(*t, before, ref, o.optimizer.learning_rate);
  }
}

INSTANTIATE_TEST_SUITE_P(AllRules, RuleReferenceTest, ::testing::ValuesIn(AllRules()),
                         [](const auto& info) { return std::string(RuleName(info.param)); });

// ---- Exact identities ------------------------------------------------------------------

TEST(KolenPollackTest, FromBEqualToWTransposeWithoutDecayIsBackpropBitForBit) {
  // Batch 1 with plain SGD is the per-example path (core/per_example.h).
  for (int batch : {8, 1})
    for (OptimizerKind opt : {OptimizerKind::kSgd, OptimizerKind::kAdam}) {
      for (float momentum : {0.0f, 0.9f}) {
        if (opt == OptimizerKind::kAdam && momentum > 0) continue;
        SCOPED_TRACE(::testing::Message()
                     << OptimizerName(opt) << " momentum " << momentum << " batch " << batch);
        auto data = SmallData(64);
        TrainerOptions o = SmallNet(Rule::kBackprop, batch);
        o.optimizer.kind = opt;
        o.optimizer.momentum = momentum;
        o.optimizer.learning_rate = opt == OptimizerKind::kAdam ? 1e-3f : 0.05f;
        o.shuffle = true;
        o.max_steps = 50;
        auto bp = MustCreate(o, data);
        o.feedback.rule = Rule::kKolenPollack;
        auto kp = MustCreate(o, data);
        for (int i = 1; i < kp->num_layers(); ++i)
          ASSERT_OK(kp->SetFeedback(i, kp->weights(i).transpose()));
        ASSERT_OK(bp->Run(nullptr));
        ASSERT_OK(kp->Run(nullptr));
        for (int i = 0; i < bp->num_layers(); ++i) {
          EXPECT_TRUE(bp->weights(i) == kp->weights(i)) << "W" << i;
          EXPECT_TRUE(bp->biases(i) == kp->biases(i)) << "b" << i;
        }
        EXPECT_TRUE(kp->Feedback(1) == kp->weights(1).transpose());
      }
    }
}

TEST(KolenPollackTest, SparseConnectionsDecayTooBecauseBLacksExactlyWsConnections) {
  NonlinearTaskSpec spec;
  spec.train_size = 64;
  spec.test_size = 0;
  auto data = Share(MakeNonlinearTask(spec)->train);
  TrainerOptions o;
  o.network.sizes = {30, 20, 15, 10};
  o.network.connection_sparsity = 0.5f;
  o.feedback.rule = Rule::kKolenPollack;
  o.optimizer.learning_rate = 0.1f;
  o.optimizer.weight_decay = 0.1f;
  o.batch_size = 8;
  o.max_steps = 200;
  o.metrics_every = 0;
  auto kp = MustCreate(o, data);
  for (int i = 1; i < kp->num_layers(); ++i) {
    // B's removed entries are W's, transposed.
    EXPECT_TRUE(((kp->weights(i).array() == 0) == (kp->Feedback(i).transpose().array() == 0)).all())
        << "layer " << i;
  }
  std::vector<double> start;
  for (int i = 1; i < kp->num_layers(); ++i)
    start.push_back((kp->weights(i) - kp->Feedback(i).transpose()).cwiseAbs().maxCoeff());
  ASSERT_OK(kp->Run(nullptr));
  const double factor = std::pow(1.0 - 0.1 * 0.1, 200);
  for (int i = 1; i < kp->num_layers(); ++i) {
    const double now = (kp->weights(i) - kp->Feedback(i).transpose()).cwiseAbs().maxCoeff();
    EXPECT_NEAR(now / start[i - 1], factor, 1e-3 * factor) << "layer " << i;
  }
}

TEST(AdamTest, FirstStepMovesEachWeightByTheLearningRateAgainstItsGradientsSign) {
  auto data = SmallData(16);
  TrainerOptions o = SmallNet(Rule::kBackprop, 16);
  o.optimizer.kind = OptimizerKind::kAdam;
  o.optimizer.learning_rate = 1e-3f;
  auto t = MustCreate(o, data);
  std::vector<Matrix> gw, gb;
  ASSERT_OK(t->Gradients(data->features, data->targets, &gw, &gb));
  std::vector<Matrix> before;
  for (int i = 0; i < t->num_layers(); ++i) before.push_back(t->weights(i));
  StepMetrics m;
  ASSERT_OK(t->Step(&m));
  // m1 = (1-b1) g, m2 = (1-b2) g^2; bias-corrected: g and g^2, so the step is
  // lr g / (|g| + eps): lr sign(g) wherever |g| >> eps.
  for (int i = 0; i < t->num_layers(); ++i) {
    const Eigen::ArrayXXd g = gw[i].cast<double>().array();
    const Eigen::ArrayXXd want = -1e-3 * g / (g.abs() + 1e-8);
    const Eigen::ArrayXXd got = (t->weights(i) - before[i]).cast<double>().array();
    EXPECT_LT((got - want).abs().maxCoeff(), 1e-7) << "W" << i;
  }
}

// ---- The 1-d toy: the fixed point, with a step small enough to resolve it ---------------

TEST(ToyTest, FeedbackAlignmentFromZeroReachesTheDerivedPointAtSmallStep) {
  auto data = Share(MakeToyTask(2000, 0, 7)->train);
  TrainerOptions o;
  o.network.sizes = {1, 1, 1};
  o.network.hidden = Activation::kLinear;
  o.network.output = Activation::kLinear;
  o.network.bias = false;
  o.init.kind = WeightInit::kUniform;
  o.init.scale = 0.0f;
  o.feedback.rule = Rule::kFeedbackAlignment;
  o.optimizer.learning_rate = 0.005f;
  o.batch_size = 2000;
  o.max_steps = 12000;
  o.shuffle = false;
  o.metrics_every = 0;
  auto fa = MustCreate(o, data);
  ASSERT_OK(fa->SetFeedback(1, Matrix::Ones(1, 1)));
  ASSERT_OK(fa->Run(nullptr));
  const double w0 = fa->weights(0)(0, 0), w = fa->weights(1)(0, 0);
  // W - W0^2/2 is conserved from (0, 0); on W W0 = 1 that gives W0 = 2^(1/3).
  EXPECT_NEAR(w * w0, 1.0, 1e-3);
  EXPECT_NEAR(w0, std::cbrt(2.0), 3e-3);
  EXPECT_NEAR(w, 1.0 / std::cbrt(2.0), 3e-3);
}

// ---- Pseudo-backprop -------------------------------------------------------------------

// The reported angle to W^+ delta, on a multi-example batch and a two-hidden-layer
// net, against a JacobiSVD pseudo-inverse computed here in double precision.
TEST(PseudoBackpropAngleTest, MatchesAnSvdPseudoInverseToAThousandthOfADegree) {
  const int batch = 12;
  auto data = SmallData(batch);
  TrainerOptions o = SmallNet(Rule::kFeedbackAlignment, batch);
  o.metrics_every = 1;
  o.pbp_angle = true;
  auto t = MustCreate(o, data);
  const MatrixD x = data->features.cast<double>(), y = data->targets.cast<double>();
  for (int step = 0; step < 3; ++step) {
    const Reference ref = ComputeReference(*t, Rule::kFeedbackAlignment, x, y);
    StepMetrics m;
    ASSERT_OK(t->Step(&m));
    ASSERT_EQ(m.alignment.size(), 2u);
    for (int i = 1; i < t->num_layers(); ++i) {
      double sum = 0;
      for (int j = 0; j < batch; ++j) {
        const Eigen::VectorXd a = ref.dh[i].col(j), b = ref.pinv_signal[i].col(j);
        sum += std::acos(std::clamp(a.dot(b) / (a.norm() * b.norm()), -1.0, 1.0)) * 180 / M_PI;
      }
      const double want = sum / batch;
      EXPECT_NEAR(m.alignment[i - 1].pbp_angle_mean, want, 1e-3) << "layer " << i;
      EXPECT_GT(want, 1.0);  // not a degenerate (parallel) case
    }
  }
}

// Lillicrap et al., Figure 4: on the linear task, FA's updates come to lie closer to
// pseudo-backprop's W^+ delta than to backprop's W^T delta.
TEST(PseudoBackpropAngleTest, AfterTwoThousandStepsFaIsCloserToPseudoBackpropThanToBp) {
  LinearTaskSpec spec;
  spec.train_size = 2000;
  auto data = Share(MakeLinearTask(spec)->train);
  TrainerOptions o;
  o.network.sizes = {30, 20, 10};
  o.network.hidden = Activation::kLinear;
  o.network.output = Activation::kLinear;
  o.network.bias = false;
  o.init.kind = WeightInit::kUniform;
  o.init.scale = 0.01f;
  o.feedback.rule = Rule::kFeedbackAlignment;
  o.feedback.scale = 0.5f;
  o.optimizer.learning_rate = 0.002f;
  o.batch_size = 1;
  o.max_steps = 2000;
  o.metrics_every = 1;
  o.pbp_angle = true;
  auto t = MustCreate(o, data);
  double to_bp = 0, to_pbp = 0;
  int counted = 0;
  StepMetrics m;
  while (!t->done()) {
    ASSERT_OK(t->Step(&m));
    if (m.step > 1800 && !std::isnan(m.alignment[0].pbp_angle_mean)) {
      to_bp += m.alignment[0].update_angle_mean;
      to_pbp += m.alignment[0].pbp_angle_mean;
      ++counted;
    }
  }
  ASSERT_GT(counted, 150);
  to_bp /= counted;
  to_pbp /= counted;
  RecordProperty("angle_to_bp", std::to_string(to_bp));
  RecordProperty("angle_to_pbp", std::to_string(to_pbp));
  EXPECT_LT(to_pbp, to_bp) << "FA-BP " << to_bp << " deg, FA-pseudo-backprop " << to_pbp << " deg";
}

// ---- DFA ---------------------------------------------------------------------------------

TEST(DfaTest, HiddenLayersHearTheOutputErrorDirectly) {
  TrainerOptions o;
  o.network.sizes = {30, 20, 10, 10};  // sizes[2] == sizes[3]: shapes that once fooled the metrics
  o.feedback.rule = Rule::kDirectFeedbackAlignment;
  o.metrics_every = 1;
  o.batch_size = 8;
  o.max_steps = 3;
  NonlinearTaskSpec spec;
  spec.train_size = 64;
  spec.test_size = 0;
  auto data = Share(MakeNonlinearTask(spec)->train);
  auto t = MustCreate(o, data);
  // B_i maps the 10 outputs to hidden layer i: 20x10 and 10x10 (FA's would be 20x10, 10x10
  // too here; on 30-40-40-10 the difference shows in shape, below).
  EXPECT_EQ(t->Feedback(1).rows(), 20);
  EXPECT_EQ(t->Feedback(1).cols(), 10);
  StepMetrics m;
  ASSERT_OK(t->Step(&m));
  ASSERT_EQ(m.alignment.size(), 2u);
  // Layer 1's B is not W[1]^T in meaning: no weight angle, no norm ratio.
  EXPECT_TRUE(std::isnan(m.alignment[0].weight_angle));
  EXPECT_TRUE(std::isnan(m.alignment[0].norm_ratio));
  // The last hidden layer's B is: both defined.
  EXPECT_FALSE(std::isnan(m.alignment[1].weight_angle));
  EXPECT_FALSE(std::isnan(m.alignment[1].norm_ratio));
  o.network.sizes = {30, 40, 40, 10};
  auto wide = MustCreate(o, data);
  EXPECT_EQ(wide->Feedback(1).rows(), 40);
  EXPECT_EQ(wide->Feedback(1).cols(), 10);  // FA: 40x40
}

// ---- Sign symmetry ----------------------------------------------------------------------

TEST(SignSymmetryTest, UsfHasNoSettableFeedbackAndFrsfTakesMagnitudes) {
  auto data = SmallData(8);
  TrainerOptions o = SmallNet(Rule::kSignSymmetry, 8);
  o.feedback.sign_mode = SignSymmetryMode::kUniform;
  auto usf = MustCreate(o, data);
  const Matrix b = Matrix::Constant(9, 7, -3.0f);
  const absl::Status s = usf->SetFeedback(1, b);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(usf->Feedback(1) == Matrix::Ones(9, 7));
  o.feedback.sign_mode = SignSymmetryMode::kFixedRandom;
  auto frsf = MustCreate(o, data);
  ASSERT_OK(frsf->SetFeedback(1, b));
  EXPECT_TRUE(frsf->Feedback(1) == Matrix::Constant(9, 7, 3.0f));
}

// ---- Flush-to-zero wherever a step runs ---------------------------------------------------

TEST(FlushToZeroTest, AStepOnAThreadOfTheCallersOwnSetsItAndGivesRunsWeights) {
  auto data = SmallData(32);
  TrainerOptions o = SmallNet(Rule::kFeedbackAlignment, 8);
  o.max_steps = 40;
  auto by_run = MustCreate(o, data);
  ASSERT_OK(by_run->Run(nullptr));
  auto by_step = MustCreate(o, data);
  bool ftz_after = false;
  std::thread([&] {
  // A caller's thread with IEEE denormals (threads inherit their creator's MXCSR,
  // and Run() above turned FTZ on for this one's creator).
#if defined(__x86_64__)
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_OFF);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_OFF);
#endif
    StepMetrics m;
    while (!by_step->done())
      if (!by_step->Step(&m).ok()) return;
#if defined(__x86_64__)
    ftz_after = _MM_GET_FLUSH_ZERO_MODE() == _MM_FLUSH_ZERO_ON &&
                _MM_GET_DENORMALS_ZERO_MODE() == _MM_DENORMALS_ZERO_ON;
#else
    ftz_after = true;
#endif
  }).join();
  EXPECT_TRUE(ftz_after);
  ASSERT_TRUE(by_step->done());
  for (int i = 0; i < by_run->num_layers(); ++i)
    EXPECT_TRUE(by_run->weights(i) == by_step->weights(i)) << "W" << i;
}

// ---- Golden losses -------------------------------------------------------------------------
//
// The first ten batch losses of every rule on a fixed tiny net (SmallNet, batch 4,
// seed 1, no shuffling). A change to the numerics shows here first. Values are
// float sums in a product library's order, so they are compared to 1e-5 relative,
// not bit for bit. To update after an intended change, run
//   ALIGND_PRINT_GOLDEN=1 build/tests/core/rule_reference_test --gtest_filter='Golden*'
// and paste the printed table, saying in the commit why the numbers moved.
struct Golden {
  const char* rule;
  double losses[10];
};
const Golden kGolden[] = {
#include "tests/core/golden_losses.inc"
};

TEST(GoldenTest, FirstTenLossesOfEveryRuleOnAFixedTinyNet) {
  const bool print = std::getenv("ALIGND_PRINT_GOLDEN") != nullptr;
  auto data = SmallData(40);
  for (Rule rule : AllRules()) {
    auto t = MustCreate(SmallNet(rule, 4), data);
    double got[10];
    StepMetrics m;
    for (double& l : got) {
      ASSERT_OK(t->Step(&m));
      l = m.loss;
    }
    if (print) {
      std::printf("    {\"%s\", {", std::string(RuleName(rule)).c_str());
      for (int k = 0; k < 10; ++k) std::printf("%.9g%s", got[k], k < 9 ? ", " : "}},\n");
      continue;
    }
    const Golden* g = nullptr;
    for (const Golden& e : kGolden)
      if (RuleName(rule) == e.rule) g = &e;
    ASSERT_NE(g, nullptr) << "no golden losses for " << RuleName(rule);
    for (int k = 0; k < 10; ++k)
      EXPECT_NEAR(got[k], g->losses[k], 1e-5 * std::abs(g->losses[k]))
          << RuleName(rule) << " step " << k + 1;
  }
}

}  // namespace
}  // namespace alignd::core
