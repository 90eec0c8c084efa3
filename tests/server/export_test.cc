// server/export/exports.h: the files ExportSession makes, read back here by their own
// formats' rules (the Python interop test reads them with TensorBoard's framing, the
// safetensors spec, ONNX's checker and a reference evaluator, against a real alignd).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_split.h"
#include "core/layers.h"
#include "nlohmann/json.hpp"
#include "server/export/exports.h"
#include "third_party/onnx/onnx.pb.h"
#include "third_party/tensorboard/event.pb.h"

namespace alignd::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(Crc32cTest, KnownValues) {
  // The CRC-32C check value (RFC 3720's polynomial) and an empty input.
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  const uint32_t c = Crc32c("123456789");
  EXPECT_EQ(MaskedCrc32c("123456789"), ((c >> 15) | (c << 17)) + 0xA282EAD8u);
}

uint64_t Le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<unsigned char>(s[at + i])} << (8 * i);
  return v;
}

TEST(TfRecordTest, FramesLengthDataAndBothCrcs) {
  std::string out;
  AppendTfRecord("hello", &out);
  AppendTfRecord("", &out);
  ASSERT_EQ(out.size(), 8 + 4 + 5 + 4 + 8 + 4 + 0 + 4);
  EXPECT_EQ(Le(out, 0, 8), 5u);
  EXPECT_EQ(Le(out, 8, 4), MaskedCrc32c(out.substr(0, 8)));
  EXPECT_EQ(out.substr(12, 5), "hello");
  EXPECT_EQ(Le(out, 17, 4), MaskedCrc32c("hello"));
  EXPECT_EQ(Le(out, 21, 8), 0u);
}

v1::Session TestSession() {
  v1::Session s;
  s.set_name("sessions/abc");
  s.mutable_create_time()->set_seconds(1700000000);
  s.mutable_config()->mutable_network()->add_sizes(4);
  return s;
}

std::vector<v1::MetricEvent> TestLog() {
  std::vector<v1::MetricEvent> log(4);
  log[0].set_seq(1);
  log[0].mutable_wall_time()->set_seconds(1700000001);
  auto* m = log[0].mutable_step();
  m->set_step(10);
  m->set_loss(0.5);
  m->set_accuracy(0.25);
  m->set_nse(kNaN);
  for (int l : {1, 2}) {
    auto* a = m->add_alignment();
    a->set_layer(l);
    a->set_update_angle_mean(40.0 + l);
    a->set_weight_angle(kNaN);
  }
  log[1].set_seq(2);
  auto* e = log[1].mutable_eval();
  e->set_step(10);
  e->set_examples(100);
  e->set_loss(0.75);
  e->set_accuracy(0.5);
  e->set_error_rate(0.5);
  e->set_nse(kNaN);
  e->set_validation(true);
  log[2].set_seq(3);
  log[2].set_heartbeat(v1::SESSION_STATE_RUNNING);  // not a figure: left out
  log[3].set_seq(4);
  log[3].mutable_step()->set_step(20);
  log[3].mutable_step()->set_loss(kNaN);  // diverged
  log[3].mutable_step()->set_accuracy(0.1);
  return log;
}

TEST(MetricLogExportTest, CsvHasAColumnPerFigureAndARowPerEvent) {
  auto f = ExportMetricLog(TestSession(), TestLog(), v1::EXPORT_FORMAT_CSV);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->filename, "abc.csv");
  EXPECT_EQ(f->content_type, "text/csv");
  const std::vector<std::string> lines = absl::StrSplit(f->data, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u);  // header, two steps, one evaluation
  const std::vector<std::string> head = absl::StrSplit(lines[0], ',');
  ASSERT_EQ(head.size(), 10u + 2 * 7);
  EXPECT_EQ(head[0], "seq");
  EXPECT_EQ(head[10], "h1.update_angle_mean");
  EXPECT_EQ(head[17], "h2.update_angle_mean");
  const std::vector<std::string> step = absl::StrSplit(lines[1], ',');
  ASSERT_EQ(step.size(), head.size());
  EXPECT_EQ(step[0], "1");
  EXPECT_EQ(step[1], "2023-11-14T22:13:21Z");
  EXPECT_EQ(step[2], "train");
  EXPECT_EQ(step[3], "10");
  EXPECT_EQ(step[5], "");  // examples: an evaluation's
  EXPECT_EQ(step[6], "0.5");
  EXPECT_EQ(step[9], "NaN");
  EXPECT_EQ(step[10], "41");
  EXPECT_EQ(step[13], "NaN");  // h1.weight_angle
  EXPECT_EQ(step[17], "42");
  const std::vector<std::string> eval = absl::StrSplit(lines[2], ',');
  EXPECT_EQ(eval[2], "validation");
  EXPECT_EQ(eval[5], "100");
  EXPECT_EQ(eval[8], "0.5");
  EXPECT_EQ(eval[10], "");  // no angles for an evaluation
  const std::vector<std::string> last = absl::StrSplit(lines[3], ',');
  EXPECT_EQ(last[6], "NaN");
  EXPECT_EQ(last[10], "");  // a step without alignment figures
}

