// Tests for core/trainer.h: determinism, export/import continuity, the observer
// contract, evaluation, and the errors Create/ImportState/ParseState return.
#include "core/trainer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "core/gemm.h"
#include "tests/test_util.h"

namespace alignd::core {
namespace {

std::shared_ptr<const Dataset> Share(Dataset d) {
  return std::make_shared<const Dataset>(std::move(d));
}

std::shared_ptr<const Dataset> Blobs(int n = 300) {
  Rng rng(11);
  Matrix x(6, n);
  rng.FillNormal(x, 1.0f);
  std::vector<int32_t> labels(n);
  for (int j = 0; j < n; ++j) {
    labels[j] = j % 3;
    x(labels[j], j) += 2.5f;
  }
  return Share(*MakeClassificationDataset(x, labels, 3));
}

TrainerOptions SmallOptions(Rule rule) {
  TrainerOptions o;
  o.network.sizes = {6, 12, 8, 3};
  o.network.output = Activation::kSoftmax;
  o.network.loss = Loss::kCrossEntropy;
  o.feedback.rule = rule;
  o.batch_size = 7;  // 300 / 7: 42 steps an epoch, 6 examples skipped
  o.epochs = 3;
  o.metrics_every = 5;
  o.optimizer.learning_rate = 0.1f;
  return o;
}

void ExpectSameParameters(const Trainer& a, const Trainer& b) {
  for (int i = 0; i < a.num_layers(); ++i) {
    EXPECT_TRUE(a.weights(i) == b.weights(i)) << "weights " << i;
    EXPECT_TRUE(a.biases(i) == b.biases(i)) << "biases " << i;
    if (i >= 1) {
      EXPECT_TRUE(a.Feedback(i) == b.Feedback(i)) << "feedback " << i;
    }
  }
}

TEST(TrainerTest, SameSeedIsBitIdenticalAndAnotherSeedDiffers) {
  auto data = Blobs();
  auto a = *Trainer::Create(SmallOptions(Rule::kFeedbackAlignment), data);
  auto b = *Trainer::Create(SmallOptions(Rule::kFeedbackAlignment), data);
  ASSERT_OK(a->Run(nullptr));
  ASSERT_OK(b->Run(nullptr));
  ExpectSameParameters(*a, *b);
  TrainerOptions o = SmallOptions(Rule::kFeedbackAlignment);
  o.seed = 2;
  auto c = *Trainer::Create(o, data);
  ASSERT_OK(c->Run(nullptr));
  EXPECT_FALSE(a->weights(0) == c->weights(0));
}

// n examples of `features` normal features in 10 classes.
std::shared_ptr<const Dataset> RandomClasses(int features, int n, uint64_t seed) {
  Rng rng(seed);
  Matrix x(features, n);
  rng.FillNormal(x, 1.0f);
  std::vector<int32_t> labels(n);
  for (int j = 0; j < n; ++j) labels[j] = j % 10;
  return Share(*MakeClassificationDataset(x, labels, 10));
}

// Trains `count` trainers of `o` on as many threads at once and expects each to end
// bit-identical to `alone`.
void ExpectTwinsAtOnceEqual(const Trainer& alone, const TrainerOptions& o,
                            std::shared_ptr<const Dataset> data, int count) {
  std::vector<std::unique_ptr<Trainer>> twins;
  for (int k = 0; k < count; ++k) twins.push_back(*Trainer::Create(o, data));
  std::vector<std::thread> threads;
  std::vector<absl::Status> status(twins.size());
  for (size_t k = 0; k < twins.size(); ++k)
    threads.emplace_back([&, k] { status[k] = twins[k]->Run(nullptr); });
  for (auto& t : threads) t.join();
  for (size_t k = 0; k < twins.size(); ++k) {
    ASSERT_OK(status[k]);
    ExpectSameParameters(alone, *twins[k]);
  }
}

// N identical trainers on N threads at once end bit-identical to the same trainer run
// alone, for every rule, on layers wide enough that the products go to the library
// (core/gemm.h): the determinism claim holds for sessions trained side by side.
TEST(TrainerTest, IdenticalTrainersOnThreadsAtOnceEqualOneTrainedAlone) {
  auto data = RandomClasses(64, 512, 5);
  for (Rule rule : AllRules()) {
    SCOPED_TRACE(std::string(RuleName(rule)));
    TrainerOptions o;
    o.network.sizes = {64, 200, 120, 10};
    o.feedback.rule = rule;
    o.batch_size = 32;
    o.epochs = 6;
    o.metrics_every = 10;
    o.optimizer.learning_rate = 0.05f;
    auto alone = *Trainer::Create(o, data);
    ASSERT_OK(alone->Run(nullptr));
    ExpectTwinsAtOnceEqual(*alone, o, data, 4);
  }
}

// TrainingConfig.threads: a trainer whose products run on two threads ends bit-identical
// to another on two threads, trained alone or two at once (four threads on the
// machine's cores), for every rule; and it trains the same network as one thread does,
// up to rounding (the bits are only promised per thread count; on the reference machine
// oneDNN splits these products without splitting their sums, and the bits agree).
TEST(TrainerTest, TwoThreadTrainersAreBitIdenticalRunToRun) {
  auto data = RandomClasses(300, 512, 6);
  for (Rule rule : AllRules()) {
    SCOPED_TRACE(std::string(RuleName(rule)));
    TrainerOptions o;
    o.network.sizes = {300, 1000, 256, 10};
    o.feedback.rule = rule;
    o.batch_size = 128;
    o.epochs = 2;
    o.metrics_every = 4;
    o.optimizer.learning_rate = 0.02f;
    o.threads = 2;
    auto alone = *Trainer::Create(o, data);
    SetGemmThreads(1);
    ASSERT_OK(alone->Run(nullptr));
    EXPECT_EQ(GemmThreads(), 2);  // the trainer set its thread's products to two threads
    SetGemmThreads(1);
    ExpectTwinsAtOnceEqual(*alone, o, data, 2);
    o.threads = 1;
    auto one = *Trainer::Create(o, data);
    ASSERT_OK(one->Run(nullptr));
    for (int i = 0; i < one->num_layers(); ++i)
      EXPECT_LT((one->weights(i) - alone->weights(i)).cwiseAbs().maxCoeff(), 1e-3f) << i;
  }
}

TEST(TrainerTest, EpochAccounting) {
  auto t = *Trainer::Create(SmallOptions(Rule::kBackprop), Blobs());
  EXPECT_EQ(t->steps_per_epoch(), 42);
  EXPECT_EQ(t->total_steps(), 126);
  int64_t last_epoch = -1, steps = 0;
  class Obs : public TrainingObserver {
   public:
    Obs(int64_t* e, int64_t* s) : e_(e), s_(s) {}
    bool OnStep(const StepMetrics& m) override {
      EXPECT_EQ(m.step, *s_ + 1);
      EXPECT_EQ(m.epoch, (m.step - 1) / 42);
      *e_ = m.epoch;
      ++*s_;
      return true;
    }
    int64_t *e_, *s_;
  } obs(&last_epoch, &steps);
  ASSERT_OK(t->Run(&obs));
  EXPECT_EQ(steps, 126);
  EXPECT_EQ(last_epoch, 2);
  EXPECT_TRUE(t->done());
  StepMetrics m;
  EXPECT_EQ(t->Step(&m).code(), absl::StatusCode::kFailedPrecondition);
}

// Export after k steps, serialise, parse, import into a fresh trainer, continue: the
// result equals a run that never stopped, bit for bit.
class ContinuityTest
    : public ::testing::TestWithParam<std::tuple<Rule, OptimizerKind, float /*momentum*/>> {};

TEST_P(ContinuityTest, ExportImportContinuesBitForBit) {
  const auto [rule, optimizer, momentum] = GetParam();
  TrainerOptions o = SmallOptions(rule);
  o.optimizer.kind = optimizer;
  o.optimizer.momentum = momentum;
  o.optimizer.learning_rate = optimizer == OptimizerKind::kAdam ? 0.003f : 0.05f;
  o.optimizer.weight_decay = 1e-3f;
  o.network.connection_sparsity = rule == Rule::kFeedbackAlignment ? 0.3f : 0.0f;
  o.feedback.pinv_every = 4;
  auto data = Blobs();
  auto whole = *Trainer::Create(o, data);
  ASSERT_OK(whole->Run(nullptr));

  auto first = *Trainer::Create(o, data);
  StepMetrics m;
  for (int k = 0; k < 59; ++k) ASSERT_OK(first->Step(&m));  // mid-epoch, mid pinv period
  const std::string bytes = SerializeState(first->ExportState());
  auto parsed = ParseState(bytes);
  ASSERT_OK(parsed);
  auto second = *Trainer::Create(o, data);
  ASSERT_OK(second->ImportState(*parsed));
  EXPECT_EQ(second->step(), 59);
  ASSERT_OK(second->Run(nullptr));
  ExpectSameParameters(*whole, *second);
}

INSTANTIATE_TEST_SUITE_P(
    RulesAndOptimizers, ContinuityTest,
    ::testing::Values(std::make_tuple(Rule::kBackprop, OptimizerKind::kSgd, 0.0f),
                      std::make_tuple(Rule::kFeedbackAlignment, OptimizerKind::kSgd, 0.9f),
                      std::make_tuple(Rule::kDirectFeedbackAlignment, OptimizerKind::kAdam, 0.0f),
                      std::make_tuple(Rule::kSignSymmetry, OptimizerKind::kSgd, 0.0f),
                      std::make_tuple(Rule::kKolenPollack, OptimizerKind::kAdam, 0.0f),
                      std::make_tuple(Rule::kPseudoBackprop, OptimizerKind::kSgd, 0.5f),
                      std::make_tuple(Rule::kShallow, OptimizerKind::kSgd, 0.0f)),
    [](const auto& info) {
      return std::string(RuleName(std::get<0>(info.param))) + "_" +
             std::string(OptimizerName(std::get<1>(info.param))) +
             (std::get<2>(info.param) > 0 ? "_momentum" : "");
    });

// The per-example path (batch 1, plain SGD: core/per_example.h) makes each step's forward
// in the update before it; a state taken anywhere (mid-epoch, at the last step of an epoch,
// right after one) and continued gives the whole run's weights bit for bit, with weight
// decay, connection masks, and each rule's feedback.
class PerExampleContinuityTest : public ::testing::TestWithParam<Rule> {};

TEST_P(PerExampleContinuityTest, ExportImportAnywhereContinuesBitForBit) {
  const Rule rule = GetParam();
  TrainerOptions o = SmallOptions(rule);
  o.batch_size = 1;  // 300 steps an epoch
  o.epochs = 2;
  o.optimizer.learning_rate = 0.02f;
  o.optimizer.weight_decay = 1e-3f;
  o.network.connection_sparsity =
      rule == Rule::kFeedbackAlignment || rule == Rule::kKolenPollack ? 0.3f : 0.0f;
  o.feedback.pinv_every = 4;
  auto data = Blobs();
  auto whole = *Trainer::Create(o, data);
  ASSERT_OK(whole->Run(nullptr));
  for (int stop : {59, 299, 300}) {
    SCOPED_TRACE(::testing::Message() << "stopped after step " << stop);
    auto first = *Trainer::Create(o, data);
    StepMetrics m;
    for (int k = 0; k < stop; ++k) ASSERT_OK(first->Step(&m));
    auto parsed = ParseState(SerializeState(first->ExportState()));
    ASSERT_OK(parsed);
    auto second = *Trainer::Create(o, data);
    ASSERT_OK(second->ImportState(*parsed));
    ASSERT_OK(second->Run(nullptr));
    ExpectSameParameters(*whole, *second);
    // And the first, continued in place after the export, too.
    ASSERT_OK(first->Run(nullptr));
    ExpectSameParameters(*whole, *first);
  }
  // The same run with momentum (the general path) is a different run: the check can fail.
  o.optimizer.momentum = 0.5f;
  auto general = *Trainer::Create(o, data);
  ASSERT_OK(general->Run(nullptr));
  const int top = whole->num_layers() - 1;  // shallow trains only the top layer
  EXPECT_FALSE(general->weights(top) == whole->weights(top));
}

INSTANTIATE_TEST_SUITE_P(AllRules, PerExampleContinuityTest,
                         ::testing::Values(Rule::kBackprop, Rule::kFeedbackAlignment,
                                           Rule::kDirectFeedbackAlignment, Rule::kSignSymmetry,
                                           Rule::kKolenPollack, Rule::kPseudoBackprop,
                                           Rule::kShallow),
                         [](const auto& info) { return std::string(RuleName(info.param)); });

TEST(TrainerTest, ObserverStopsAndRunContinues) {
  class StopAt : public TrainingObserver {
   public:
    bool OnStep(const StepMetrics& m) override { return m.step % 50 != 0; }
  } stop;
  auto t = *Trainer::Create(SmallOptions(Rule::kFeedbackAlignment), Blobs());
  ASSERT_OK(t->Run(&stop));
  EXPECT_EQ(t->step(), 50);
  ASSERT_OK(t->Run(&stop));
  EXPECT_EQ(t->step(), 100);
  ASSERT_OK(t->Run(nullptr));
  EXPECT_TRUE(t->done());
  // Stopping and continuing changes nothing.
  auto u = *Trainer::Create(SmallOptions(Rule::kFeedbackAlignment), Blobs());
  ASSERT_OK(u->Run(nullptr));
  ExpectSameParameters(*t, *u);
}

TEST(TrainerTest, EvaluatesEveryKStepsAndOnceAtTheEnd) {
  class Evals : public TrainingObserver {
   public:
    bool OnStep(const StepMetrics&) override { return true; }
    bool OnEvaluation(const EvalMetrics& e) override {
      steps.push_back(e.step);
      last = e;
      return true;
    }
    std::vector<int64_t> steps;
    EvalMetrics last;
  } evals;
  TrainerOptions o = SmallOptions(Rule::kBackprop);
  o.eval_every = 50;
  auto data = Blobs();
  auto t = *Trainer::Create(o, data, data);
  ASSERT_OK(t->Run(&evals));
  EXPECT_EQ(evals.steps, (std::vector<int64_t>{50, 100, 126}));
  EXPECT_EQ(evals.last.examples, 300);
  EXPECT_GT(evals.last.accuracy, 0.9);
  EXPECT_NEAR(evals.last.error_rate, 1 - evals.last.accuracy, 1e-12);
  // Predict agrees with Evaluate.
  auto y = t->Predict(data->features);
  ASSERT_OK(y);
  int correct = 0;
  for (int j = 0; j < 300; ++j) {
    Eigen::Index k;
    y->col(j).maxCoeff(&k);
    correct += k == data->labels[j];
  }
  EXPECT_NEAR(correct / 300.0, evals.last.accuracy, 1e-12);
}

// Predict and Evaluate keep their activations from one call to the next, in a pool shared by
// every thread (core/network.cc): interleaved calls on networks of other shapes, of other widths
// and of more than one chunk (1,024 examples) give each the bits it gives alone.
TEST(TrainerTest, PredictAndEvaluateInterleavedAcrossNetsAndWidthsGiveTheSameBits) {
  auto data = Blobs();
  auto a = *Trainer::Create(SmallOptions(Rule::kBackprop), data);
  TrainerOptions wide = SmallOptions(Rule::kFeedbackAlignment);
  wide.network.sizes = {6, 40, 3};
  auto b = *Trainer::Create(wide, data);
  ASSERT_OK(a->Run(nullptr));
  ASSERT_OK(b->Run(nullptr));
  const Matrix x = data->features;      // 300 examples
  Matrix many(x.rows(), 7 * x.cols());  // 2,100: three chunks, the last short
  for (int k = 0; k < 7; ++k) many.middleCols(k * x.cols(), x.cols()) = x;
  // Each call's result in the first round; the second round repeats them, interleaved.
  std::vector<Matrix> first;
  double first_loss = 0;
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round);
    std::vector<Matrix> got = {*a->Predict(x), *b->Predict(x), *a->Predict(many),
                               *a->Predict(x.leftCols(1)), *b->Predict(many)};
    const double loss = a->Evaluate(*data)->loss;
    if (round == 0) {
      first = got;
      first_loss = loss;
      // The chunks of the wide call are the 300 examples' outputs (to rounding: another
      // product width may sum in another order).
      for (int k = 0; k < 7; ++k)
        EXPECT_LT((got[2].middleCols(k * x.cols(), x.cols()) - got[0]).cwiseAbs().maxCoeff(),
                  1e-5f);
      continue;
    }
    for (size_t k = 0; k < got.size(); ++k) EXPECT_TRUE(got[k] == first[k]) << "call " << k;
    EXPECT_EQ(loss, first_loss);
  }
}

