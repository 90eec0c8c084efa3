// server/experiments/early_stopping.h: ASHA's rungs and decisions, median stopping, and the
// policy's checks; the stopper on stored logs is exercised in experiment_impl_test.
#include "server/experiments/early_stopping.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

namespace alignd::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::EarlyStopping::Asha Asha(int64_t min_steps, int eta = 0, int rungs = 0) {
  v1::EarlyStopping::Asha a;
  a.set_min_steps(min_steps);
  a.set_reduction_factor(eta);
  a.set_rungs(rungs);
  return a;
}

TEST(AshaRungStepsTest, GeometricBelowTheTotalAndCapped) {
  EXPECT_THAT(AshaRungSteps(Asha(10), 1000), ElementsAre(10, 30, 90, 270, 810));
  EXPECT_THAT(AshaRungSteps(Asha(10), 810), ElementsAre(10, 30, 90, 270));
  EXPECT_THAT(AshaRungSteps(Asha(10, 2, 3), 1000), ElementsAre(10, 20, 40));
  EXPECT_THAT(AshaRungSteps(Asha(100), 100), ElementsAre());
  // No overflow however large the total.
  EXPECT_EQ(AshaRungSteps(Asha(1, 10), INT64_MAX).size(), 19u);
}

TEST(StoppingFigureTest, ErrorRateThenNseAndNanIsWorst) {
  EXPECT_EQ(StoppingFigure(0.25, NAN), 0.25);
  EXPECT_EQ(StoppingFigure(NAN, 0.5), 0.5);
  EXPECT_TRUE(std::isinf(StoppingFigure(NAN, NAN)));
}

// Sessions arrive at the rung one after another: each continues only if among the
// ceil(n / 3) best of the n that reached it so far.
TEST(AshaDecisionTest, KeepsTheBestThirdOfThoseThatArrived) {
  std::map<std::string, ValidationHistory> all;
  const auto asha = Asha(10);
  auto arrive = [&](const std::string& name, double v) {
    all[name].points.emplace_back(12, v);  // the first validation at or after step 10
    return AshaDecision(asha, all, name, 100);
  };
  EXPECT_FALSE(arrive("a", 0.5));  // alone: continues
  EXPECT_FALSE(arrive("b", 0.4));  // best of 2
  auto c = arrive("c", 0.6);       // 3rd of 3; keep 1
  ASSERT_TRUE(c);
  EXPECT_THAT(*c, HasSubstr("rung 0 (step 10)"));
  EXPECT_THAT(*c, HasSubstr("0.6 (step 12)"));
  EXPECT_THAT(*c, HasSubstr("best 1 of the 3 sessions"));
  EXPECT_THAT(*c, HasSubstr("0.4"));
  EXPECT_FALSE(arrive("d", 0.45));  // 2nd of 4: keep 2
  EXPECT_TRUE(arrive("e", 0.5));    // 4th of 5 (ties with a): keep 2
  // Decided once per rung: asked again at the same point, nothing new.
  EXPECT_FALSE(AshaDecision(asha, all, "b", 100));
  // The next rung counts only the sessions that reached it.
  all["b"].points.emplace_back(30, 0.3);
  EXPECT_FALSE(AshaDecision(asha, all, "b", 100));
  all["d"].points.emplace_back(31, 0.35);
  EXPECT_TRUE(AshaDecision(asha, all, "d", 100));  // 2nd of 2: keep 1
  EXPECT_EQ(all["d"].rungs.at(1), 0.35);
}

TEST(AshaDecisionTest, ALateFirstEvaluationDecidesEveryRungItPassedInOrder) {
  std::map<std::string, ValidationHistory> all;
  const auto asha = Asha(10);
  all["a"].points = {{10, 0.2}, {30, 0.1}};
  all["a"].rungs = {{0, 0.2}, {1, 0.1}};
  all["b"].points = {{40, 0.15}};  // evaluated first at 40: its figure at rungs 10 and 30
  auto why = AshaDecision(asha, all, "b", 100);
  ASSERT_TRUE(why);  // rung 0: 0.15 beats 0.2; rung 1: 0.15 loses to 0.1 (keep 1 of 2)
  EXPECT_THAT(*why, HasSubstr("rung 1 (step 30)"));
  EXPECT_EQ(all["b"].rungs.size(), 2u);
}

TEST(AshaDecisionTest, ARungAtOrPastTheSessionsEndIsNone) {
  std::map<std::string, ValidationHistory> all;
  all["a"].points = {{10, 0.1}};
  all["a"].rungs = {{0, 0.1}};
  all["b"].points = {{10, 0.9}};
  EXPECT_FALSE(AshaDecision(Asha(10), all, "b", 10));  // a 10-step session has no rung at 10
  EXPECT_TRUE(AshaDecision(Asha(10), all, "b", 11));
}