TEST(MetricLogExportTest, CsvNumbersReadBackExactly) {
  auto log = TestLog();
  log[0].mutable_step()->set_loss(0.1 + 0.2);
  auto f = ExportMetricLog(TestSession(), log, v1::EXPORT_FORMAT_CSV);
  ASSERT_TRUE(f.ok());
  const std::vector<std::string> lines = absl::StrSplit(f->data, '\n', absl::SkipEmpty());
  const std::vector<std::string> step = absl::StrSplit(lines[1], ',');
  EXPECT_EQ(std::strtod(step[6].c_str(), nullptr), 0.1 + 0.2);
}

TEST(MetricLogExportTest, JsonLinesStartWithTheSessionAndWriteNaNAsNull) {
  auto f = ExportMetricLog(TestSession(), TestLog(), v1::EXPORT_FORMAT_JSONL);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->filename, "abc.jsonl");
  const std::vector<std::string> lines = absl::StrSplit(f->data, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u);
  const auto head = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(head["kind"], "session");
  EXPECT_EQ(head["session"]["name"], "sessions/abc");
  const auto step = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(step["kind"], "train");
  EXPECT_EQ(step["seq"], 1);
  EXPECT_EQ(step["loss"], 0.5);
  EXPECT_TRUE(step["nse"].is_null());
  ASSERT_EQ(step["alignment"].size(), 2u);
  EXPECT_EQ(step["alignment"][1]["layer"], 2);
  EXPECT_TRUE(step["alignment"][0]["weight_angle"].is_null());
  const auto eval = nlohmann::json::parse(lines[2]);
  EXPECT_EQ(eval["kind"], "validation");
  EXPECT_EQ(eval["examples"], 100);
}

// The records of a tfevents file, CRCs checked.
std::vector<tensorboard::Event> ReadEvents(const std::string& data) {
  std::vector<tensorboard::Event> out;
  size_t at = 0;
  while (at < data.size()) {
    EXPECT_LE(at + 12, data.size());
    const uint64_t n = Le(data, at, 8);
    EXPECT_EQ(Le(data, at + 8, 4), MaskedCrc32c(data.substr(at, 8)));
    const std::string payload = data.substr(at + 12, n);
    EXPECT_EQ(Le(data, at + 12 + n, 4), MaskedCrc32c(payload));
    tensorboard::Event e;
    EXPECT_TRUE(e.ParseFromString(payload));
    out.push_back(e);
    at += 12 + n + 4;
  }
  EXPECT_EQ(at, data.size());
  return out;
}

std::map<std::string, float> Scalars(const tensorboard::Event& e) {
  std::map<std::string, float> out;
  for (const auto& v : e.summary().value()) out[v.tag()] = v.simple_value();
  return out;
}

TEST(MetricLogExportTest, TfEventsAreAVersionRecordThenAnEventPerFigureSet) {
  auto f = ExportMetricLog(TestSession(), TestLog(), v1::EXPORT_FORMAT_TFEVENTS);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->filename, "events.out.tfevents.1700000000.alignd.abc");
  const auto events = ReadEvents(f->data);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  EXPECT_EQ(events[0].wall_time(), 1700000000.0);
  EXPECT_EQ(events[1].step(), 10);
  EXPECT_EQ(events[1].wall_time(), 1700000001.0);
  const auto s = Scalars(events[1]);
  EXPECT_EQ(s.at("train/loss"), 0.5f);
  EXPECT_EQ(s.at("train/accuracy"), 0.25f);
  EXPECT_EQ(s.count("train/nse"), 0u);  // NaN: not a figure of this task
  EXPECT_EQ(s.at("alignment/h2/update_angle_mean"), 42.0f);
  EXPECT_EQ(s.count("alignment/h1/weight_angle"), 0u);
  const auto v = Scalars(events[2]);
  EXPECT_EQ(v.at("validation/error_rate"), 0.5f);
  EXPECT_EQ(events[2].step(), 10);
  EXPECT_TRUE(std::isnan(Scalars(events[3]).at("train/loss")));  // a diverged loss is kept
}

TEST(MetricLogExportTest, RefusesAWeightsFormat) {
  auto f = ExportMetricLog(TestSession(), TestLog(), v1::EXPORT_FORMAT_ONNX);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
}

// A network and a state with distinct values in every tensor (value = a running count).
struct Net {
  core::NetworkConfig net;
  core::TrainerState state;
};

