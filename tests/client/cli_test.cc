// alignctl's units (client/): the table printer, the watch rows, the create request built
// from flags and a config file, the sweep's expansion and summary, and the shared parsing.
#include "client/cli.h"

#include <gtest/gtest.h>

#include <cmath>

#include "client/create_request.h"
#include "client/data_files.h"
#include "client/layers.h"
#include "client/sweep.h"
#include "client/table.h"
#include "client/watch.h"
#include "tests/test_util.h"

namespace alignd::client {
namespace {

TEST(TableTest, ColumnsFitTheirWidestCellAndNothingIsCut) {
  Table t({"NAME", ">STEPS"});
  t.AddRow({"sessions/0123456789ab-a-long-name", "7"});
  t.AddRow({"s", "12345"});
  const std::string out = t.Render();
  EXPECT_NE(out.find("sessions/0123456789ab-a-long-name"), std::string::npos);
  EXPECT_EQ(out,
            "NAME                               STEPS\n"
            "sessions/0123456789ab-a-long-name      7\n"
            "s                                  12345\n");
  // Display width counts code points: the degree sign does not shift a column.
  Table u({"A", "B"});
  u.AddRow({"1.0°", "x"});
  u.AddRow({"10.0", "y"});
  EXPECT_EQ(u.Render(), "A     B\n1.0°  x\n10.0  y\n");
}

v1::MetricEvent StepAt(int64_t step, double seconds) {
  v1::MetricEvent e;
  e.mutable_step()->set_step(step);
  e.mutable_step()->set_loss(0.5);
  e.mutable_wall_time()->set_seconds(static_cast<int64_t>(seconds));
  e.mutable_wall_time()->set_nanos(static_cast<int32_t>((seconds - std::floor(seconds)) * 1e9));
  return e;
}

TEST(WatchTest, RateAndEtaComeFromTheServersClock) {
  WatchRow r;
  r.session.set_total_steps(1000);
  EXPECT_TRUE(std::isnan(r.StepsPerSecond()));
  r.Apply(StepAt(100, 1000.0));
  r.Apply(StepAt(300, 1002.0));  // 200 steps in 2 s of training, however fast it arrives
  EXPECT_DOUBLE_EQ(r.StepsPerSecond(), 100.0);
  EXPECT_DOUBLE_EQ(r.EtaSeconds(), 7.0);  // 700 steps left
  EXPECT_EQ(FormatDuration(7.0), "7s");
  EXPECT_EQ(FormatDuration(185.0), "3m05s");
  EXPECT_EQ(FormatDuration(3725.0), "1h02m");
  EXPECT_EQ(FormatDuration(NAN), "-");
  v1::MetricEvent end;
  end.mutable_end()->set_state(v1::SESSION_STATE_SUCCEEDED);
  end.mutable_end()->set_step(1000);
  end.mutable_end()->set_total_steps(1000);
  r.Apply(end);
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(r.EtaSeconds(), 0.0);
}

TEST(WatchTest, TheTableShowsWholeNamesAndDashesBeforeTheFirstStep) {
  std::map<std::string, WatchRow> rows;
  rows["sessions/abcdef012345"].session.set_state(v1::SESSION_STATE_RUNNING);
  rows["sessions/abcdef012345"].session.set_total_steps(10);
  const std::string out = RenderWatch(rows, {"sessions/abcdef012345"}, false);
  EXPECT_NE(out.find("sessions/abcdef012345 "), std::string::npos) << out;
  EXPECT_NE(out.find("RUNNING"), std::string::npos);
  EXPECT_EQ(out.find(" 0 "), std::string::npos) << "no made-up zero loss: " << out;
  EXPECT_NE(out.find("STEPS/S"), std::string::npos);
  EXPECT_NE(out.find("ETA"), std::string::npos);
}

TEST(WatchTest, TheSessionsNewestFiguresFillTheTableBeforeAnyEvent) {
  // A finished session's record carries its newest figures: the table shows them without
  // the log being read.
  v1::Session s;
  s.set_state(v1::SESSION_STATE_SUCCEEDED);
  s.set_step(3000);
  s.set_total_steps(3000);
  s.mutable_latest_step()->set_step(2991);
  s.mutable_latest_step()->set_loss(0.4375);
  s.mutable_latest_step()->set_accuracy(0.8125);
  s.mutable_latest_step()->add_alignment()->set_update_angle_mean(42.5);
  s.mutable_latest_eval()->set_examples(100);
  s.mutable_latest_eval()->set_error_rate(0.0625);
  std::map<std::string, WatchRow> rows;
  rows["sessions/abcdef012345"].Seed(s);
  const std::string out = RenderWatch(rows, {"sessions/abcdef012345"}, false);
  EXPECT_NE(out.find("0.4375"), std::string::npos) << out;
  EXPECT_NE(out.find("0.8125"), std::string::npos) << out;
  EXPECT_NE(out.find("0.0625"), std::string::npos) << out;
  EXPECT_NE(out.find("42.5 deg"), std::string::npos) << out;
  // An end event's session replaces them: the newest figures win.
  v1::MetricEvent end;
  s.mutable_latest_step()->set_loss(0.25);
  *end.mutable_end() = s;
  rows["sessions/abcdef012345"].Apply(end);
  EXPECT_NE(RenderWatch(rows, {"sessions/abcdef012345"}, false).find("0.25"), std::string::npos);
}

TEST(CreateRequestTest, FlagsOverrideTheConfigFileRuleIncluded) {
  CreateFlags f;
  f.dataset = "1f3a";
  f.config_file = "c.json";
  f.config_json = R"({"network": {"sizes": [30, 20, 10]}, "feedback": {"rule": "RULE_BACKPROP"},
                      "batch_size": 8})";
  f.rule = "kp";
  f.lr = 0.5f;
  f.threads = 2;
  f.validation_fraction = 1.0f / 6;
  f.sign_mode = "usf";
  f.pinv_damping = 0.01f;
  auto r = BuildCreateRequest(f);
  ASSERT_OK(r);
  EXPECT_EQ(r->session().train_dataset(), "datasets/1f3a");
  EXPECT_EQ(r->session().config().threads(), 2);
  EXPECT_FLOAT_EQ(r->session().config().validation_fraction(), 1.0f / 6);
  EXPECT_EQ(r->session().config().feedback().sign_mode(), v1::SIGN_SYMMETRY_MODE_UNIFORM);
  EXPECT_FLOAT_EQ(r->session().config().feedback().pinv_damping(), 0.01f);
  f.sign_mode = "fixed-random";
  EXPECT_EQ(BuildCreateRequest(f)->session().config().feedback().sign_mode(),
            v1::SIGN_SYMMETRY_MODE_FIXED_RANDOM);
  f.sign_mode = "sometimes";
  EXPECT_NE(std::string(BuildCreateRequest(f).status().message()).find("--sign-mode 'sometimes'"),
            std::string::npos);
  f.sign_mode.reset();
  EXPECT_EQ(r->session().config().feedback().rule(), v1::RULE_KOLEN_POLLACK);
  EXPECT_EQ(r->session().config().batch_size(), 8);  // from the file: not overridden
  EXPECT_EQ(r->session().config().network().sizes_size(), 3);
  EXPECT_FLOAT_EQ(r->session().config().optimizer().learning_rate(), 0.5f);
  // Flags not given stay unset: the server's defaults apply.
  EXPECT_FALSE(r->session().config().has_epochs());
  EXPECT_FALSE(r->session().has_checkpoint_every());
  f.threads.reset();
  EXPECT_FALSE(BuildCreateRequest(f)->session().config().has_threads());
}

