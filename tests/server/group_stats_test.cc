// server/experiments/group_stats.h: a group's figures over its seeds, from logs.
#include "server/experiments/group_stats.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace alignd::server {
namespace {

using ::testing::ElementsAre;

v1::MetricEvent Step(int64_t step, double loss, double angle) {
  v1::MetricEvent e;
  e.mutable_step()->set_step(step);
  e.mutable_step()->set_loss(loss);
  e.mutable_step()->set_accuracy(NAN);
  auto* a = e.mutable_step()->add_alignment();
  a->set_layer(1);
  a->set_update_angle_mean(angle);
  return e;
}

v1::MetricEvent Eval(int64_t step, bool validation, double error) {
  v1::MetricEvent e;
  e.mutable_eval()->set_step(step);
  e.mutable_eval()->set_validation(validation);
  e.mutable_eval()->set_error_rate(error);
  e.mutable_eval()->set_nse(NAN);
  return e;
}

// Three seeds; the third still running (it has reached step 20 only).
std::vector<std::vector<v1::MetricEvent>> Logs() {
  return {
      {Step(10, 1.0, 80), Eval(10, true, 0.30), Eval(10, false, 0.31), Step(20, 0.5, 60),
       Eval(20, true, 0.20), Eval(20, false, 0.22), Step(30, 0.4, 50), Eval(30, true, 0.25),
       Eval(30, false, 0.21)},
      {Step(10, 2.0, 90), Eval(10, true, 0.40), Eval(10, false, 0.41), Step(20, 0.7, 70),
       Eval(20, true, 0.10), Eval(20, false, 0.12), Step(30, 0.6, 65), Eval(30, true, 0.15),
       Eval(30, false, 0.16)},
      {Step(10, 3.0, 100), Eval(10, true, 0.50), Eval(10, false, 0.52), Step(20, 0.9, 80)},
  };
}

const v1::ExperimentStatistics::Series& SeriesOf(const v1::ExperimentStatistics::Group& g,
                                                 const std::string& f) {
  for (const auto& s : g.series())
    if (s.figure() == f) return s;
  ADD_FAILURE() << "no series " << f;
  static v1::ExperimentStatistics::Series none;
  return none;
}

TEST(GroupStatsTest, EachStepSummarisesTheSessionsThatReachedIt) {
  const auto g = GroupStatistics("g0", Logs(), {}, 0);
  EXPECT_EQ(g.id(), "g0");
  const auto& loss = SeriesOf(g, "train.loss");
  EXPECT_THAT(loss.steps(), ElementsAre(10, 20, 30));
  EXPECT_EQ(loss.values(0).n(), 3);
  EXPECT_DOUBLE_EQ(loss.values(0).mean(), 2.0);
  EXPECT_DOUBLE_EQ(loss.values(0).sd(), 1.0);
  EXPECT_EQ(loss.values(2).n(), 2);  // the running seed has not reached step 30
  EXPECT_DOUBLE_EQ(loss.values(2).mean(), 0.5);
  const auto& angle = SeriesOf(g, "alignment.h1.update_angle_mean");
  EXPECT_DOUBLE_EQ(angle.values(1).mean(), 70);
  // Accuracy is NaN for this regression-like log: n counts no session.
  EXPECT_EQ(SeriesOf(g, "train.accuracy").values(0).n(), 0);
  const auto& val = SeriesOf(g, "validation.error_rate");
  EXPECT_THAT(val.steps(), ElementsAre(10, 20, 30));
  EXPECT_NEAR(val.values(1).mean(), 0.15, 1e-15);
}

TEST(GroupStatsTest, BestValidationAndTheTestValueAtItsStep) {
  const auto g = GroupStatistics("g0", Logs(), {"train.loss"}, 0);
  EXPECT_EQ(g.series_size(), 1);
  EXPECT_THAT(g.best().best_steps(), ElementsAre(20, 20, 10));
  EXPECT_EQ(g.best().validation().n(), 3);
  EXPECT_NEAR(g.best().validation().mean(), (0.20 + 0.10 + 0.50) / 3, 1e-15);
  // At the best step, not the last: 0.22 (not 0.21), 0.12 (not 0.16), 0.52.
  EXPECT_NEAR(g.best().eval_at_best().mean(), (0.22 + 0.12 + 0.52) / 3, 1e-15);
}

TEST(GroupStatsTest, EveryStepsKeepsTheStepsOnIt) {
  const auto g = GroupStatistics("g1", Logs(), {"train.loss"}, 20);
  EXPECT_THAT(SeriesOf(g, "train.loss").steps(), ElementsAre(20));
}

TEST(GroupStatsTest, FiguresAreNamedOnceEach) {
  const auto f = FiguresIn(Logs());
  EXPECT_EQ(f.front(), "train.loss");
  EXPECT_EQ(std::count(f.begin(), f.end(), "validation.error_rate"), 1);
  EXPECT_EQ(f.back(), "alignment.h1.pbp_angle_sd");
  EXPECT_FALSE(FigureOf(Logs()[0][0], "eval.loss").has_value());        // a step event
  EXPECT_FALSE(FigureOf(Logs()[0][1], "eval.error_rate").has_value());  // a validation
  EXPECT_EQ(*FigureOf(Logs()[0][2], "eval.error_rate"), 0.31);
}

}  // namespace
}  // namespace alignd::server