Net MakeNet(std::vector<core::LayerSpec> layers, core::ImageShape input, int inputs,
            core::Activation output, bool feedback) {
  Net n;
  n.net.layers = std::move(layers);
  n.net.input = input;
  n.net.sizes = {inputs};
  n.net.hidden = core::Activation::kRelu;
  n.net.output = output;
  EXPECT_TRUE(core::CompleteNetwork(&n.net).ok());
  auto built = core::BuildLayers(n.net);
  EXPECT_TRUE(built.ok()) << built.status();
  float v = 0;
  for (const auto& l : *built) {
    core::Matrix w(l->weight_rows(), l->weight_cols()), b(l->weight_rows(), 1);
    for (Eigen::Index k = 0; k < w.size(); ++k) w.data()[k] = v++;
    for (Eigen::Index k = 0; k < b.size(); ++k) b.data()[k] = v++;
    n.state.weights.push_back(w);
    n.state.biases.push_back(b);
    n.state.feedback.push_back(feedback && n.state.weights.size() > 1 ? core::Matrix(w.transpose())
                                                                      : core::Matrix());
  }
  n.state.step = 7;
  return n;
}

core::LayerSpec Dense(int units) { return {core::LayerKind::kDense, units}; }

TEST(WeightsExportTest, SafetensorsFollowTheSpec) {
  Net n = MakeNet({Dense(3), Dense(2)}, {}, 4, core::Activation::kLinear, true);
  auto f = ExportWeights(TestSession(), n.state, n.net, v1::EXPORT_FORMAT_SAFETENSORS);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->filename, "abc-step7.safetensors");
  const std::string& d = f->data;
  const uint64_t len = Le(d, 0, 8);
  EXPECT_EQ(len % 8, 0u);
  const std::string header = d.substr(8, len);
  EXPECT_EQ(header.find_last_not_of(' ') + 1, header.find_last_of('}') + 1);  // space padding
  const auto h = nlohmann::json::parse(header);
  const std::string buffer = d.substr(8 + len);
  // W0 [3, 4] in C order: W(r, c) at r * 4 + c; the state's W0 is column-major.
  EXPECT_EQ(h["W0"]["dtype"], "F32");
  EXPECT_EQ(h["W0"]["shape"], nlohmann::json({3, 4}));
  EXPECT_EQ(h["b0"]["shape"], nlohmann::json({3}));
  EXPECT_EQ(h["B1"]["shape"], nlohmann::json({3, 2}));
  EXPECT_FALSE(h.contains("B0"));  // empty: left out
  auto at = [&](const std::string& t, size_t k) {
    float v;
    std::memcpy(&v, buffer.data() + h[t]["data_offsets"][0].get<size_t>() + 4 * k, 4);
    return v;
  };
  EXPECT_EQ(at("W0", 1 * 4 + 2), n.state.weights[0](1, 2));
  EXPECT_EQ(at("B1", 2 * 2 + 1), n.state.feedback[1](2, 1));
  EXPECT_EQ(at("b1", 1), n.state.biases[1](1, 0));
  // The offsets tile the buffer.
  size_t total = 0;
  for (const auto& [k, v] : h.items())
    if (k != "__metadata__")
      total += v["data_offsets"][1].get<size_t>() - v["data_offsets"][0].get<size_t>();
  EXPECT_EQ(total, buffer.size());
  EXPECT_EQ(h["__metadata__"]["step"], "7");
  EXPECT_THAT(h["__metadata__"]["session"].get<std::string>(), HasSubstr("sessions/abc"));
}

std::vector<std::string> Ops(const onnx::ModelProto& m) {
  std::vector<std::string> out;
  for (const auto& n : m.graph().node()) out.push_back(n.op_type());
  return out;
}

TEST(WeightsExportTest, OnnxOfAConvNet) {
  using K = core::LayerKind;
  Net n = MakeNet({{K::kConv, 2, 3, 3, 1, 1},
                   {K::kMaxPool, 0, 2},
                   {K::kConv, 3, 3},
                   {K::kAvgPool, 0, 2},
                   {K::kFlatten},
                   Dense(4)},
                  {1, 8, 8}, 64, core::Activation::kSoftmax, false);
  auto f = ExportWeights(TestSession(), n.state, n.net, v1::EXPORT_FORMAT_ONNX);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->filename, "abc-step7.onnx");
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(f->data));
  EXPECT_EQ(m.opset_import(0).version(), 13);
  EXPECT_THAT(Ops(m), ElementsAre("Reshape", "Conv", "Relu", "MaxPool", "Conv", "Relu",
                                  "AveragePool", "Flatten", "Gemm", "Softmax"));
  EXPECT_EQ(m.graph().input(0).name(), "x");
  EXPECT_EQ(m.graph().output(0).name(), "y");
  EXPECT_EQ(m.graph().node(m.graph().node_size() - 1).output(0), "y");
  const auto& conv = m.graph().node(1);
  EXPECT_EQ(conv.attribute(2).name(), "pads");
  EXPECT_THAT(conv.attribute(2).ints(), ElementsAre(1, 1, 1, 1));
  // The dense W as Gemm's B: [in, out], the column-major out x in memory as it is.
  const onnx::TensorProto* w5 = nullptr;
  for (const auto& t : m.graph().initializer())
    if (t.name() == "W5") w5 = &t;
  ASSERT_NE(w5, nullptr);
  EXPECT_THAT(w5->dims(), ElementsAre(3, 4));
  float v;
  std::memcpy(&v, w5->raw_data().data() + 4 * (2 * 4 + 1), 4);
  EXPECT_EQ(v, n.state.weights[5](1, 2));
}