TEST(CreateRequestTest, BadFlagsNameTheFlag) {
  CreateFlags f;
  f.dataset = "d";
  f.sizes = "30,abc";
  EXPECT_NE(std::string(BuildCreateRequest(f).status().message()).find("'abc'"), std::string::npos);
  f.sizes = "30";
  EXPECT_NE(std::string(BuildCreateRequest(f).status().message()).find("at least two"),
            std::string::npos);
  f.sizes.reset();
  f.rule = "hebbian";
  auto r = BuildCreateRequest(f);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.status().message()).find("bp, fa, dfa, sign, kp, pbp, shallow"),
            std::string::npos)
      << r.status();
  f.rule.reset();
  f.hidden_activation = "sigmoid";
  EXPECT_NE(std::string(BuildCreateRequest(f).status().message()).find("--hidden-activation"),
            std::string::npos);
  f.hidden_activation = "Logistic";
  EXPECT_OK(BuildCreateRequest(f));
  f.config_json = "{not json";
  EXPECT_EQ(BuildCreateRequest(f).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LayersTest, TheCompactGrammarParsesAndFormatsBack) {
  const std::string lenet = "conv:6x5x5,pool:2,conv:16x5x5,pool:2,dense:120,dense:84,dense:10";
  auto l = ParseLayers(lenet);
  ASSERT_OK(l);
  ASSERT_EQ(l->size(), 7u);
  EXPECT_EQ((*l)[0].kind(), v1::LAYER_KIND_CONV);
  EXPECT_EQ((*l)[0].units(), 6);
  EXPECT_EQ((*l)[0].kernel_h(), 5);
  EXPECT_EQ((*l)[0].kernel_w(), 5);
  EXPECT_EQ((*l)[0].stride(), 0);  // unset: 1
  EXPECT_EQ((*l)[1].kind(), v1::LAYER_KIND_MAX_POOL);
  EXPECT_EQ((*l)[1].kernel_h(), 2);
  EXPECT_EQ((*l)[4].kind(), v1::LAYER_KIND_DENSE);
  EXPECT_EQ((*l)[4].units(), 120);
  google::protobuf::RepeatedPtrField<v1::LayerSpec> field(l->begin(), l->end());
  EXPECT_EQ(FormatLayers(field), lenet);

  // Suffixes, the other kinds, spaces and case.
  l = ParseLayers(" conv:16x5x3:s2:p1 , MaxPool:3:s1, avgpool:2, flatten ,dense:10");
  ASSERT_OK(l);
  ASSERT_EQ(l->size(), 5u);
  EXPECT_EQ((*l)[0].kernel_h(), 5);
  EXPECT_EQ((*l)[0].kernel_w(), 3);
  EXPECT_EQ((*l)[0].stride(), 2);
  EXPECT_EQ((*l)[0].padding(), 1);
  EXPECT_EQ((*l)[1].kind(), v1::LAYER_KIND_MAX_POOL);
  EXPECT_EQ((*l)[1].kernel_h(), 3);
  EXPECT_EQ((*l)[1].stride(), 1);
  EXPECT_EQ((*l)[2].kind(), v1::LAYER_KIND_AVG_POOL);
  EXPECT_EQ((*l)[3].kind(), v1::LAYER_KIND_FLATTEN);
  field = google::protobuf::RepeatedPtrField<v1::LayerSpec>(l->begin(), l->end());
  EXPECT_EQ(FormatLayers(field), "conv:16x5x3:s2:p1,pool:3:s1,avgpool:2,flatten,dense:10");
  EXPECT_OK(ParseLayers("conv:6x5x5:p0"));

  // Bad items are named by their place and text, with what was expected.
  const std::pair<std::string, std::string> bad[] = {
      {"dense:10,pool:2,conv:6x5", "--layers item 3 'conv:6x5': expected conv:CxKHxKW"},
      {"conv:6x5x5:q2", "--layers item 1 'conv:6x5x5:q2': expected conv:CxKHxKW[:sS][:pP]"},
      {"conv:0x5x5", "--layers item 1 'conv:0x5x5': expected conv:CxKHxKW"},
      {"conv:6x5x5:s0", "item 1 'conv:6x5x5:s0'"},
      {"pool", "--layers item 1 'pool': expected pool:W[:sS]"},
      {"pool:2:p1", "--layers item 1 'pool:2:p1': expected pool:W[:sS]"},
      {"avgpool:2x2", "'avgpool:2x2': expected avgpool:W[:sS]"},
      {"dense:120,dense", "--layers item 2 'dense': expected dense:N"},
      {"dense:-3", "'dense:-3': expected dense:N"},
      {"dense:10,,dense:5", "--layers item 2 '': expected a layer"},
      {"flatten:1", "'flatten:1': expected flatten (no arguments)"},
      {"lstm:10",
       "--layers item 1 'lstm:10': expected conv:, pool:, maxpool:, avgpool:, dense: "
       "or flatten"},
  };
  for (const auto& [text, message] : bad) {
    SCOPED_TRACE(text);
    auto r = ParseLayers(text);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(r.status().message()).find(message), std::string::npos) << r.status();
  }

  auto shape = ParseImageShape("1x32x32");
  ASSERT_OK(shape);
  EXPECT_EQ(shape->channels(), 1);
  EXPECT_EQ(shape->height(), 32);
  EXPECT_EQ(FormatImageShape(*shape), "1x32x32");
  shape = ParseImageShape("28x28");
  ASSERT_OK(shape);
  EXPECT_EQ(FormatImageShape(*shape), "1x28x28");
  for (const char* b : {"32", "1x32x", "0x3x3", "3x3x3x3", "axbxc"}) {
    SCOPED_TRACE(b);
    auto r = ParseImageShape(b);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(std::string(r.status().message()).find("--input-shape"), std::string::npos);
  }
}