// The pool of activations is shared by threads: calls on four threads at once, started together,
// of two networks (shared, as the service shares them) and three widths, each give the bits they
// give alone, in every repeat; afterwards the pool keeps no more than its bound.
TEST(TrainerTest, PredictAndEvaluateOnThreadsAtOnceGiveTheBitsTheyGiveAlone) {
  auto data = Blobs();
  TrainerOptions narrow = SmallOptions(Rule::kBackprop);
  TrainerOptions wide = SmallOptions(Rule::kFeedbackAlignment);
  wide.network.sizes = {6, 40, 3};
  std::vector<Network> nets;
  for (const TrainerOptions& o : {narrow, wide}) {
    auto t = *Trainer::Create(o, data);
    ASSERT_OK(t->Run(nullptr));
    const TrainerState st = t->ExportState();
    nets.push_back(*Network::Create(o.network, st.weights, st.biases, true));
  }
  const Network &a = nets[0], &b = nets[1];
  const Matrix x = data->features;
  Matrix many(x.rows(), 4 * x.cols());  // 1,200: two chunks
  for (int k = 0; k < 4; ++k) many.middleCols(k * x.cols(), x.cols()) = x;
  auto calls = [&] {
    return std::vector<Matrix>{*a.Predict(x), *b.Predict(many), *a.Predict(x.leftCols(3)),
                               *b.Predict(x)};
  };
  const std::vector<Matrix> alone = calls();
  const double alone_loss = b.Evaluate(*data)->loss;
  constexpr int kThreads = 4, kRepeats = 20;
  std::vector<int> mismatches(kThreads, 0);
  std::atomic<int> waiting{kThreads};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      waiting.fetch_sub(1);
      while (waiting.load() > 0) std::this_thread::yield();
      for (int r = 0; r < kRepeats; ++r) {
        const std::vector<Matrix> got = calls();
        for (size_t k = 0; k < got.size(); ++k) mismatches[t] += !(got[k] == alone[k]);
        mismatches[t] += b.Evaluate(*data)->loss != alone_loss;
      }
    });
  for (auto& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
  EXPECT_GE(KeptChunkWorkspaces(), 1u);
  EXPECT_LE(KeptChunkWorkspaces(), MaxKeptChunkWorkspaces());
}

