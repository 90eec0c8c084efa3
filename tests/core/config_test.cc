// Tests for core/config.h: every bad field is refused with InvalidArgument naming it.
#include "core/config.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "tests/test_util.h"

namespace alignd::core {
namespace {

TEST(ConfigTest, DefaultsAreValid) { EXPECT_OK(ValidateOptions(TrainerOptions())); }

struct BadConfig {
  std::string field;  // must appear in the message
  std::function<void(TrainerOptions&)> mutate;
};

TEST(ConfigTest, EachBadFieldIsNamed) {
  const BadConfig kCases[] = {
      {"network.sizes", [](TrainerOptions& o) { o.network.sizes = {5}; }},
      {"network.sizes[1]",
       [](TrainerOptions& o) {
         o.network.sizes = {5, 0, 3};
       }},
      {"network.hidden", [](TrainerOptions& o) { o.network.hidden = Activation::kSoftmax; }},
      {"network.loss",
       [](TrainerOptions& o) {
         o.network.loss = Loss::kCrossEntropy;
         o.network.output = Activation::kTanh;
       }},
      {"network.connection_sparsity",
       [](TrainerOptions& o) { o.network.connection_sparsity = 1.0f; }},
      {"init.scale", [](TrainerOptions& o) { o.init.scale = -1.0f; }},
      {"feedback.scale", [](TrainerOptions& o) { o.feedback.scale = NAN; }},
      {"feedback.sparsity", [](TrainerOptions& o) { o.feedback.sparsity = -0.1f; }},
      {"feedback.pinv_every", [](TrainerOptions& o) { o.feedback.pinv_every = 0; }},
      {"feedback.pinv_damping", [](TrainerOptions& o) { o.feedback.pinv_damping = -1.0f; }},
      {"validation_fraction", [](TrainerOptions& o) { o.validation_fraction = 1.5f; }},
      {"optimizer.learning_rate", [](TrainerOptions& o) { o.optimizer.learning_rate = 0; }},
      {"optimizer.learning_rate", [](TrainerOptions& o) { o.optimizer.learning_rate = INFINITY; }},
      {"optimizer.momentum", [](TrainerOptions& o) { o.optimizer.momentum = 1.0f; }},
      {"optimizer.weight_decay", [](TrainerOptions& o) { o.optimizer.weight_decay = -1e-3f; }},
      {"optimizer.beta2", [](TrainerOptions& o) { o.optimizer.beta2 = 1.5f; }},
      {"optimizer.epsilon", [](TrainerOptions& o) { o.optimizer.epsilon = 0; }},
      {"optimizer.layer_learning_rates",
       [](TrainerOptions& o) { o.optimizer.layer_learning_rates = {0.1f}; }},
      {"optimizer.layer_learning_rates[1]",
       [](TrainerOptions& o) {
         o.optimizer.layer_learning_rates = {0.1f, NAN};
       }},
      {"batch_size", [](TrainerOptions& o) { o.batch_size = 0; }},
      {"threads", [](TrainerOptions& o) { o.threads = 0; }},
      {"threads", [](TrainerOptions& o) { o.threads = kMaxThreads + 1; }},
      {"epochs", [](TrainerOptions& o) { o.epochs = -1; }},
      {"epochs",
       [](TrainerOptions& o) {
         o.epochs = 0;
         o.max_steps = 0;
       }},
      {"max_steps", [](TrainerOptions& o) { o.max_steps = -5; }},
      {"metrics_every", [](TrainerOptions& o) { o.metrics_every = -1; }},
      {"eval_every", [](TrainerOptions& o) { o.eval_every = -1; }},
  };
  for (const BadConfig& c : kCases) {
    SCOPED_TRACE(c.field);
    TrainerOptions o;
    c.mutate(o);
    const absl::Status s = ValidateOptions(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(std::string(s.message()).find(c.field), std::string::npos) << s;
  }
}

TEST(ConfigTest, NamesRoundTrip) {
  for (Rule r : AllRules()) {
    auto parsed = ParseRule(RuleName(r));
    ASSERT_OK(parsed);
    EXPECT_EQ(*parsed, r);
  }
  EXPECT_EQ(*ParseRule("Kolen_Pollack"), Rule::kKolenPollack);
  EXPECT_EQ(*ParseActivation("sigmoid"), Activation::kLogistic);
  EXPECT_EQ(*ParseLoss("ce"), Loss::kCrossEntropy);
  for (SignSymmetryMode m :
       {SignSymmetryMode::kScaled, SignSymmetryMode::kUniform, SignSymmetryMode::kFixedRandom})
    EXPECT_EQ(*ParseSignSymmetryMode(SignSymmetryModeName(m)), m);
  EXPECT_EQ(*ParseSignSymmetryMode("fixed_random"), SignSymmetryMode::kFixedRandom);
}

TEST(ConfigTest, UnknownNameListsTheValidOnes) {
  const auto r = ParseRule("hebbian");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.status().message()).find("bp, fa, dfa"), std::string::npos) << r.status();
  EXPECT_FALSE(ParseActivation("swish").ok());
  EXPECT_FALSE(ParseOptimizer("lbfgs").ok());
}

}  // namespace
}  // namespace alignd::core