TEST(DataFilesTest, ACsvsFeatureShapeIsDeclaredAndChecked) {
  Payload p;
  p.header.add_feature_shape(784);
  const std::string bytes = p.bytes;
  EXPECT_OK(SetFeatureShape("1x28x28", &p));
  EXPECT_EQ(std::vector<int64_t>(p.header.feature_shape().begin(), p.header.feature_shape().end()),
            (std::vector<int64_t>{1, 28, 28}));
  EXPECT_OK(SetFeatureShape("28x28", &p));
  EXPECT_EQ(p.header.feature_shape_size(), 2);
  EXPECT_EQ(p.bytes, bytes);  // example-major values: only the header changes
  // A shape of another size, a zero, a word or four dimensions: refused, the shape unchanged.
  for (const char* bad : {"2x28x28", "0x784", "28xx28", "seven", "1x1x28x28", "-1x-784", ""}) {
    const absl::Status st = SetFeatureShape(bad, &p);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("--feature-shape"), std::string::npos) << st.message();
    EXPECT_EQ(p.header.feature_shape_size(), 2) << bad;
  }
  EXPECT_NE(SetFeatureShape("2x28x28", &p).message().find("1568 values; the examples have 784"),
            std::string::npos);
  // No overflow on absurd dimensions, and one dimension is not an image shape.
  EXPECT_NE(SetFeatureShape("1073741824x1073741824x1073741824", &p)
                .message()
                .find("more than 1073741824 values; the examples have 784"),
            std::string::npos);
  EXPECT_EQ(SetFeatureShape("784", &p).code(), absl::StatusCode::kInvalidArgument);
}

