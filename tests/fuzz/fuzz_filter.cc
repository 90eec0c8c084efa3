// Fuzz target: ListSessions' filter (server/api/filter.h), text from any caller. A filter it
// accepts must match without crashing on sessions with and without labels, and parsing must
// be a function of the text (the same answer twice).
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/api/filter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto f = alignd::server::ListFilter::Parse(text);
  auto again = alignd::server::ListFilter::Parse(text);
  if (f.ok() != again.ok()) __builtin_trap();
  if (!f.ok()) {
    if (f.status().code() != absl::StatusCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  alignd::v1::Session a, b;
  a.set_name("sessions/a");
  (*b.mutable_labels())["study"] = "depth";
  b.mutable_config()->mutable_feedback()->set_rule(alignd::v1::RULE_FEEDBACK_ALIGNMENT);
  b.set_state(alignd::v1::SESSION_STATE_SUCCEEDED);
  if (f->Matches(a) != again->Matches(a) || f->Matches(b) != again->Matches(b)) __builtin_trap();
  return 0;
}