// Records every evaluation; stops the run after a validation one if asked to.
class Evals : public TrainingObserver {
 public:
  bool OnStep(const StepMetrics&) override { return true; }
  bool OnEvaluation(const EvalMetrics& e) override {
    seen.push_back(e);
    return !e.validation || !stop_after_validation;
  }
  bool stop_after_validation = false;
  std::vector<EvalMetrics> seen;
};

// The first n - v examples of a set, or its last v.
std::shared_ptr<const Dataset> Columns(const Dataset& d, int64_t first, int64_t count) {
  std::vector<int32_t> labels(d.labels.begin() + first, d.labels.begin() + first + count);
  return Share(
      *MakeClassificationDataset(d.features.middleCols(first, count), labels, d.num_classes));
}

TEST(TrainerTest, ValidationExamplesAreHeldOutAndEvaluatedFirst) {
  Evals evals;
  auto data = Blobs(300);
  auto test = Blobs(90);
  TrainerOptions o = SmallOptions(Rule::kFeedbackAlignment);
  o.validation_fraction = 0.2f;  // the last 60 of 300
  o.eval_every = 30;
  EXPECT_EQ(ValidationExamples(o, 300), 60);
  auto t = *Trainer::Create(o, data, test);
  EXPECT_EQ(t->steps_per_epoch(), 240 / 7);
  EXPECT_EQ(t->total_steps(), 3 * (240 / 7));
  EXPECT_EQ(TotalSteps(o, 300), t->total_steps());
  ASSERT_OK(t->Run(&evals));

  // Training on 300 with 60 held out is training on the first 240, bit for bit: the
  // held-out examples are never trained on.
  TrainerOptions plain = o;
  plain.validation_fraction = 0;
  auto u = *Trainer::Create(plain, Columns(*data, 0, 240), test);
  ASSERT_OK(u->Run(nullptr));
  ExpectSameParameters(*t, *u);

  // Every evaluation: validation (the last 60), then the test set; the last at the end.
  std::vector<int64_t> steps{30, 60, 90, 102};
  ASSERT_EQ(evals.seen.size(), 2 * steps.size());
  for (size_t k = 0; k < steps.size(); ++k) {
    const EvalMetrics& v = evals.seen[2 * k];
    const EvalMetrics& e = evals.seen[2 * k + 1];
    EXPECT_TRUE(v.validation);
    EXPECT_FALSE(e.validation);
    EXPECT_EQ(v.step, steps[k]);
    EXPECT_EQ(e.step, steps[k]);
    EXPECT_EQ(v.examples, 60);
    EXPECT_EQ(e.examples, 90);
  }
  const EvalMetrics held = *u->Evaluate(*Columns(*data, 240, 60));
  EXPECT_EQ(evals.seen[6].loss, held.loss);
  EXPECT_EQ(evals.seen[6].error_rate, held.error_rate);
  EXPECT_EQ(evals.seen[7].loss, u->Evaluate(*test)->loss);

  // Without an eval set, the validation examples alone are evaluated.
  Evals alone;
  auto w = *Trainer::Create(o, data);
  ASSERT_OK(w->Run(&alone));
  ASSERT_EQ(alone.seen.size(), steps.size());
  for (const EvalMetrics& e : alone.seen) EXPECT_TRUE(e.validation);
}

