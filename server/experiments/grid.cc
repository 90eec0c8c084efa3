// File: server/experiments/grid.cc
#include "server/experiments/grid.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace alignd::server {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Value;

absl::Status SetConfigField(const std::string& path, const Value& value, const std::string& what,
                            v1::TrainingConfig* config) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
  };
  Message* m = config;
  const std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* f = m->GetDescriptor()->FindFieldByName(parts[i]);
    if (f == nullptr)
      return bad(absl::StrCat("TrainingConfig has no field ", path, " (",
                              m->GetDescriptor()->name(), " has no '", parts[i], "')"));
    if (f->is_repeated()) return bad(absl::StrCat(path, " is a list: a grid sets single values"));
    const auto* r = m->GetReflection();
    if (i + 1 < parts.size()) {
      if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE)
        return bad(absl::StrCat(parts[i], " in ", path, " is not a message"));
      m = r->MutableMessage(m, f);
      continue;
    }
    const bool number = value.kind_case() == Value::kNumberValue;
    const double v = value.number_value();
    auto integral = [&](double lo, double hi) {
      return number && std::isfinite(v) && v == std::floor(v) && v >= lo && v <= hi;
    };
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_DOUBLE:
        if (!number) return bad(absl::StrCat(path, " takes a number"));
        r->SetDouble(m, f, v);
        return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_FLOAT:
        if (!number) return bad(absl::StrCat(path, " takes a number"));
        r->SetFloat(m, f, static_cast<float>(v));
        return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_INT32:
        if (!integral(-2147483648.0, 2147483647.0))
          return bad(absl::StrCat(path, " takes a whole number"));
        r->SetInt32(m, f, static_cast<int32_t>(v));
        return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_INT64:
        if (!integral(-9.0e15, 9.0e15)) return bad(absl::StrCat(path, " takes a whole number"));
        r->SetInt64(m, f, static_cast<int64_t>(v));
        return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_UINT32:
        if (!integral(0, 4294967295.0))
          return bad(absl::StrCat(path, " takes a whole number >= 0"));
        r->SetUInt32(m, f, static_cast<uint32_t>(v));
        return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_UINT64:
        if (!integral(0, 9.0e15)) return bad(absl::StrCat(path, " takes a whole number >= 0"));
        r->SetUInt64(m, f, static_cast<uint64_t>(v));
        return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_BOOL:
        if (value.kind_case() != Value::kBoolValue)
          return bad(absl::StrCat(path, " takes true or false"));
        r->SetBool(m, f, value.bool_value());
        return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_STRING:
        if (value.kind_case() != Value::kStringValue)
          return bad(absl::StrCat(path, " takes a string"));
        r->SetString(m, f, value.string_value());
        return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_ENUM: {
        if (value.kind_case() != Value::kStringValue)
          return bad(absl::StrCat(path, " takes one of ", f->enum_type()->name(), "'s names"));
        const auto* ev = f->enum_type()->FindValueByName(value.string_value());
        if (ev == nullptr || ev->number() == 0)
          return bad(absl::StrCat("'", value.string_value(), "' is not a value of ", path, " (",
                                  f->enum_type()->name(), ")"));
        r->SetEnum(m, f, ev);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return bad(absl::StrCat(path, " is a message: name one of its fields"));
    }
  }
  return bad("an empty field path");
}

