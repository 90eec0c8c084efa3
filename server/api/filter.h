// File: server/api/filter.h
// -----------------------------------------------------------------------------
// ListSessions' and ListExperiments' filter: a documented subset of AIP-160
// (google.aip.dev/160).
//
//   filter     := sequence { "AND" sequence }
//   sequence   := factor { factor }                 (juxtaposition is AND)
//   factor     := term { "OR" term }                (OR binds tighter than AND, as AIP-160 says)
//   term       := [ "NOT" | "-" ] ( "(" filter ")" | comparison )
//   comparison := field ( "=" | "!=" ) value  |  field ":" value  |  labels.KEY ":" "*"
//
// Sessions' fields: labels.KEY, rule ("fa" or "RULE_FEEDBACK_ALIGNMENT"), state ("succeeded"
// or "SESSION_STATE_SUCCEEDED"), name, display_name, train_dataset, eval_dataset, owner,
// experiment, experiment_group. Experiments' fields: labels.KEY, rule (one of its rules),
// state ("running" or "EXPERIMENT_STATE_RUNNING"), name, display_name, train_dataset,
// eval_dataset, owner. A value
// is a bare word or a "double-quoted string" (\" and \\ escaped). For the text fields and
// labels a value ending in * matches every value with that prefix; ":" is "=" except that
// labels.KEY:* asks only that the label be there. An absent label equals nothing (so
// labels.k != "v" holds where k is absent). Keywords are upper case.
#ifndef ALIGND_SERVER_API_FILTER_H_
#define ALIGND_SERVER_API_FILTER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "alignd/v1/experiments.pb.h"
#include "alignd/v1/sessions.pb.h"

namespace alignd::server {

class ListFilter {
 public:
  enum class Of { kSessions, kExperiments };
  // InvalidArgument ("filter: ... at position N") for what it cannot read; an empty or blank
  // text matches everything.
  static absl::StatusOr<ListFilter> Parse(absl::string_view text, Of of = Of::kSessions);
  // A filter parsed for what it is given matches it; one parsed for the other kind, nothing.
  bool Matches(const v1::Session& session) const;
  bool Matches(const v1::Experiment& experiment) const;

  struct Node;  // filter.cc

 private:
  ListFilter(std::shared_ptr<const Node> root, Of of) : root_(std::move(root)), of_(of) {}
  std::shared_ptr<const Node> root_;  // null: everything
  Of of_;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_FILTER_H_
