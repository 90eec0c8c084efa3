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

// A small LeNet-like net on 1x12x12 images: conv 6 5x5 (6x8x8), max pool 2 (6x4x4), dense 10.
v1::TrainingConfig ConvConfig() {
  v1::TrainingConfig c;
  auto* n = c.mutable_network();
  auto add = [n](v1::LayerKind kind, int units, int k) {
    v1::LayerSpec* l = n->add_layers();
    l->set_kind(kind);
    l->set_units(units);
    l->set_kernel_h(k);
    return l;
  };
  add(v1::LAYER_KIND_CONV, 6, 5);
  add(v1::LAYER_KIND_MAX_POOL, 0, 2);
  add(v1::LAYER_KIND_DENSE, 10, 0);
  c.mutable_feedback()->set_rule(v1::RULE_FEEDBACK_ALIGNMENT);
  return c;
}

TEST(ProtoConvertTest, LayersRoundTripWithTheSizesTheyMake) {
  v1::TrainingConfig c = ConvConfig();
  c.mutable_network()->mutable_input_shape()->set_channels(1);
  c.mutable_network()->mutable_input_shape()->set_height(12);
  c.mutable_network()->mutable_input_shape()->set_width(12);
  c.mutable_network()->mutable_layers(0)->set_padding(1);  // 6x10x10, pool 6x5x5
  c.mutable_network()->mutable_layers(1)->set_stride(2);
  c.mutable_feedback()->set_sign_mode(v1::SIGN_SYMMETRY_MODE_BATCH_RANDOM);
  auto o = ToTrainerOptions(c);
  ASSERT_OK(o);
  EXPECT_EQ(o->network.sizes, (std::vector<int>{144, 600, 150, 10}));
  ASSERT_EQ(o->network.layers.size(), 3u);
  EXPECT_EQ(o->network.layers[0].kind, core::LayerKind::kConv);
  EXPECT_EQ(o->network.layers[0].units, 6);
  EXPECT_EQ(o->network.layers[0].kernel_h, 5);
  EXPECT_EQ(o->network.layers[0].padding, 1);
  EXPECT_EQ(o->network.layers[1].kind, core::LayerKind::kMaxPool);
  EXPECT_EQ(o->network.layers[1].stride, 2);
  EXPECT_EQ(o->network.input, (core::ImageShape{1, 12, 12}));
  EXPECT_EQ(o->feedback.sign_mode, core::SignSymmetryMode::kBatchRandom);
  // The stored config shows the sizes; it converts to the same options, and again to itself.
  const v1::TrainingConfig wire = ToProto(*o);
  EXPECT_EQ(std::vector<int>(wire.network().sizes().begin(), wire.network().sizes().end()),
            o->network.sizes);
  EXPECT_EQ(wire.network().layers_size(), 3);
  EXPECT_EQ(wire.network().layers(0).kind(), v1::LAYER_KIND_CONV);
  EXPECT_EQ(wire.network().layers(1).kind(), v1::LAYER_KIND_MAX_POOL);
  EXPECT_EQ(wire.network().layers(2).kind(), v1::LAYER_KIND_DENSE);
  EXPECT_EQ(wire.network().input_shape().height(), 12);
  EXPECT_EQ(wire.feedback().sign_mode(), v1::SIGN_SYMMETRY_MODE_BATCH_RANDOM);
  auto again = ToTrainerOptions(wire);
  ASSERT_OK(again);
  EXPECT_EQ(ToProto(*again).SerializeAsString(), wire.SerializeAsString());
  // A dense net keeps its shorthand: no layers, no input shape on the wire.
  auto dense = ToTrainerOptions(Minimal());
  ASSERT_OK(dense);
  EXPECT_EQ(ToProto(*dense).network().layers_size(), 0);
  EXPECT_FALSE(ToProto(*dense).network().has_input_shape());
}