absl::StatusOr<std::vector<PlannedSession>> PlanSessions(const v1::Experiment& e,
                                                         int max_sessions) {
  std::vector<v1::Rule> rules;
  for (int r : e.rules()) rules.push_back(static_cast<v1::Rule>(r));
  if (rules.empty()) rules.push_back(e.config().feedback().rule());
  std::vector<uint64_t> seeds(e.seeds().begin(), e.seeds().end());
  if (seeds.empty()) seeds.push_back(e.config().seed());
  int64_t points = 1;
  for (int a = 0; a < e.grid_size(); ++a) {
    const auto& axis = e.grid(a);
    if (axis.values_size() == 0)
      return absl::InvalidArgumentError(
          absl::StrCat("experiment.grid[", a, "] (", axis.field(), ") has no values"));
    // Each value is checked on the base config once, naming it.
    for (int k = 0; k < axis.values_size(); ++k) {
      v1::TrainingConfig probe = e.config();
      if (absl::Status st =
              SetConfigField(axis.field(), axis.values(k),
                             absl::StrCat("experiment.grid[", a, "].values[", k, "]"), &probe);
          !st.ok())
        return st;
    }
    points *= axis.values_size();
    if (points > max_sessions) break;
  }
  // The variants (each a rule with settings), checked on the base config, naming them; or
  // the rules as variants without settings.
  std::vector<v1::Variant> variants;
  if (e.variants_size() > 0 && e.rules_size() > 0)
    return absl::InvalidArgumentError(
        "experiment: give rules or variants, not both (a variant names its rule)");
  for (int i = 0; i < e.variants_size(); ++i) {
    const v1::Variant& v = e.variants(i);
    const std::string what = absl::StrCat("experiment.variants[", i, "]");
    if (v.rule() == v1::RULE_UNSPECIFIED || !v1::Rule_IsValid(v.rule()))
      return absl::InvalidArgumentError(absl::StrCat(what, ".rule: a rule is needed"));
    if (v.name().size() > 64)
      return absl::InvalidArgumentError(absl::StrCat(what, ".name is longer than 64 bytes"));
    for (const auto& [field, value] : v.set()) {
      for (const auto& axis : e.grid())
        if (axis.field() == field)
          return absl::InvalidArgumentError(
              absl::StrCat(what, ": ", field, " is a grid axis too; set it in one place"));
      v1::TrainingConfig probe = e.config();
      RETURN_IF_ERROR(
          SetConfigField(field, value, absl::StrCat(what, ".set[", field, "]"), &probe));
    }
    variants.push_back(v);
  }
  if (variants.empty())
    for (v1::Rule r : rules) variants.emplace_back().set_rule(r);
  // Each factor alone first: their product could pass int64's range.
  const int64_t total =
      int64_t(variants.size()) > max_sessions || int64_t(seeds.size()) > max_sessions
          ? int64_t(max_sessions) + 1
          : int64_t(variants.size()) * points * int64_t(seeds.size());
  if (total > max_sessions)
    return absl::InvalidArgumentError(absl::StrCat("the experiment would be ", total,
                                                   " sessions; the server allows at most ",
                                                   max_sessions, ""));
  std::vector<PlannedSession> out;
  int group = 0;
  for (const v1::Variant& variant : variants) {
    const v1::Rule rule = variant.rule();
    for (int64_t p = 0; p < points; ++p, ++group) {
      // Point p's value on each axis, the last axis fastest.
      std::map<std::string, Value> point;
      v1::TrainingConfig config = e.config();
      config.mutable_feedback()->set_rule(rule);
      int64_t rest = p;
      std::vector<int> index(e.grid_size());
      for (int a = e.grid_size() - 1; a >= 0; --a) {
        index[a] = static_cast<int>(rest % e.grid(a).values_size());
        rest /= e.grid(a).values_size();
      }
      for (int a = 0; a < e.grid_size(); ++a) {
        const Value& v = e.grid(a).values(index[a]);
        point[e.grid(a).field()] = v;
        if (absl::Status st = SetConfigField(e.grid(a).field(), v, "experiment.grid", &config);
            !st.ok())
          return st;  // checked above: not expected
      }
      for (const auto& [field, value] : variant.set()) {
        point[field] = value;
        RETURN_IF_ERROR(SetConfigField(field, value, "experiment.variants", &config));
      }
      for (uint64_t seed : seeds) {
        PlannedSession s;
        s.group = absl::StrCat("g", group);
        s.rule = rule;
        s.variant = variant.name();
        s.point = point;
        s.seed = seed;
        s.config = config;
        s.config.set_seed(seed);
        out.push_back(std::move(s));
      }
    }
  }
  return out;
}

}  // namespace alignd::server