TEST(CreateRequestTest, LayersAndInputShapeFlagsReplaceTheConfigsNetwork) {
  CreateFlags f;
  f.dataset = "d";
  f.config_file = "c.json";
  f.config_json = R"({"network": {"sizes": [784, 100, 10], "hidden_activation": "ACTIVATION_RELU"},
                      "batch_size": 64})";
  f.layers = "conv:6x5x5,pool:2,dense:10";
  f.input_shape = "1x28x28";
  f.sign_mode = "brsf";
  auto r = BuildCreateRequest(f);
  ASSERT_OK(r);
  const auto& net = r->session().config().network();
  EXPECT_EQ(net.sizes_size(), 0);  // the server derives them
  ASSERT_EQ(net.layers_size(), 3);
  EXPECT_EQ(net.layers(0).kind(), v1::LAYER_KIND_CONV);
  EXPECT_EQ(net.hidden_activation(), v1::ACTIVATION_RELU);  // the file's, kept
  EXPECT_EQ(net.input_shape().height(), 28);
  EXPECT_EQ(r->session().config().feedback().sign_mode(), v1::SIGN_SYMMETRY_MODE_BATCH_RANDOM);
  f.layers = "conv:6x5";
  EXPECT_NE(std::string(BuildCreateRequest(f).status().message())
                .find("--layers item 1 'conv:6x5': expected conv:CxKHxKW"),
            std::string::npos);
  // Layers in the JSON config, through protobuf's JSON mapping.
  f.layers.reset();
  f.input_shape.reset();
  f.config_json = R"({"network": {"layers": [
      {"kind": "LAYER_KIND_CONV", "units": 6, "kernel_h": 5},
      {"kind": "LAYER_KIND_MAX_POOL", "kernel_h": 2},
      {"units": 10}], "input_shape": {"channels": 1, "height": 32, "width": 32}}})";
  r = BuildCreateRequest(f);
  ASSERT_OK(r);
  EXPECT_EQ(FormatLayers(r->session().config().network().layers()), "conv:6x5x5,pool:2,dense:10");
  EXPECT_EQ(r->session().config().network().input_shape().width(), 32);
  // --sizes alone replaces the file's layers with dense ones.
  f.sizes = "1024,10";
  r = BuildCreateRequest(f);
  ASSERT_OK(r);
  EXPECT_EQ(r->session().config().network().layers_size(), 0);
  EXPECT_EQ(r->session().config().network().sizes_size(), 2);
}