TEST(ProtoConvertTest, WithoutAnInputShapeLayersTakeTheDataSetsFeatureShape) {
  const v1::TrainingConfig c = ConvConfig();
  const std::vector<int64_t> image = {12, 12}, rgb = {3, 12, 12}, flat = {144};
  auto o = ToTrainerOptions(c, &image);
  ASSERT_OK(o);
  EXPECT_EQ(o->network.input, (core::ImageShape{1, 12, 12}));
  EXPECT_EQ(o->network.sizes.front(), 144);
  o = ToTrainerOptions(c, &rgb);
  ASSERT_OK(o);
  EXPECT_EQ(o->network.input, (core::ImageShape{3, 12, 12}));
  EXPECT_EQ(o->network.sizes.front(), 432);
  // Flat data: a conv layer cannot take it, and the message says what to do.
  o = ToTrainerOptions(c, &flat);
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(o.status().message());
  EXPECT_NE(msg.find("config.network.layers[0] (conv) needs an image input"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("network.input_shape"), std::string::npos) << msg;
  EXPECT_NE(msg.find("upload images"), std::string::npos) << msg;
  // Dense layers take flat data, sizes[0] from it.
  v1::TrainingConfig d;
  d.mutable_network()->add_layers()->set_units(20);
  d.mutable_network()->add_layers()->set_units(10);
  o = ToTrainerOptions(d, &flat);
  ASSERT_OK(o);
  EXPECT_EQ(o->network.sizes, (std::vector<int>{144, 20, 10}));
  EXPECT_TRUE(o->network.input.empty());
  // An input shape given wins over the data set's.
  v1::TrainingConfig given = c;
  given.mutable_network()->mutable_input_shape()->set_channels(1);
  given.mutable_network()->mutable_input_shape()->set_height(10);
  given.mutable_network()->mutable_input_shape()->set_width(10);
  o = ToTrainerOptions(given, &image);
  ASSERT_OK(o);
  EXPECT_EQ(o->network.sizes.front(), 100);
}

TEST(ProtoConvertTest, LayerErrorsNameTheWireField) {
  auto with_input = [](v1::TrainingConfig c, int ch, int h, int w) {
    c.mutable_network()->mutable_input_shape()->set_channels(ch);
    c.mutable_network()->mutable_input_shape()->set_height(h);
    c.mutable_network()->mutable_input_shape()->set_width(w);
    return c;
  };
  struct Case {
    std::string message;
    v1::TrainingConfig config;
  };
  std::vector<Case> cases;
  // A kernel larger than its input.
  cases.push_back({"config.network.layers[0] (conv): a 5x5 kernel is larger than its 1x4x4 input",
                   with_input(ConvConfig(), 1, 4, 4)});
  // Pooling on a flat input: a dense layer before it.
  {
    v1::TrainingConfig c = with_input(ConvConfig(), 1, 12, 12);
    v1::LayerSpec pool = c.network().layers(1);
    *c.mutable_network()->mutable_layers(1) = c.network().layers(2);
    c.mutable_network()->mutable_layers(1)->set_units(20);
    *c.mutable_network()->add_layers() = pool;
    c.mutable_network()->add_layers()->set_units(10);
    cases.push_back({"config.network.layers[3] (maxpool) needs an image input", c});
  }
  // Sizes that the layers do not make.
  {
    v1::TrainingConfig c = with_input(ConvConfig(), 1, 12, 12);
    for (int s : {144, 100, 10}) c.mutable_network()->add_sizes(s);
    cases.push_back({"config.network.sizes is [144, 100, 10] but network.layers make", c});
  }
  // An input shape that is not the sizes' first.
  {
    v1::TrainingConfig c = with_input(ConvConfig(), 1, 12, 12);
    c.mutable_network()->add_sizes(100);
    cases.push_back({"config.network.input_shape is 1x12x12 (144 values) but", c});
  }
  // Pseudo-backprop does not train conv layers.
  {
    v1::TrainingConfig c = with_input(ConvConfig(), 1, 12, 12);
    c.mutable_feedback()->set_rule(v1::RULE_PSEUDO_BACKPROP);
    cases.push_back({"config.feedback.rule pbp does not train convolution layers", c});
  }
  // The last layer makes the outputs.
  {
    v1::TrainingConfig c = with_input(ConvConfig(), 1, 12, 12);
    c.mutable_network()->mutable_layers()->RemoveLast();
    cases.push_back(
        {"config.network.layers[1] is maxpool: the last layer must be dense or conv", c});
  }
  // Unknown kind, zero channels, a zero input shape.
  {
    v1::TrainingConfig c = with_input(ConvConfig(), 1, 12, 12);
    c.mutable_network()->mutable_layers(0)->set_kind(static_cast<v1::LayerKind>(77));
    cases.push_back({"config.network.layers[0].kind: unknown value 77", c});
  }
  {
    v1::TrainingConfig c = with_input(ConvConfig(), 1, 12, 12);
    c.mutable_network()->mutable_layers(0)->set_units(0);
    cases.push_back({"config.network.layers[0] (conv) channels must be in [1, 65536]", c});
  }
  cases.push_back({"config.network.input_shape must be >= 1", with_input(ConvConfig(), 0, 0, 0)});
  for (const Case& k : cases) {
    SCOPED_TRACE(k.message);
    auto o = ToTrainerOptions(k.config);
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

// Predict's inputs: a view of the message's own values, checked as a copy is.
TEST(ProtoConvertTest, TensorViewsShareTheValuesAndAreCheckedTheSame) {
  core::Matrix m(3, 2);
  m << 1, 2, 3, 4, 5, 6;
  v1::Tensor t;
  ToProto(m, &t);
  auto view = MapProto(t, "inputs");
  ASSERT_OK(view);
  EXPECT_EQ(view->data(), t.values().data());  // no copy
  EXPECT_EQ(core::Matrix(*view), m);
  t.set_cols(3);
  EXPECT_EQ(MapProto(t, "inputs").status(), FromProto(t, "inputs").status());
  EXPECT_EQ(MapProto(t, "inputs").status().code(), absl::StatusCode::kInvalidArgument);
  t.set_cols(2);
  t.set_values(5, INFINITY);
  EXPECT_EQ(MapProto(t, "inputs").status(), FromProto(t, "inputs").status());
  EXPECT_NE(std::string(MapProto(t, "inputs").status().message()).find("NaN or Inf"),
            std::string::npos);
}

}  // namespace
}  // namespace alignd::server