TEST(TrainerTest, ARunStoppedBetweenValidationAndTestMakesOnlyTheTest) {
  auto data = Blobs(300);
  TrainerOptions o = SmallOptions(Rule::kBackprop);
  o.validation_fraction = 0.2f;
  o.eval_every = 30;
  auto t = *Trainer::Create(o, data, data);
  Evals first;
  first.stop_after_validation = true;
  ASSERT_OK(t->Run(&first));
  // A stop asked for at validation still gets the test evaluation of that step.
  ASSERT_EQ(first.seen.size(), 2u);
  EXPECT_EQ(t->step(), 30);

  // A restart from the state at step 30 whose log ends with the validation: only the
  // test evaluation is made again, then training goes on.
  auto u = *Trainer::Create(o, data, data);
  ASSERT_OK(u->ImportState(t->ExportState()));
  u->MarkValidated();
  Evals second;
  ASSERT_OK(u->Run(&second));
  ASSERT_GE(second.seen.size(), 3u);
  EXPECT_FALSE(second.seen[0].validation);
  EXPECT_EQ(second.seen[0].step, 30);
  EXPECT_TRUE(second.seen[1].validation);
  EXPECT_EQ(second.seen[1].step, 60);
  // MarkEvaluated: neither.
  auto w = *Trainer::Create(o, data, data);
  ASSERT_OK(w->ImportState(t->ExportState()));
  w->MarkEvaluated();
  Evals third;
  ASSERT_OK(w->Run(&third));
  EXPECT_EQ(third.seen[0].step, 60);
}

