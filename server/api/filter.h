// File: server/api/filter.h
// -----------------------------------------------------------------------------
// ListSessions' filter: a documented subset of AIP-160 (google.aip.dev/160).
//
//   filter     := sequence { "AND" sequence }
//   sequence   := factor { factor }                 (juxtaposition is AND)
//   factor     := term { "OR" term }                (OR binds tighter than AND, as AIP-160 says)
//   term       := [ "NOT" | "-" ] ( "(" filter ")" | comparison )
//   comparison := field ( "=" | "!=" ) value  |  field ":" value  |  labels.KEY ":" "*"
//
// Fields: labels.KEY, rule ("fa" or "RULE_FEEDBACK_ALIGNMENT"), state ("succeeded" or
// "SESSION_STATE_SUCCEEDED"), name, display_name, train_dataset, eval_dataset, owner,
// experiment, experiment_group. A value
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
#include "alignd/v1/sessions.pb.h"

namespace alignd::server {

class SessionFilter {
 public:
  // InvalidArgument ("filter: ... at position N") for what it cannot read; an empty or blank
  // text matches every session.
  static absl::StatusOr<SessionFilter> Parse(absl::string_view text);
  bool Matches(const v1::Session& session) const;

  struct Node;  // filter.cc

 private:
  explicit SessionFilter(std::shared_ptr<const Node> root) : root_(std::move(root)) {}
  std::shared_ptr<const Node> root_;  // null: everything
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_FILTER_H_