TEST(WeightsExportTest, OnnxOfALinearMlpEndsInGemm) {
  Net n = MakeNet({Dense(3), Dense(2)}, {}, 4, core::Activation::kLinear, false);
  n.net.bias = false;
  auto f = ExportWeights(TestSession(), n.state, n.net, v1::EXPORT_FORMAT_ONNX);
  ASSERT_TRUE(f.ok());
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(f->data));
  EXPECT_THAT(Ops(m), ElementsAre("Gemm", "Relu", "Gemm"));
  EXPECT_EQ(m.graph().node(2).input_size(), 2);  // no bias
  EXPECT_EQ(m.graph().node(2).output(0), "y");
}

TEST(WeightsExportTest, OnnxSoftmaxOverAConvOutputRunsOverTheFlattenedColumn) {
  using K = core::LayerKind;
  Net n = MakeNet({{K::kConv, 2, 3, 2}, {K::kConv, 2, 2, 2}}, {1, 4, 4}, 16,
                  core::Activation::kSoftmax, false);
  auto f = ExportWeights(TestSession(), n.state, n.net, v1::EXPORT_FORMAT_ONNX);
  ASSERT_TRUE(f.ok()) << f.status();
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(f->data));
  EXPECT_THAT(Ops(m), ElementsAre("Reshape", "Conv", "Relu", "Conv", "Flatten", "Softmax"));
  EXPECT_THAT(m.graph().node(1).attribute(0).ints(), ElementsAre(3, 2));  // kernel_shape: kh, kw
}

TEST(WeightsImportTest, AnExportReadsBackIntoTheSameState) {
  using K = core::LayerKind;
  for (bool conv : {false, true}) {
    Net n = conv
                ? MakeNet({{K::kConv, 2, 3, 3, 1, 1}, {K::kMaxPool, 0, 2}, {K::kFlatten}, Dense(4)},
                          {1, 6, 6}, 36, core::Activation::kLinear, true)
                : MakeNet({Dense(3), Dense(2)}, {}, 4, core::Activation::kLinear, true);
    auto f = ExportWeights(TestSession(), n.state, n.net, v1::EXPORT_FORMAT_SAFETENSORS);
    ASSERT_TRUE(f.ok());
    auto parsed = ParseSafetensors(f->data, "initial_weights");
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    core::TrainerState blank = n.state;
    for (auto* v : {&blank.weights, &blank.biases, &blank.feedback})
      for (auto& m : *v) m.setZero();
    ASSERT_TRUE(ApplySafetensors(*parsed, n.net, "initial_weights", &blank).ok());
    for (size_t i = 0; i < n.state.weights.size(); ++i) {
      EXPECT_EQ(blank.weights[i], n.state.weights[i]) << conv << " W" << i;
      EXPECT_EQ(blank.biases[i], n.state.biases[i]) << conv << " b" << i;
      EXPECT_EQ(blank.feedback[i], n.state.feedback[i]) << conv << " B" << i;
    }
  }
}

TEST(WeightsImportTest, RefusesWhatTheNetworkDoesNotHave) {
  Net n = MakeNet({Dense(3), Dense(2)}, {}, 4, core::Activation::kLinear, false);
  std::map<std::string, SafetensorsTensor> file;
  file["W0"] = {{4, 3}, std::vector<float>(12)};
  absl::Status st = ApplySafetensors(file, n.net, "initial_weights", &n.state);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("tensor W0 is [4, 3]; this network's is [3, 4]"));
  file.clear();
  file["B1"] = {{3, 2}, std::vector<float>(6)};  // no B without feedback
  st = ApplySafetensors(file, n.net, "initial_weights", &n.state);
  EXPECT_THAT(st.message(), HasSubstr("tensor B1 is not one of this network's (W0, W1, b0, b1)"));
  EXPECT_THAT(ParseSafetensors(std::string(8, '\0'), "w").status().message(),
              HasSubstr("not a JSON object"));
  EXPECT_THAT(ParseSafetensors("abc", "w").status().message(), HasSubstr("shorter than"));
}

}  // namespace
}  // namespace alignd::server