TEST(TrainerTest, ValidationFractionIsCheckedAgainstTheData) {
  TrainerOptions o = SmallOptions(Rule::kFeedbackAlignment);
  for (float bad : {-0.1f, 1.0f, std::numeric_limits<float>::quiet_NaN()}) {
    o.validation_fraction = bad;
    const absl::Status s = ValidateOptions(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(s.message()).find("validation_fraction"), std::string::npos) << s;
  }
  o.validation_fraction = 1.0f / 6;
  EXPECT_EQ(ValidationExamples(o, 60000), 10000);
  EXPECT_EQ(TrainingExamples(o, 60000), 50000);
  EXPECT_EQ(ValidationExamples(o, 2), 1);  // at least one when asked for
  o.validation_fraction = 0;
  EXPECT_EQ(ValidationExamples(o, 60000), 0);
  // Too few examples left to make a batch.
  o.validation_fraction = 0.99f;
  auto t = Trainer::Create(o, Blobs(300));
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(t.status().message()).find("only 3 of the training set's 300"),
            std::string::npos)
      << t.status();
}

TEST(TrainerTest, DivergenceIsReportedWithTheStep) {
  LinearTaskSpec spec;
  auto data = Share(MakeLinearTask(spec)->train);
  TrainerOptions o;
  o.network.sizes = {30, 20, 10};
  o.network.hidden = Activation::kLinear;
  o.optimizer.learning_rate = 5.0f;
  o.epochs = 5;
  auto t = *Trainer::Create(o, data);
  const absl::Status s = t->Run(nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(s.message()).find("diverged"), std::string::npos) << s;
}