TEST(SweepTest, ExpandsRulesGridAndSeedsAndSummarisesOverSeeds) {
  const auto spec = nlohmann::json::parse(R"({
      "dataset": "datasets/d", "eval_dataset": "e",
      "config": {"network": {"sizes": [30, 20, 10]}, "batch_size": 1},
      "rules": ["bp", "fa"], "seeds": [1, 2, 3],
      "grid": {"optimizer.learning_rate": [0.01, 0.02]}})");
  auto runs = ExpandSweep(spec);
  ASSERT_OK(runs);
  ASSERT_EQ(runs->size(), 12u);  // 2 rules x 2 learning rates x 3 seeds
  const v1::Session& s = (*runs)[4].request.session();
  EXPECT_EQ((*runs)[4].group, "bp optimizer.learning_rate=0.02");
  EXPECT_EQ(s.config().seed(), 2u);
  EXPECT_FLOAT_EQ(s.config().optimizer().learning_rate(), 0.02f);
  EXPECT_EQ(s.config().feedback().rule(), v1::RULE_BACKPROP);
  EXPECT_EQ(s.config().batch_size(), 1);
  EXPECT_EQ(s.eval_dataset(), "datasets/e");
  EXPECT_FALSE(ExpandSweep(nlohmann::json::parse(R"({"rules": ["fa"]})")).ok());
  EXPECT_FALSE(
      ExpandSweep(nlohmann::json::parse(R"({"dataset": "d", "rules": ["hebbian"]})")).ok());

  const auto summary =
      Summarize({{"fa", 0.1, 1.0, 40.0}, {"fa", 0.3, 3.0, NAN}, {"bp", 0.2, 2.0, 0.0}});
  ASSERT_EQ(summary.size(), 2u);
  EXPECT_EQ(summary[0].group, "fa");
  EXPECT_EQ(summary[0].runs, 2);
  EXPECT_DOUBLE_EQ(summary[0].eval_mean, 0.2);
  EXPECT_NEAR(summary[0].eval_sd, std::sqrt(0.02), 1e-12);
  EXPECT_DOUBLE_EQ(summary[0].angle_mean, 40.0);  // NaN angles are left out
  EXPECT_EQ(summary[1].eval_sd, 0.0);             // one run: SD 0
}

TEST(CliTest, NamesExitCodesAndOutputFormats) {
  EXPECT_EQ(SessionName("abc"), "sessions/abc");
  EXPECT_EQ(SessionName("sessions/abc"), "sessions/abc");
  EXPECT_EQ(DatasetName("1f"), "datasets/1f");
  EXPECT_EQ(SnapshotName("abc"), "sessions/abc/snapshots/latest");
  EXPECT_EQ(SnapshotName("abc/snapshots/5"), "sessions/abc/snapshots/5");
  EXPECT_EQ(ExitCode(grpc::StatusCode::INVALID_ARGUMENT), 2);
  EXPECT_EQ(ExitCode(grpc::StatusCode::FAILED_PRECONDITION), 2);
  EXPECT_EQ(ExitCode(grpc::StatusCode::NOT_FOUND), 3);
  EXPECT_EQ(ExitCode(grpc::StatusCode::UNAVAILABLE), 4);
  EXPECT_EQ(ExitCode(grpc::StatusCode::DATA_LOSS), 1);
  EXPECT_EQ(ExitCode(grpc::StatusCode::INTERNAL), 1);
  Globals g;
  g.output = "name";
  EXPECT_EQ(g.format(), Output::kName);
  g.json = true;
  EXPECT_EQ(g.format(), Output::kJson);
  auto sizes = ParseSizes("784,1000,10");
  ASSERT_OK(sizes);
  EXPECT_EQ(*sizes, (std::vector<int32_t>{784, 1000, 10}));
  EXPECT_FALSE(ParseSizes("784,-3").ok());
  EXPECT_FALSE(ParseSizes("784,,10").ok());
}

}  // namespace
}  // namespace alignd::client
