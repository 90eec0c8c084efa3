// File: proto/alignd/v1/rule_names.h
// -----------------------------------------------------------------------------
// The short names of the learning rules ("bp", "fa", ...), read from the Rule enum's
// `rule_name` option in config.proto: the one table on the wire side, used by the
// server (config conversion, metric labels), alignctl and (through the same option) the
// Python client. The engine keeps its own table (core/config.cc) and the two are
// matched by name, so a new rule is its enum value here, its name there, and its room
// in core.
#ifndef ALIGND_PROTO_RULE_NAMES_H_
#define ALIGND_PROTO_RULE_NAMES_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "alignd/v1/config.pb.h"

namespace alignd::v1 {

// "fa" for RULE_FEEDBACK_ALIGNMENT; empty for RULE_UNSPECIFIED or an unknown value.
std::string RuleShortName(Rule rule);
// The rule with that short name, or that enum name ("RULE_FEEDBACK_ALIGNMENT").
std::optional<Rule> RuleFromName(std::string_view name);
// Every rule but RULE_UNSPECIFIED, in enum order.
std::vector<Rule> AllRules();

}  // namespace alignd::v1

#endif  // ALIGND_PROTO_RULE_NAMES_H_
