// The learning rules against the exact checks derived from Lillicrap et al. (2016)
// (docs/SCIENCE.md) and the known behaviour of each rule.
#include "core/learning_rule.h"

#include <gtest/gtest.h>

#include <Eigen/LU>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>

#include "core/feedback.h"
#include "core/trainer.h"
#include "tests/test_util.h"

namespace alignd::core {
namespace {

std::shared_ptr<const Dataset> Share(Dataset d) {
  return std::make_shared<const Dataset>(std::move(d));
}

std::unique_ptr<Trainer> MustCreate(const TrainerOptions& o, std::shared_ptr<const Dataset> train,
                                    std::shared_ptr<const Dataset> eval = nullptr) {
  auto t = Trainer::Create(o, std::move(train), std::move(eval));
  EXPECT_OK(t);
  return t.ok() ? std::move(*t) : nullptr;
}

// Collects every metric step.
class Recorder : public TrainingObserver {
 public:
  bool OnStep(const StepMetrics& m) override {
    if (m.has_details) details.push_back(m);
    losses.push_back(m.loss);
    return true;
  }
  bool OnEvaluation(const EvalMetrics& e) override {
    evals.push_back(e);
    return true;
  }
  std::vector<StepMetrics> details;
  std::vector<double> losses;
  std::vector<EvalMetrics> evals;
};

// ---- FA with B = W^T is BP, bit for bit ------------------------------------------------

class FaEqualsBpTest : public ::testing::TestWithParam<int> {};

TEST_P(FaEqualsBpTest, FeedbackSetToWTransposeEveryStepGivesBackpropBitForBit) {
  NonlinearTaskSpec spec;
  spec.train_size = 256;
  spec.test_size = 0;
  auto data = Share(MakeNonlinearTask(spec)->train);
  TrainerOptions o;
  o.network.sizes = {30, 20, 15, 10};
  o.network.hidden = Activation::kTanh;
  o.max_steps = 60;
  // Momentum 0 at batch 1 is the per-example path (core/per_example.h), 0.9 the general one:
  // batch 1 runs both (param 0 stands for batch 1 with momentum).
  o.batch_size = std::max(1, GetParam());
  o.optimizer.momentum = GetParam() == 1 ? 0.0f : 0.9f;
  o.optimizer.learning_rate = 0.01f;
  o.feedback.rule = Rule::kBackprop;
  auto bp = MustCreate(o, data);
  o.feedback.rule = Rule::kFeedbackAlignment;
  auto fa = MustCreate(o, data);
  StepMetrics m;
  while (!bp->done()) {
    for (int i = 1; i < fa->num_layers(); ++i)
      ASSERT_OK(fa->SetFeedback(i, fa->weights(i).transpose()));
    ASSERT_OK(bp->Step(&m));
    ASSERT_OK(fa->Step(&m));
  }
  for (int i = 0; i < bp->num_layers(); ++i) {
    EXPECT_TRUE(bp->weights(i) == fa->weights(i)) << "layer " << i;
    EXPECT_TRUE(bp->biases(i) == fa->biases(i)) << "layer " << i;
  }
  // And without the reset, FA is not BP.
  auto fa2 = MustCreate(o, data);
  ASSERT_OK(fa2->Run(nullptr));
  EXPECT_FALSE(fa2->weights(0) == bp->weights(0));
}

INSTANTIATE_TEST_SUITE_P(BatchSizes, FaEqualsBpTest, ::testing::Values(1, 0, 7, 32),
                         [](const auto& info) {
                           return info.param == 0 ? std::string("batch1_momentum")
                                                  : "batch" + std::to_string(info.param);
                         });

// ---- The 1-d toy ------------------------------------------------------------------------

TrainerOptions ToyOptions(Rule rule) {
  TrainerOptions o;
  o.network.sizes = {1, 1, 1};
  o.network.hidden = Activation::kLinear;
  o.network.output = Activation::kLinear;
  o.network.bias = false;
  o.init.kind = WeightInit::kUniform;
  o.init.scale = 0.0f;  // start at exactly (0, 0)
  o.feedback.rule = rule;
  o.optimizer.learning_rate = 0.02f;
  o.batch_size = 2000;  // large batch: close to the expected dynamics
  o.max_steps = 3000;
  o.epochs = 0;
  o.shuffle = false;
  return o;
}

// FA's fixed point on the toy: tests/core/rule_reference_test.cc (ToyTest), at a step small
// enough that the discretisation error stays inside the tolerance.

TEST(ToyTest, BackpropFromExactlyZeroNeverMoves) {
  auto data = Share(MakeToyTask(2000, 0, 7)->train);
  auto bp = MustCreate(ToyOptions(Rule::kBackprop), data);
  ASSERT_OK(bp->Run(nullptr));
  EXPECT_EQ(bp->weights(0)(0, 0), 0.0f);
  EXPECT_EQ(bp->weights(1)(0, 0), 0.0f);
}

// ---- The linear network -----------------------------------------------------------------

TrainerOptions LinearOptions(Rule rule) { return PaperLinearOptions(rule); }

// Worst relative error, over 100 steps, of "W0 W0^T - B W - W^T B^T changes by exactly
// dW0 dW0^T", for a per-example run of `rule` on the linear network.
double WorstInvariantError(Rule rule) {
  LinearTaskSpec spec;
  spec.train_size = 500;
  auto data = Share(MakeLinearTask(spec)->train);
  TrainerOptions o = LinearOptions(rule);
  auto t = MustCreate(o, data);
  // B: FA's fixed feedback; for BP, a fixed random matrix of the same shape.
  TrainerOptions fa_options = LinearOptions(Rule::kFeedbackAlignment);
  const Eigen::MatrixXd b = MustCreate(fa_options, data)->Feedback(1).cast<double>();
  auto invariant = [&](const Eigen::MatrixXd& w0, const Eigen::MatrixXd& w) {
    return Eigen::MatrixXd(w0 * w0.transpose() - b * w - w.transpose() * b.transpose());
  };
  StepMetrics m;
  for (int k = 0; k < 200; ++k) EXPECT_OK(t->Step(&m));  // leave the tiny-weight start
  double worst = 0;
  for (int k = 0; k < 100; ++k) {
    const Eigen::MatrixXd w0 = t->weights(0).cast<double>(), w = t->weights(1).cast<double>();
    EXPECT_OK(t->Step(&m));
    const Eigen::MatrixXd w0n = t->weights(0).cast<double>(), wn = t->weights(1).cast<double>();
    const Eigen::MatrixXd dw0 = w0n - w0;
    const Eigen::MatrixXd expected = dw0 * dw0.transpose();
    const Eigen::MatrixXd change = invariant(w0n, wn) - invariant(w0, w);
    worst = std::max(worst, (change - expected).norm() / expected.norm());
  }
  return worst;
}

TEST(LinearNetTest, FaInvariantChangesByExactlyDeltaW0DeltaW0Transpose) {
  EXPECT_LT(WorstInvariantError(Rule::kFeedbackAlignment), 0.02);
  // Under BP the same quantity does not follow the identity: the check is not vacuous.
  EXPECT_GT(WorstInvariantError(Rule::kBackprop), 1.0);
}

// FA against pseudo-backprop: tests/core/rule_reference_test.cc (PseudoBackpropAngleTest).

TEST(LinearNetTest, FaLearnsAsWellAsBpAndFarBetterThanShallowWhileTheAngleFalls) {
  LinearTaskSpec spec;
  spec.train_size = 2000;
  spec.test_size = 500;
  spec.noise = 0.5f;  // an error floor, so that "within 1.5x" compares errors, not round-off
  auto task = MakeLinearTask(spec);
  auto train = Share(task->train), test = Share(task->test);
  std::map<Rule, double> nse;
  std::vector<StepMetrics> fa_details;
  for (Rule r : {Rule::kBackprop, Rule::kFeedbackAlignment, Rule::kShallow}) {
    TrainerOptions o = LinearOptions(r);
    o.epochs = 3;
    o.metrics_every = 1;
    auto t = MustCreate(o, train, test);
    Recorder rec;
    ASSERT_OK(t->Run(&rec));
    ASSERT_FALSE(rec.evals.empty());
    nse[r] = rec.evals.back().nse;
    if (r == Rule::kFeedbackAlignment) fa_details = rec.details;
  }
  const double bp = nse[Rule::kBackprop], fa = nse[Rule::kFeedbackAlignment],
               shallow = nse[Rule::kShallow];
  RecordProperty("nse_bp", std::to_string(bp));
  RecordProperty("nse_fa", std::to_string(fa));
  RecordProperty("nse_shallow", std::to_string(shallow));
  EXPECT_LT(fa, 1.5 * bp) << "bp " << bp << " fa " << fa;
  EXPECT_LT(fa, 0.2 * shallow) << "shallow " << shallow << " fa " << fa;
  // Per-example angles are single draws: average the first and the last 20 steps.
  auto mean_angle = [&](size_t from, size_t to) {
    double sum = 0;
    for (size_t k = from; k < to; ++k) sum += fa_details[k].alignment[0].update_angle_mean;
    return sum / double(to - from);
  };
  const size_t n = fa_details.size();
  const double first = mean_angle(0, 20), last = mean_angle(n - 20, n);
  EXPECT_GT(first, 75.0);
  EXPECT_LT(first, 105.0);
  EXPECT_LT(last, 45.0);
  double positive = 0;
  for (size_t k = n - 20; k < n; ++k) positive += fa_details[k].alignment[0].positive_fraction;
  EXPECT_GE(positive / 20, 0.95);
}

// ---- Kolen-Pollack ----------------------------------------------------------------------

TEST(KolenPollackTest, WMinusBTransposeDecaysAtTheWeightDecayRate) {
  NonlinearTaskSpec spec;
  spec.train_size = 64;
  spec.test_size = 0;
  auto data = Share(MakeNonlinearTask(spec)->train);
  TrainerOptions o;
  o.network.sizes = {30, 20, 15, 10};
  o.feedback.rule = Rule::kKolenPollack;
  o.optimizer.learning_rate = 0.1f;
  o.optimizer.weight_decay = 0.1f;
  o.batch_size = 8;
  o.max_steps = 200;
  o.metrics_every = 0;
  auto kp = MustCreate(o, data);
  std::vector<double> start;
  for (int i = 1; i < kp->num_layers(); ++i)
    start.push_back((kp->weights(i) - kp->Feedback(i).transpose()).norm());
  ASSERT_OK(kp->Run(nullptr));
  const double lambda_t = std::pow(1.0 - 0.1 * 0.1, 200);  // (1 - lr*decay)^t ~ 0.134
  for (int i = 1; i < kp->num_layers(); ++i) {
    const double now = (kp->weights(i) - kp->Feedback(i).transpose()).norm();
    EXPECT_NEAR(now / start[i - 1], lambda_t, 1e-3 * lambda_t) << "layer " << i;
  }
}

// ---- Properties of every rule -------------------------------------------------------------

TEST(FeedbackTest, FaFeedbackNeverChangesAndSparseConnectionsStayRemoved) {
  NonlinearTaskSpec spec;
  spec.train_size = 128;
  auto task = MakeNonlinearTask(spec);
  TrainerOptions o;
  o.network.sizes = {30, 20, 10, 10};
  o.network.connection_sparsity = 0.5f;
  o.feedback.rule = Rule::kFeedbackAlignment;
  o.batch_size = 4;
  o.epochs = 2;
  auto fa = MustCreate(o, Share(task->train));
  const Matrix b1 = fa->Feedback(1), b2 = fa->Feedback(2);
  const Matrix w0 = fa->weights(0);
  const double zeros = (w0.array() == 0).cast<double>().mean();
  EXPECT_NEAR(zeros, 0.5, 0.05);
  EXPECT_NEAR((b1.array() == 0).cast<double>().mean(), 0.5, 0.08);
  ASSERT_OK(fa->Run(nullptr));
  EXPECT_TRUE(fa->Feedback(1) == b1);
  EXPECT_TRUE(fa->Feedback(2) == b2);
  EXPECT_FALSE(fa->weights(0) == w0);
  // Every removed connection is still exactly zero.
  EXPECT_TRUE(((w0.array() == 0) && (fa->weights(0).array() != 0)).count() == 0);
}

TEST(FeedbackTest, FeedbackDistributionScaleAndSparsity) {
  auto data = Share(MakeLinearTask({})->train);
  TrainerOptions o;
  o.network.sizes = {30, 200, 10};
  o.feedback.scale = 0.5f;
  o.feedback.sparsity = 0.25f;
  auto u = MustCreate(o, data);
  const Matrix b = u->Feedback(1);
  EXPECT_EQ(b.rows(), 200);
  EXPECT_EQ(b.cols(), 10);
  EXPECT_LE(b.cwiseAbs().maxCoeff(), 0.5f);
  EXPECT_NEAR((b.array() == 0).cast<double>().mean(), 0.25, 0.05);
  o.feedback.distribution = Distribution::kGaussian;
  o.feedback.sparsity = 0;
  auto g = MustCreate(o, data);
  const Matrix bg = g->Feedback(1);
  const double sd = std::sqrt(bg.array().square().mean());
  EXPECT_NEAR(sd, 0.5, 0.03);
  // The feedback seed is part of the config: another seed, another B, same W.
  o.feedback.seed = 99;
  auto g2 = MustCreate(o, data);
  EXPECT_FALSE(g2->Feedback(1) == bg);
  EXPECT_TRUE(g2->weights(0) == g->weights(0));
}

TEST(DfaTest, TrainsFromZeroInitWhereBackpropCannot) {
  LinearTaskSpec spec;
  spec.train_size = 1000;
  auto data = Share(MakeLinearTask(spec)->train);
  std::map<Rule, double> final_loss;
  for (Rule r : {Rule::kBackprop, Rule::kDirectFeedbackAlignment}) {
    TrainerOptions o;
    o.network.sizes = {30, 40, 40, 10};
    o.network.hidden = Activation::kTanh;
    o.network.bias = false;
    o.init.kind = WeightInit::kUniform;
    o.init.scale = 0.0f;
    o.feedback.rule = r;
    o.optimizer.learning_rate = 0.005f;
    o.batch_size = 10;
    o.epochs = 10;
    auto t = MustCreate(o, data);
    if (r == Rule::kDirectFeedbackAlignment) {
      // DFA's B_i maps the 10 outputs to each 40-unit hidden layer (FA's would be 40x40).
      EXPECT_EQ(t->Feedback(2).rows(), 40);
      EXPECT_EQ(t->Feedback(2).cols(), 10);
    }
    const double before = t->Evaluate(*data)->loss;
    ASSERT_OK(t->Run(nullptr));
    final_loss[r] = t->Evaluate(*data)->loss / before;
  }
  EXPECT_GT(final_loss[Rule::kBackprop], 0.99);  // stuck at the saddle
  EXPECT_LT(final_loss[Rule::kDirectFeedbackAlignment], 0.3);
}

// Every rule reduces the loss on a linearly separable two-class set.
class EveryRuleTest : public ::testing::TestWithParam<Rule> {};

TEST_P(EveryRuleTest, LearnsASeparableToySet) {
  Rng rng(5);
  const int n = 400;
  Matrix x(4, n);
  rng.FillNormal(x, 1.0f);
  std::vector<int32_t> labels(n);
  for (int j = 0; j < n; ++j) {
    labels[j] = j % 2;
    x(0, j) += labels[j] ? 2.0f : -2.0f;
  }
  auto data = Share(*MakeClassificationDataset(x, labels, 2));
  TrainerOptions o;
  o.network.sizes = {4, 16, 16, 2};
  o.network.output = Activation::kSoftmax;
  o.network.loss = Loss::kCrossEntropy;
  o.feedback.rule = GetParam();
  o.optimizer.learning_rate = 0.05f;
  o.batch_size = 8;
  o.epochs = 5;
  o.metrics_every = 10;
  auto t = MustCreate(o, data, data);
  Recorder rec;
  ASSERT_OK(t->Run(&rec));
  EXPECT_LT(rec.evals.back().loss, 0.5 * rec.losses.front());
  EXPECT_GT(rec.evals.back().accuracy, 0.95);
  // Alignment figures are reported per hidden layer on metric steps.
  ASSERT_FALSE(rec.details.empty());
  EXPECT_EQ(rec.details.back().alignment.size(), 2u);
  if (RuleLearnsHidden(GetParam())) {
    EXPECT_FALSE(std::isnan(rec.details.back().alignment[0].update_angle_mean));
  }
  if (GetParam() == Rule::kBackprop) {
    EXPECT_NEAR(rec.details.back().alignment[0].update_angle_mean, 0.0, 0.1);
    EXPECT_NEAR(rec.details.back().alignment[1].weight_angle, 0.0, 0.1);
  }
}

INSTANTIATE_TEST_SUITE_P(AllRules, EveryRuleTest, ::testing::ValuesIn(AllRules()),
                         [](const auto& info) { return std::string(RuleName(info.param)); });

TEST(SignSymmetryTest, BothModesAlignSignsWithW) {
  auto data = Share(MakeLinearTask({})->train);
  for (SignSymmetryMode mode : {SignSymmetryMode::kUniform, SignSymmetryMode::kFixedRandom}) {
    TrainerOptions o;
    o.network.sizes = {30, 20, 10};
    o.feedback.rule = Rule::kSignSymmetry;
    o.feedback.sign_mode = mode;
    o.batch_size = 10;
    o.max_steps = 20;
    o.metrics_every = 1;
    auto t = MustCreate(o, data);
    Recorder rec;
    ASSERT_OK(t->Run(&rec));
    // Same signs as W^T: the weight angle is well below 90 degrees, and uSF is |W|-blind.
    EXPECT_LT(rec.details.back().alignment[0].weight_angle, 60.0);
    EXPECT_GT(rec.details.back().alignment[0].positive_fraction, 0.8);
    EXPECT_LT(rec.losses.back(), rec.losses.front());
  }
}

TEST(PseudoBackpropTest, RecomputesThePseudoinverseEveryKSteps) {
  auto data = Share(MakeLinearTask({})->train);
  TrainerOptions o;
  o.network.sizes = {30, 20, 10};
  o.feedback.rule = Rule::kPseudoBackprop;
  o.feedback.pinv_every = 5;
  o.batch_size = 10;
  o.max_steps = 12;
  auto t = MustCreate(o, data);
  StepMetrics m;
  Matrix b = t->Feedback(1);
  for (int k = 1; k <= 12; ++k) {
    ASSERT_OK(t->Step(&m));
    const Matrix now = t->Feedback(1);
    // Refreshed at the start of steps 5 and 10 (after 5 and 10 completed steps).
    const bool refreshed = !(now == b);
    EXPECT_EQ(refreshed, k == 6 || k == 11) << "step " << k;
    b = now;
  }
  // B is W^+: W B = I (W is 10x20 with full row rank).
  EXPECT_LT((t->weights(1) * t->Feedback(1) - Matrix::Identity(10, 10)).norm(), 2e-1f);
}

// W = U diag(sigma) V^T with the given singular values (orthogonal U, V from QR; the first
// min(rows, cols) of them).
Matrix WithSingularValues(int rows, int cols, const std::vector<double>& sigma) {
  Rng rng(5);
  Matrix a(rows, rows), b(cols, cols);
  rng.FillNormal(a, 1.0f);
  rng.FillNormal(b, 1.0f);
  const Eigen::MatrixXd u = Eigen::HouseholderQR<Eigen::MatrixXd>(a.cast<double>()).householderQ();
  const Eigen::MatrixXd v = Eigen::HouseholderQR<Eigen::MatrixXd>(b.cast<double>()).householderQ();
  Eigen::MatrixXd s = Eigen::MatrixXd::Zero(rows, cols);
  const size_t k_max = std::min<size_t>(sigma.size(), std::min(rows, cols));
  for (size_t k = 0; k < k_max; ++k) s(k, k) = sigma[k];
  return (u * s * v.transpose()).cast<float>();
}

TEST(PseudoBackpropTest, DampedPseudoInverseIsTheClosedFormAndBoundsTheGain) {
  for (auto [rows, cols] : {std::pair{4, 6}, std::pair{6, 4}, std::pair{5, 5}}) {
    SCOPED_TRACE(::testing::Message() << rows << "x" << cols);
    const int k = std::min(rows, cols);
    std::vector<double> sigma = {2.0, 1.0, 0.5, 1e-4, 1e-4};
    sigma.resize(k);
    const Matrix w = WithSingularValues(rows, cols, sigma);
    const Eigen::MatrixXd wd = w.cast<double>();
    // The exact W^+ amplifies the smallest direction by 1/sigma_min.
    const Matrix exact = PseudoInverseTransposed(w);
    EXPECT_GT(Eigen::JacobiSVD<Eigen::MatrixXd>(exact.cast<double>()).singularValues()(0), 1e3);
    const float damping = 0.01f;
    const double lambda = damping * wd.squaredNorm() / k;
    const Matrix damped = PseudoInverseTransposed(w, damping);
    // ((W^T W + lambda I)^-1 W^T)^T, by an explicit inverse in double.
    const Eigen::MatrixXd want =
        ((wd.transpose() * wd + lambda * Eigen::MatrixXd::Identity(cols, cols)).inverse() *
         wd.transpose())
            .transpose();
    EXPECT_LT((damped.cast<double>() - want).norm() / want.norm(), 1e-5);
    // Its gain sigma / (sigma^2 + lambda) is at most 1 / (2 sqrt(lambda)).
    const double gain =
        Eigen::JacobiSVD<Eigen::MatrixXd>(damped.cast<double>()).singularValues()(0);
    EXPECT_LE(gain, 1.0 / (2.0 * std::sqrt(lambda)) * (1 + 1e-5));
    // A well-conditioned W: a tiny damping is the exact pseudo-inverse.
    const Matrix good = WithSingularValues(rows, cols, {2.0, 1.5, 1.0, 0.8, 0.5});
    const Matrix near = PseudoInverseTransposed(good, 1e-7f);
    EXPECT_LT((near - PseudoInverseTransposed(good)).norm() / near.norm(), 1e-4);
  }
  EXPECT_TRUE(PseudoInverseTransposed(Matrix::Zero(3, 4), 0.1f) == Matrix::Zero(3, 4));
}

// Square hidden layers (50 x 50) have singular values near 0: the exact W^+ feeds back
// ~90x BP's signal at init, at ~90 degrees, and a deep tanh net learns little; the damped
// pseudo-inverse stays near BP's scale and learns as FA does.
TEST(PseudoBackpropTest, DampingRescuesADeepNetWithSquareLayers) {
  NonlinearTaskSpec spec;
  spec.train_size = 2000;
  spec.test_size = 1000;
  auto task = MakeNonlinearTask(spec);
  ASSERT_OK(task);
  auto train = Share(task->train), test = Share(task->test);
  auto run = [&](float damping, StepMetrics* first) {
    TrainerOptions o;
    o.network.sizes = {30, 50, 50, 50, 10};
    o.feedback.rule = Rule::kPseudoBackprop;
    o.feedback.pinv_damping = damping;
    o.optimizer.learning_rate = 0.01f;
    o.batch_size = 10;
    o.epochs = 20;
    o.metrics_every = 1000;
    auto t = MustCreate(o, train, test);
    Recorder rec;
    EXPECT_OK(t->Run(&rec));
    *first = rec.details.front();
    return t->Evaluate(*test)->nse;
  };
  StepMetrics exact_first, damped_first;
  const double exact = run(0.0f, &exact_first);
  const double damped = run(0.01f, &damped_first);
  EXPECT_GT(exact_first.alignment[1].norm_ratio, 30.0);
  EXPECT_LT(damped_first.alignment[1].norm_ratio, 5.0);
  EXPECT_LT(damped_first.alignment[1].update_angle_mean,
            exact_first.alignment[1].update_angle_mean);
  EXPECT_LT(damped, 0.75 * exact) << "exact " << exact << ", damped " << damped;
}

// ---- Scale-matched sign symmetry ------------------------------------------------------------

TEST(SignSymmetryTest, ScaledModeIsUsfsDirectionAtMeanAbsWScale) {
  auto data = Share(MakeLinearTask({})->train);
  TrainerOptions o;
  o.network.sizes = {30, 200, 10};
  o.feedback.rule = Rule::kSignSymmetry;
  o.batch_size = 20;
  o.max_steps = 1;
  const Matrix x = data->features.leftCols(20), y = data->targets.leftCols(20);
  std::map<SignSymmetryMode, std::vector<Matrix>> grads;
  for (SignSymmetryMode mode : {SignSymmetryMode::kScaled, SignSymmetryMode::kUniform}) {
    o.feedback.sign_mode = mode;
    std::vector<Matrix> gw, gb;
    ASSERT_OK(MustCreate(o, data)->Gradients(x, y, &gw, &gb));
    grads[mode] = gw;
  }
  o.feedback.rule = Rule::kBackprop;
  std::vector<Matrix> bp, gb;
  auto t = MustCreate(o, data);
  ASSERT_OK(t->Gradients(x, y, &bp, &gb));
  const float mean_abs = t->weights(1).cwiseAbs().mean();
  // The same direction, scaled by mean|W| (the output layer's gradient is the same).
  EXPECT_LT((grads[SignSymmetryMode::kScaled][0] - mean_abs * grads[SignSymmetryMode::kUniform][0])
                    .norm() /
                grads[SignSymmetryMode::kScaled][0].norm(),
            1e-5);
  EXPECT_TRUE(grads[SignSymmetryMode::kScaled][1] == grads[SignSymmetryMode::kUniform][1]);
  // uSF's hidden gradient is ~1/mean|W| times BP's; scaled's is of BP's order.
  const double usf_ratio = grads[SignSymmetryMode::kUniform][0].norm() / bp[0].norm();
  const double scaled_ratio = grads[SignSymmetryMode::kScaled][0].norm() / bp[0].norm();
  EXPECT_GT(usf_ratio, 5.0);
  EXPECT_GT(scaled_ratio, 0.5);
  EXPECT_LT(scaled_ratio, 2.0);
  // It is the default, and it has no feedback matrix to set.
  EXPECT_EQ(TrainerOptions().feedback.sign_mode, SignSymmetryMode::kScaled);
  o.feedback.rule = Rule::kSignSymmetry;
  o.feedback.sign_mode = SignSymmetryMode::kScaled;
  const absl::Status s = MustCreate(o, data)->SetFeedback(1, Matrix::Ones(200, 10));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("scaled"), std::string::npos) << s;
  // Its magnitudes, as the API shows them: mean|W| of the layer.
  auto scaled = MustCreate(o, data);
  const Matrix m = scaled->Feedback(1);
  EXPECT_NEAR(m.minCoeff(), scaled->weights(1).cwiseAbs().mean(), 1e-6);
  EXPECT_NEAR(m.maxCoeff(), m.minCoeff(), 1e-7);
}

}  // namespace
}  // namespace alignd::core