TEST(TrainerTest, CreateRefusesConfigsThatDoNotFitTheData) {
  auto data = Blobs();
  struct Case {
    std::string name, message;
    std::function<void(TrainerOptions&)> mutate;
  } const kCases[] = {
      {"input width", "network.sizes[0] is 5 but the training set has 6 features",
       [](TrainerOptions& o) { o.network.sizes[0] = 5; }},
      {"output width", "network.sizes[3] is 4 but the training set has 3 classes",
       [](TrainerOptions& o) { o.network.sizes[3] = 4; }},
      {"batch", "batch_size is 301 but the training set has only 300",
       [](TrainerOptions& o) { o.batch_size = 301; }},
      {"bad field", "optimizer.learning_rate",
       [](TrainerOptions& o) { o.optimizer.learning_rate = -1; }},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    TrainerOptions o = SmallOptions(Rule::kBackprop);
    c.mutate(o);
    auto t = Trainer::Create(o, data);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(t.status().message()).find(c.message), std::string::npos) << t.status();
  }
  EXPECT_FALSE(Trainer::Create(SmallOptions(Rule::kBackprop), nullptr).ok());
  // Softmax cross-entropy needs labels.
  TrainerOptions o;
  o.network.sizes = {30, 10, 10};
  o.network.output = Activation::kSoftmax;
  o.network.loss = Loss::kCrossEntropy;
  auto t = Trainer::Create(o, Share(MakeLinearTask({})->train));
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TrainerTest, ImportAndParseRefuseStatesThatDoNotFit) {
  auto data = Blobs();
  auto t = *Trainer::Create(SmallOptions(Rule::kFeedbackAlignment), data);
  TrainerState good = t->ExportState();
  TrainerState wrong = good;
  wrong.weights[1] = Matrix::Zero(3, 3);
  EXPECT_EQ(t->ImportState(wrong).code(), absl::StatusCode::kInvalidArgument);
  wrong = good;
  wrong.feedback[1] = Matrix::Zero(2, 2);
  EXPECT_EQ(t->ImportState(wrong).code(), absl::StatusCode::kInvalidArgument);
  wrong = good;
  wrong.permutation.pop_back();
  EXPECT_EQ(t->ImportState(wrong).code(), absl::StatusCode::kInvalidArgument);
  wrong = good;
  wrong.permutation[0] = 100000;
  EXPECT_EQ(t->ImportState(wrong).code(), absl::StatusCode::kInvalidArgument);
  // A BP state does not fit an FA trainer (no feedback matrices).
  auto bp = *Trainer::Create(SmallOptions(Rule::kBackprop), data);
  EXPECT_EQ(t->ImportState(bp->ExportState()).code(), absl::StatusCode::kInvalidArgument);

  const std::string bytes = SerializeState(good);
  EXPECT_OK(ParseState(bytes));
  for (size_t cut : {size_t{0}, size_t{5}, size_t{40}, bytes.size() / 2, bytes.size() - 1}) {
    SCOPED_TRACE(cut);
    EXPECT_EQ(ParseState(bytes.substr(0, cut)).status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(ParseState(bytes + "x").status().code(), absl::StatusCode::kInvalidArgument);
  std::string bad_version = bytes;
  bad_version[8] = 9;
  EXPECT_NE(std::string(ParseState(bad_version).status().message()).find("version"),
            std::string::npos);
  // Complete encodings of states that are not consistent in themselves are refused too.
  TrainerState no_biases = good;
  no_biases.biases.clear();
  EXPECT_EQ(ParseState(SerializeState(no_biases)).status().code(),
            absl::StatusCode::kInvalidArgument);
  TrainerState short_bias = good;
  short_bias.biases[1] = Matrix::Zero(2, 1);
  EXPECT_EQ(ParseState(SerializeState(short_bias)).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Weights whose shapes do not chain parse (a state does not know its layers: a
  // convolution's W is channels x kernel), and the trainer refuses them.
  TrainerState unchained = good;
  unchained.weights[1] = Matrix::Zero(unchained.weights[1].rows(), 3);
  absl::StatusOr<TrainerState> parsed = ParseState(SerializeState(unchained));
  ASSERT_OK(parsed);
  EXPECT_EQ(t->ImportState(*parsed).code(), absl::StatusCode::kInvalidArgument);
  TrainerState no_layers;
  EXPECT_EQ(ParseState(SerializeState(no_layers)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Step decay: epochs 1 and 2 train at half the rate, as a run restarted there at that rate does.
TEST(TrainerTest, StepDecayMultipliesTheRateAtItsEpochs) {
  auto data = Blobs();
  TrainerOptions o = SmallOptions(Rule::kFeedbackAlignment);
  o.optimizer.decay_epochs = {1};
  o.optimizer.decay_factor = 0.5f;
  auto decayed = *Trainer::Create(o, data);
  ASSERT_OK(decayed->Run(nullptr));

  TrainerOptions plain = SmallOptions(Rule::kFeedbackAlignment);
  auto first = *Trainer::Create(plain, data);
  StepMetrics m;
  while (first->epoch() < 1) ASSERT_OK(first->Step(&m));
  plain.optimizer.learning_rate = 0.05f;  // 0.1f * 0.5f exactly
  auto rest = *Trainer::Create(plain, data);
  ASSERT_OK(rest->ImportState(first->ExportState()));
  ASSERT_OK(rest->Run(nullptr));
  ExpectSameParameters(*decayed, *rest);
  // And the decay changes the run.
  auto constant = *Trainer::Create(SmallOptions(Rule::kFeedbackAlignment), data);
  ASSERT_OK(constant->Run(nullptr));
  EXPECT_FALSE(constant->weights(0) == decayed->weights(0));

  o.optimizer.decay_epochs = {3, 3};
  EXPECT_NE(ValidateOptions(o).message().find("optimizer.decay_epochs[1]"), std::string::npos);
  o.optimizer.decay_epochs = {3};
  o.optimizer.decay_factor = 0;
  EXPECT_NE(ValidateOptions(o).message().find("optimizer.decay_factor"), std::string::npos);
}

TEST(TrainerTest, PredictAndEvaluateCheckShapes) {
  auto t = *Trainer::Create(SmallOptions(Rule::kBackprop), Blobs());
  EXPECT_EQ(t->Predict(Matrix::Zero(5, 2)).status().code(), absl::StatusCode::kInvalidArgument);
  Matrix nan = Matrix::Zero(6, 2);
  nan(0, 0) = NAN;
  EXPECT_EQ(t->Predict(nan).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t->Evaluate(MakeLinearTask({})->train).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace alignd::core
