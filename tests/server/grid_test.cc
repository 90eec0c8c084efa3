// server/experiments/grid.h: an experiment's sessions from rules x grid x seeds.
#include "server/experiments/grid.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace alignd::server {
namespace {

using ::testing::HasSubstr;

google::protobuf::Value Num(double v) {
  google::protobuf::Value x;
  x.set_number_value(v);
  return x;
}
google::protobuf::Value Str(const std::string& v) {
  google::protobuf::Value x;
  x.set_string_value(v);
  return x;
}

v1::Experiment Grid() {
  v1::Experiment e;
  e.mutable_config()->set_batch_size(8);
  e.add_rules(v1::RULE_BACKPROP);
  e.add_rules(v1::RULE_FEEDBACK_ALIGNMENT);
  for (uint64_t s : {1, 2, 3}) e.add_seeds(s);
  auto* lr = e.add_grid();
  lr->set_field("optimizer.learning_rate");
  *lr->add_values() = Num(0.01);
  *lr->add_values() = Num(0.1);
  auto* batch = e.add_grid();
  batch->set_field("batch_size");
  *batch->add_values() = Num(1);
  *batch->add_values() = Num(32);
  return e;
}

TEST(GridTest, RulesThenPointsLastAxisFastestThenSeeds) {
  auto plan = PlanSessions(Grid(), 1000);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->size(), 2u * 4 * 3);
  const PlannedSession& s = (*plan)[1 * 3 + 2];  // group 1, third seed
  EXPECT_EQ(s.group, "g1");
  EXPECT_EQ(s.rule, v1::RULE_BACKPROP);
  EXPECT_EQ(s.seed, 3u);
  EXPECT_EQ(s.config.seed(), 3u);
  EXPECT_FLOAT_EQ(s.config.optimizer().learning_rate(), 0.01f);
  EXPECT_EQ(s.config.batch_size(), 32);
  EXPECT_EQ(s.point.at("batch_size").number_value(), 32);
  const PlannedSession& last = plan->back();
  EXPECT_EQ(last.group, "g7");
  EXPECT_EQ(last.config.feedback().rule(), v1::RULE_FEEDBACK_ALIGNMENT);
  EXPECT_FLOAT_EQ(last.config.optimizer().learning_rate(), 0.1f);
}

TEST(GridTest, NoRulesSeedsOrGridIsOneSessionOfTheBase) {
  v1::Experiment e;
  e.mutable_config()->mutable_feedback()->set_rule(v1::RULE_KOLEN_POLLACK);
  e.mutable_config()->set_seed(9);
  auto plan = PlanSessions(e, 10);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->size(), 1u);
  EXPECT_EQ((*plan)[0].rule, v1::RULE_KOLEN_POLLACK);
  EXPECT_EQ((*plan)[0].seed, 9u);
}

TEST(GridTest, EnumsByName) {
  v1::TrainingConfig c;
  ASSERT_TRUE(SetConfigField("network.hidden_activation", Str("ACTIVATION_RELU"), "x", &c).ok());
  EXPECT_EQ(c.network().hidden_activation(), v1::ACTIVATION_RELU);
}

void ExpectBad(const std::string& path, const google::protobuf::Value& v,
               const std::string& words) {
  v1::TrainingConfig c;
  absl::Status st = SetConfigField(path, v, "experiment.grid[0].values[0]", &c);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << path;
  EXPECT_THAT(std::string(st.message()), HasSubstr(words)) << path;
  EXPECT_THAT(std::string(st.message()), HasSubstr("experiment.grid[0].values[0]: ")) << path;
}

TEST(GridTest, WhatCannotBeSetIsNamed) {
  ExpectBad("optimizer.learning_rat", Num(1), "has no 'learning_rat'");
  ExpectBad("batch_size", Num(1.5), "takes a whole number");
  ExpectBad("batch_size", Str("32"), "takes a whole number");
  ExpectBad("network.hidden_activation", Str("ACTIVATION_SWISH"), "is not a value of");
  ExpectBad("network.sizes", Num(3), "is a list");
  ExpectBad("optimizer", Num(3), "is a message");
  v1::Experiment e = Grid();
  auto plan = PlanSessions(e, 23);
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("would be 24 sessions"));
  e.mutable_grid(1)->clear_values();
  EXPECT_THAT(std::string(PlanSessions(e, 100).status().message()),
              HasSubstr("experiment.grid[1] (batch_size) has no values"));
}

TEST(GridTest, VariantsAreRulesWithSettingsAndShowInThePoint) {
  v1::Experiment e = Grid();
  e.clear_rules();
  e.mutable_grid()->RemoveLast();  // learning rate per variant instead of on the grid
  e.mutable_grid()->RemoveLast();
  auto* bp = e.add_variants();
  bp->set_rule(v1::RULE_BACKPROP);
  (*bp->mutable_set())["optimizer.learning_rate"] = Num(0.2);
  for (double damping : {0.0, 0.01}) {  // one rule twice
    auto* pbp = e.add_variants();
    pbp->set_rule(v1::RULE_PSEUDO_BACKPROP);
    pbp->set_name(damping == 0 ? "pbp exact" : "pbp damped");
    (*pbp->mutable_set())["optimizer.learning_rate"] = Num(0.05);
    (*pbp->mutable_set())["feedback.pinv_damping"] = Num(damping);
  }
  auto plan = PlanSessions(e, 100);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->size(), 9u);  // three groups of three seeds
  EXPECT_FLOAT_EQ((*plan)[0].config.optimizer().learning_rate(), 0.2f);
  EXPECT_EQ((*plan)[0].config.feedback().rule(), v1::RULE_BACKPROP);
  EXPECT_FLOAT_EQ((*plan)[8].config.optimizer().learning_rate(), 0.05f);
  EXPECT_FLOAT_EQ((*plan)[8].config.feedback().pinv_damping(), 0.01f);
  EXPECT_FLOAT_EQ((*plan)[5].config.feedback().pinv_damping(), 0.0f);
  EXPECT_EQ((*plan)[8].group, "g2");
  EXPECT_EQ((*plan)[8].variant, "pbp damped");
  EXPECT_EQ((*plan)[8].point.at("feedback.pinv_damping").number_value(), 0.01);
  // With a grid: variants x points.
  auto* batch = e.add_grid();
  batch->set_field("batch_size");
  *batch->add_values() = Num(1);
  *batch->add_values() = Num(32);
  EXPECT_EQ(PlanSessions(e, 100)->size(), 18u);
  // Refused, naming the entry: rules and variants both, a variant without a rule, a field
  // that is also a grid axis, a value the field cannot take.
  v1::Experiment bad = e;
  bad.add_rules(v1::RULE_FEEDBACK_ALIGNMENT);
  EXPECT_THAT(std::string(PlanSessions(bad, 100).status().message()),
              HasSubstr("give rules or variants, not both"));
  bad = e;
  bad.mutable_variants(1)->clear_rule();
  EXPECT_THAT(std::string(PlanSessions(bad, 100).status().message()),
              HasSubstr("experiment.variants[1].rule: a rule is needed"));
  bad = e;
  (*bad.mutable_variants(0)->mutable_set())["batch_size"] = Num(4);
  EXPECT_THAT(std::string(PlanSessions(bad, 100).status().message()),
              HasSubstr("experiment.variants[0]: batch_size is a grid axis too"));
  bad = e;
  (*bad.mutable_variants(0)->mutable_set())["epochs"] = Str("many");
  EXPECT_THAT(std::string(PlanSessions(bad, 100).status().message()),
              HasSubstr("experiment.variants[0].set[epochs]"));
}

}  // namespace
}  // namespace alignd::server
