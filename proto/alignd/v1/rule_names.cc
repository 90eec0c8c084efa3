// File: proto/alignd/v1/rule_names.cc
#include "alignd/v1/rule_names.h"

namespace alignd::v1 {

std::string RuleShortName(Rule rule) {
  const auto* value = Rule_descriptor()->FindValueByNumber(rule);
  if (value == nullptr) return "";
  return value->options().GetExtension(rule_name);
}

std::optional<Rule> RuleFromName(std::string_view name) {
  const auto* e = Rule_descriptor();
  for (int i = 0; i < e->value_count(); ++i) {
    const auto* v = e->value(i);
    if (v->number() == RULE_UNSPECIFIED) continue;
    if (v->options().GetExtension(rule_name) == name || v->name() == name)
      return static_cast<Rule>(v->number());
  }
  return std::nullopt;
}

std::vector<Rule> AllRules() {
  std::vector<Rule> out;
  const auto* e = Rule_descriptor();
  for (int i = 0; i < e->value_count(); ++i)
    if (e->value(i)->number() != RULE_UNSPECIFIED)
      out.push_back(static_cast<Rule>(e->value(i)->number()));
  return out;
}

}  // namespace alignd::v1