// Loaded from storage: a rung counts as judged only if the session logged a validation after
// it (it went on); one whose newest validation is at the rung may still be waiting for its
// decision on its own worker, and is judged when it asks.
TEST(AshaDecisionTest, ARungLoadedFromStorageIsJudgedOnlyIfTheSessionWentOnPastIt) {
  const auto asha = Asha(10);
  const auto rungs = AshaRungSteps(asha, 1000);
  std::map<std::string, ValidationHistory> all;
  all["a"].points = {{10, 0.1}, {20, 0.1}};
  RecordRungs(rungs, all["a"], all["a"].points.back().first);
  all["b"].points = {{10, 0.9}};  // stored, its decision not made yet
  RecordRungs(rungs, all["b"], all["b"].points.back().first);
  EXPECT_EQ(all["a"].decided.count(0), 1u);
  EXPECT_EQ(all["b"].rungs.at(0), 0.9);  // in the pool of rung 0 ...
  EXPECT_EQ(all["b"].decided.count(0), 0u);
  auto why = AshaDecision(asha, all, "b", 1000);  // ... and judged when it asks
  ASSERT_TRUE(why);
  EXPECT_THAT(*why, HasSubstr("rung 0 (step 10)"));
}

TEST(MedianDecisionTest, WorseThanTheMedianOfOthersAtTheSameStepStops) {
  v1::EarlyStopping::MedianStopping m;
  m.set_grace_steps(20);
  std::map<std::string, ValidationHistory> all;
  all["a"].points = {{10, 0.5}, {20, 0.3}, {30, 0.2}};
  all["b"].points = {{10, 0.4}, {20, 0.35}, {30, 0.3}};
  all["c"].points = {{10, 0.6}, {20, 0.5}};
  all["d"].points = {{10, 0.2}};  // has not reached 20: not counted
  all["x"].points = {{10, 0.9}, {20, 0.45}};
  // Before the grace steps: never.
  EXPECT_FALSE(MedianDecision(m, all, "x", 10));
  // At 20: the others' best by 20 are 0.3, 0.35, 0.5 (median 0.35); 0.45 is worse.
  auto why = MedianDecision(m, all, "x", 20);
  ASSERT_TRUE(why);
  EXPECT_THAT(*why, HasSubstr("at step 20 its best validation figure 0.45"));
  EXPECT_THAT(*why, HasSubstr("median 0.35 of the best figures of the 3 other sessions"));
  // b: 0.35 is not worse than the median of 0.3, 0.45 and 0.5.
  EXPECT_FALSE(MedianDecision(m, all, "b", 20));
  // At 30 only a and b reached it: fewer than 3 others, no decision.
  all["x"].points.emplace_back(30, 0.44);
  EXPECT_FALSE(MedianDecision(m, all, "x", 30));
  m.set_min_sessions(2);
  EXPECT_TRUE(MedianDecision(m, all, "x", 30));  // 0.44 vs the median of 0.2 and 0.3
}

TEST(CheckEarlyStoppingTest, NamesWhatIsMissing) {
  v1::TrainingConfig base;
  v1::EarlyStopping p;
  EXPECT_TRUE(CheckEarlyStopping(p, base).ok());  // no policy
  *p.mutable_asha() = Asha(10);
  EXPECT_THAT(std::string(CheckEarlyStopping(p, base).message()),
              HasSubstr("validation_fraction > 0"));
  base.set_validation_fraction(0.2f);
  EXPECT_THAT(std::string(CheckEarlyStopping(p, base).message()), HasSubstr("eval_every > 0"));
  base.set_eval_every(10);
  EXPECT_TRUE(CheckEarlyStopping(p, base).ok());
  p.mutable_asha()->set_reduction_factor(1);
  EXPECT_THAT(std::string(CheckEarlyStopping(p, base).message()),
              HasSubstr("asha.reduction_factor must be >= 2"));
  p.mutable_asha()->set_reduction_factor(0);
  p.mutable_asha()->set_min_steps(0);
  EXPECT_EQ(CheckEarlyStopping(p, base).code(), absl::StatusCode::kInvalidArgument);
  p.mutable_median()->set_grace_steps(-1);
  EXPECT_THAT(std::string(CheckEarlyStopping(p, base).message()),
              HasSubstr("median.grace_steps must be >= 0"));
}

}  // namespace
}  // namespace alignd::server
