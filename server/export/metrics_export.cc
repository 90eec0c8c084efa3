// File: server/export/metrics_export.cc
// The metric log as CSV, JSON lines and a TensorBoard event file; the session as JSON.
#include <array>
#include <charconv>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "nlohmann/json.hpp"
#include "server/api/resource_names.h"
#include "server/export/exports.h"
#include "third_party/tensorboard/event.pb.h"

namespace alignd::server {
namespace {

using google::protobuf::util::TimeUtil;

// Shortest text that reads back as the same double; NaN and infinities as NumPy and pandas
// read them.
std::string Num(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// The figures of one hidden layer's alignment, in column order, by name.
struct AlignmentField {
  const char* name;
  double (v1::LayerAlignment::*get)() const;
};
constexpr AlignmentField kAlignment[] = {
    {"update_angle_mean", &v1::LayerAlignment::update_angle_mean},
    {"update_angle_sd", &v1::LayerAlignment::update_angle_sd},
    {"positive_fraction", &v1::LayerAlignment::positive_fraction},
    {"weight_angle", &v1::LayerAlignment::weight_angle},
    {"norm_ratio", &v1::LayerAlignment::norm_ratio},
    {"pbp_angle_mean", &v1::LayerAlignment::pbp_angle_mean},
    {"pbp_angle_sd", &v1::LayerAlignment::pbp_angle_sd},
};

const char* KindOf(const v1::MetricEvent& e) {
  if (e.has_step()) return "train";
  return e.eval().validation() ? "validation" : "eval";
}

int HiddenLayers(const std::vector<v1::MetricEvent>& events) {
  int h = 0;
  for (const auto& e : events)
    if (e.has_step())
      for (const auto& a : e.step().alignment()) h = std::max(h, a.layer());
  return h;
}

std::string Csv(const std::vector<v1::MetricEvent>& events) {
  const int hidden = HiddenLayers(events);
  std::vector<std::string> head = {"seq",      "wall_time", "kind",     "step",       "epoch",
                                   "examples", "loss",      "accuracy", "error_rate", "nse"};
  for (int h = 1; h <= hidden; ++h)
    for (const auto& f : kAlignment) head.push_back(absl::StrCat("h", h, ".", f.name));
  std::string out = absl::StrCat(absl::StrJoin(head, ","), "\n");
  std::vector<std::string> row(head.size());
  for (const auto& e : events) {
    if (!e.has_step() && !e.has_eval()) continue;
    for (auto& c : row) c.clear();
    row[0] = absl::StrCat(e.seq());
    row[1] = e.has_wall_time() ? TimeUtil::ToString(e.wall_time()) : "";
    row[2] = KindOf(e);
    if (e.has_step()) {
      const auto& m = e.step();
      row[3] = absl::StrCat(m.step());
      row[4] = absl::StrCat(m.epoch());
      row[6] = Num(m.loss());
      row[7] = Num(m.accuracy());
      row[9] = Num(m.nse());
      for (const auto& a : m.alignment()) {
        if (a.layer() < 1 || a.layer() > hidden) continue;
        size_t col = 10 + size_t(a.layer() - 1) * std::size(kAlignment);
        for (const auto& f : kAlignment) row[col++] = Num((a.*f.get)());
      }
    } else {
      const auto& m = e.eval();
      row[3] = absl::StrCat(m.step());
      row[4] = absl::StrCat(m.epoch());
      row[5] = absl::StrCat(m.examples());
      row[6] = Num(m.loss());
      row[7] = Num(m.accuracy());
      row[8] = Num(m.error_rate());
      row[9] = Num(m.nse());
    }
    absl::StrAppend(&out, absl::StrJoin(row, ","), "\n");
  }
  return out;
}

// NaN and infinities as null (JSON has neither).
nlohmann::json JsonNum(double v) { return std::isfinite(v) ? nlohmann::json(v) : nullptr; }

std::string Jsonl(const v1::Session& session, const std::vector<v1::MetricEvent>& events) {
  std::string out =
      nlohmann::json{{"kind", "session"}, {"session", nlohmann::json::parse(SessionJson(session))}}
          .dump();
  out += "\n";
  for (const auto& e : events) {
    if (!e.has_step() && !e.has_eval()) continue;
    nlohmann::json j = {{"seq", e.seq()}, {"kind", KindOf(e)}};
    if (e.has_wall_time()) j["wall_time"] = TimeUtil::ToString(e.wall_time());
    if (e.has_step()) {
      const auto& m = e.step();
      j["step"] = m.step();
      j["epoch"] = m.epoch();
      j["loss"] = JsonNum(m.loss());
      j["accuracy"] = JsonNum(m.accuracy());
      j["nse"] = JsonNum(m.nse());
      nlohmann::json layers = nlohmann::json::array();
      for (const auto& a : m.alignment()) {
        nlohmann::json l = {{"layer", a.layer()}};
        for (const auto& f : kAlignment) l[f.name] = JsonNum((a.*f.get)());
        layers.push_back(std::move(l));
      }
      j["alignment"] = std::move(layers);
    } else {
      const auto& m = e.eval();
      j["step"] = m.step();
      j["epoch"] = m.epoch();
      j["examples"] = m.examples();
      j["loss"] = JsonNum(m.loss());
      j["accuracy"] = JsonNum(m.accuracy());
      j["error_rate"] = JsonNum(m.error_rate());
      j["nse"] = JsonNum(m.nse());
    }
    out += j.dump();
    out += "\n";
  }
  return out;
}

double Seconds(const google::protobuf::Timestamp& t) { return t.seconds() + t.nanos() * 1e-9; }

std::string TfEvents(const v1::Session& session, const std::vector<v1::MetricEvent>& events) {
  std::string out;
  tensorboard::Event first;
  first.set_wall_time(Seconds(session.create_time()));
  first.set_file_version("brain.Event:2");
  AppendTfRecord(first.SerializeAsString(), &out);
  tensorboard::Event ev;
  for (const auto& e : events) {
    if (!e.has_step() && !e.has_eval()) continue;
    ev.Clear();
    ev.set_wall_time(Seconds(e.wall_time()));
    auto* summary = ev.mutable_summary();
    // NaN means "not this kind of figure" (accuracy of a regression, angles where a rule has
    // none) except for a loss, where it means the run diverged: that is kept.
    auto add = [&](const std::string& tag, double v, bool keep_nan = false) {
      if (std::isnan(v) && !keep_nan) return;
      auto* value = summary->add_value();
      value->set_tag(tag);
      value->set_simple_value(static_cast<float>(v));
    };
    if (e.has_step()) {
      const auto& m = e.step();
      ev.set_step(m.step());
      add("train/loss", m.loss(), true);
      add("train/accuracy", m.accuracy());
      add("train/nse", m.nse());
      for (const auto& a : m.alignment())
        for (const auto& f : kAlignment)
          add(absl::StrCat("alignment/h", a.layer(), "/", f.name), (a.*f.get)());
    } else {
      const auto& m = e.eval();
      const std::string set = m.validation() ? "validation/" : "eval/";
      ev.set_step(m.step());
      add(set + "loss", m.loss(), true);
      add(set + "accuracy", m.accuracy());
      add(set + "error_rate", m.error_rate());
      add(set + "nse", m.nse());
    }
    AppendTfRecord(ev.SerializeAsString(), &out);
  }
  return out;
}

}  // namespace

std::string SessionIdOf(const v1::Session& session) {
  return ParseSessionName(session.name()).value_or(session.name());
}

std::string SessionJson(const v1::Session& session) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(session, &out, o);
  return out;
}

absl::StatusOr<ExportFile> ExportMetricLog(const v1::Session& session,
                                           const std::vector<v1::MetricEvent>& events,
                                           v1::ExportFormat format) {
  const std::string id = SessionIdOf(session);
  switch (format) {
    case v1::EXPORT_FORMAT_CSV:
      return ExportFile{id + ".csv", "text/csv", Csv(events)};
    case v1::EXPORT_FORMAT_JSONL:
      return ExportFile{id + ".jsonl", "application/x-ndjson", Jsonl(session, events)};
    case v1::EXPORT_FORMAT_TFEVENTS:
      return ExportFile{
          absl::StrCat("events.out.tfevents.", session.create_time().seconds(), ".alignd.", id),
          "application/octet-stream", TfEvents(session, events)};
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("format ", v1::ExportFormat_Name(format), " is not a metric log format"));
  }
}

uint32_t Crc32c(absl::string_view data) {
  // Table-driven CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : data) crc = table[(crc ^ b) & 0xFFu] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t MaskedCrc32c(absl::string_view data) {
  const uint32_t crc = Crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

void AppendTfRecord(absl::string_view data, std::string* out) {
  auto put = [out](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  };
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((uint64_t{data.size()} >> (8 * i)) & 0xFF);
  out->append(len, 8);
  put(MaskedCrc32c(absl::string_view(len, 8)), 4);
  out->append(data.data(), data.size());
  put(MaskedCrc32c(data), 4);
}

}  // namespace alignd::server
