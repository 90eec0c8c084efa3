// server/api/proto_convert.h: wire config -> engine options, defaults, and errors that
// name the field as the client wrote it.
#include "server/api/proto_convert.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "alignd/v1/rule_names.h"
#include "tests/test_util.h"

namespace alignd::server {
namespace {

v1::TrainingConfig Minimal() {
  v1::TrainingConfig c;
  for (int s : {30, 20, 10}) c.mutable_network()->add_sizes(s);
  return c;
}

TEST(ProtoConvertTest, UnsetFieldsTakeTheEngineDefaults) {
  auto o = ToTrainerOptions(Minimal());
  ASSERT_OK(o);
  const core::TrainerOptions d;
  EXPECT_EQ(o->network.sizes, (std::vector<int>{30, 20, 10}));
  EXPECT_EQ(o->network.hidden, d.network.hidden);
  EXPECT_EQ(o->feedback.rule, d.feedback.rule);
  EXPECT_EQ(o->optimizer.learning_rate, d.optimizer.learning_rate);
  EXPECT_EQ(o->batch_size, d.batch_size);
  EXPECT_EQ(o->metrics_every, d.metrics_every);
  EXPECT_EQ(o->init.scale, d.init.scale);
  EXPECT_TRUE(o->shuffle);
  EXPECT_TRUE(o->network.bias);
  EXPECT_EQ(o->threads, 1);
  EXPECT_EQ(o->feedback.sign_mode, core::SignSymmetryMode::kScaled);
  EXPECT_EQ(ToProto(*o).feedback().sign_mode(), v1::SIGN_SYMMETRY_MODE_SCALED);
}

TEST(ProtoConvertTest, SetFieldsArrive) {
  v1::TrainingConfig c = Minimal();
  c.mutable_network()->set_hidden_activation(v1::ACTIVATION_LOGISTIC);
  c.mutable_network()->set_output_activation(v1::ACTIVATION_SOFTMAX);
  c.mutable_network()->set_loss(v1::LOSS_CROSS_ENTROPY);
  c.mutable_network()->set_bias(false);
  c.mutable_feedback()->set_rule(v1::RULE_KOLEN_POLLACK);
  c.mutable_feedback()->set_scale(0.5f);
  c.mutable_init()->set_kind(v1::WEIGHT_INIT_UNIFORM);
  c.mutable_init()->set_scale(0.0f);  // explicitly zero: a zero start
  c.mutable_optimizer()->set_kind(v1::OPTIMIZER_ADAM);
  c.mutable_optimizer()->set_learning_rate(1e-3f);
  c.set_batch_size(1);
  c.set_max_steps(500);
  c.set_metrics_every(0);  // explicitly zero: no metric events (unset is 100)
  c.set_shuffle(false);
  c.set_threads(2);
  c.set_validation_fraction(0.25f);
  c.mutable_feedback()->set_pinv_damping(0.05f);
  c.mutable_feedback()->set_sign_mode(v1::SIGN_SYMMETRY_MODE_UNIFORM);
  c.mutable_optimizer()->add_decay_epochs(50);
  c.mutable_optimizer()->add_decay_epochs(75);
  c.mutable_optimizer()->set_decay_factor(0.5f);
  auto o = ToTrainerOptions(c);
  ASSERT_OK(o);
  EXPECT_EQ(o->optimizer.decay_epochs, (std::vector<int>{50, 75}));
  EXPECT_EQ(o->optimizer.decay_factor, 0.5f);
  EXPECT_EQ(o->network.hidden, core::Activation::kLogistic);
  EXPECT_EQ(o->network.loss, core::Loss::kCrossEntropy);
  EXPECT_FALSE(o->network.bias);
  EXPECT_EQ(o->feedback.rule, core::Rule::kKolenPollack);
  EXPECT_EQ(o->init.scale, 0.0f);
  EXPECT_EQ(o->optimizer.kind, core::OptimizerKind::kAdam);
  EXPECT_EQ(o->batch_size, 1);
  EXPECT_EQ(o->max_steps, 500);
  EXPECT_EQ(o->metrics_every, 0);
  EXPECT_FALSE(o->shuffle);
  EXPECT_EQ(o->threads, 2);
  EXPECT_EQ(o->validation_fraction, 0.25f);
  EXPECT_EQ(o->feedback.pinv_damping, 0.05f);
  EXPECT_EQ(o->feedback.sign_mode, core::SignSymmetryMode::kUniform);
  // And back: the filled-in config converts to the same options.
  auto again = ToTrainerOptions(ToProto(*o));
  ASSERT_OK(again);
  EXPECT_EQ(ToProto(*again).SerializeAsString(), ToProto(*o).SerializeAsString());
}

TEST(ProtoConvertTest, ErrorsNameTheWireField) {
  struct Case {
    std::string message;
    std::function<void(v1::TrainingConfig&)> mutate;
  } const kCases[] = {
      {"config.network.sizes", [](v1::TrainingConfig& c) { c.mutable_network()->clear_sizes(); }},
      {"config.network.sizes[1] must be >= 1",
       [](v1::TrainingConfig& c) { c.mutable_network()->set_sizes(1, 0); }},
      {"config.batch_size must be >= 1", [](v1::TrainingConfig& c) { c.set_batch_size(-4); }},
      {"config.optimizer.learning_rate",
       [](v1::TrainingConfig& c) { c.mutable_optimizer()->set_learning_rate(-1); }},
      {"config.feedback.rule: unknown value 99",
       [](v1::TrainingConfig& c) { c.mutable_feedback()->set_rule(static_cast<v1::Rule>(99)); }},
      {"config.network.hidden_activation: unknown value 42",
       [](v1::TrainingConfig& c) {
         c.mutable_network()->set_hidden_activation(static_cast<v1::Activation>(42));
       }},
      {"config.metrics_every", [](v1::TrainingConfig& c) { c.set_metrics_every(-7); }},
      {"config.validation_fraction must be in [0, 1), got 1",
       [](v1::TrainingConfig& c) { c.set_validation_fraction(1.0f); }},
      {"config.feedback.scale must be > 0",
       [](v1::TrainingConfig& c) { c.mutable_feedback()->set_scale(0); }},
      {"config.network.loss",
       [](v1::TrainingConfig& c) { c.mutable_network()->set_loss(v1::LOSS_CROSS_ENTROPY); }},
  };
  for (const Case& k : kCases) {
    SCOPED_TRACE(k.message);
    v1::TrainingConfig c = Minimal();
    k.mutate(c);
    auto o = ToTrainerOptions(c);
    ASSERT_FALSE(o.ok());
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(o.status().message()).find(k.message), std::string::npos) << o.status();
  }
}

// The rule names on the wire (config.proto's rule_name option) and in the engine
// (core/config.cc) are one list: every rule converts both ways.
TEST(ProtoConvertTest, EveryRuleHasTheSameNameOnTheWireAndInTheEngine) {
  EXPECT_EQ(v1::AllRules().size(), core::AllRules().size());
  for (v1::Rule r : v1::AllRules()) {
    v1::TrainingConfig c = Minimal();
    c.mutable_feedback()->set_rule(r);
    auto o = ToTrainerOptions(c);
    ASSERT_OK(o);
    EXPECT_EQ(core::RuleName(o->feedback.rule), v1::RuleShortName(r));
    EXPECT_EQ(ToProto(*o).feedback().rule(), r);
  }
  EXPECT_EQ(v1::RuleFromName("fa"), v1::RULE_FEEDBACK_ALIGNMENT);
  EXPECT_EQ(v1::RuleFromName("RULE_KOLEN_POLLACK"), v1::RULE_KOLEN_POLLACK);
  EXPECT_FALSE(v1::RuleFromName("nope").has_value());
}

TEST(ProtoConvertTest, TensorsRoundTripAndAreChecked) {
  core::Matrix m(3, 2);
  m << 1, 2, 3, 4, 5, 6;
  v1::Tensor t;
  ToProto(m, &t);
  EXPECT_EQ(t.values(1), 3.0f);  // column-major
  auto back = FromProto(t, "inputs");
  ASSERT_OK(back);
  EXPECT_EQ(*back, m);
  t.set_rows(4);
  EXPECT_EQ(FromProto(t, "inputs").status().code(), absl::StatusCode::kInvalidArgument);
  t.set_rows(3);
  t.set_values(0, NAN);
  EXPECT_NE(std::string(FromProto(t, "inputs").status().message()).find("NaN"), std::string::npos);
}

}  // namespace
}  // namespace alignd::server
