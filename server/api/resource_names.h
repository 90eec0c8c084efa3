// File: server/api/resource_names.h
// -----------------------------------------------------------------------------
// Resource names, parsed and built in one place. Names are client input: their
// length is capped before anything looks them up or echoes them, ids are checked
// to be plain tokens (they become file names in storage), and error messages quote
// at most an excerpt of any client string, so a 10,000-byte name gets
// INVALID_ARGUMENT with a short message, never a status larger than a client's 8 KiB
// metadata limit.
//
//   datasets/{id}                          id: 16 hex digits the server gives
//   sessions/{id}                          id: 12 hex digits the server gives
//   sessions/{id}/snapshots/{step|latest}
//
// Parsers accept any id of 1-64 characters from [a-z0-9_-] (so a name from another
// version of the server still parses); a malformed name is INVALID_ARGUMENT naming the
// request field, a well-formed one that is not stored is the caller's NOT_FOUND.
#ifndef ALIGND_SERVER_API_RESOURCE_NAMES_H_
#define ALIGND_SERVER_API_RESOURCE_NAMES_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/map.h"

namespace alignd::server {

// Longer than any name the server gives out, by a margin.
constexpr size_t kMaxNameBytes = 128;

// InvalidArgument if `name` is longer than kMaxNameBytes; `field` names the request
// field in the message ("name", "train_dataset", ...).
absl::Status CheckNameLength(absl::string_view name, absl::string_view field = "name");

// `text` as it may appear in an error message: whole if at most 64 bytes, else its
// first 64 bytes and how long it was.
std::string Excerpt(absl::string_view text);

std::string DatasetName(absl::string_view id);
std::string SessionName(absl::string_view id);
// step < 0 gives ".../snapshots/latest".
std::string SnapshotName(absl::string_view session_name, int64_t step);

// "datasets/{id}" -> id.
absl::StatusOr<std::string> ParseDatasetName(absl::string_view name,
                                             absl::string_view field = "name");
// "sessions/{id}" -> id.
absl::StatusOr<std::string> ParseSessionName(absl::string_view name,
                                             absl::string_view field = "name");

// Where a session's weights are: the session, and a step (kLatest: the newest stored).
struct WeightsRef {
  static constexpr int64_t kLatest = -1;
  std::string session;  // "sessions/{id}"
  int64_t step = kLatest;
};
// "sessions/{id}/snapshots/{step|latest}".
absl::StatusOr<WeightsRef> ParseSnapshotName(absl::string_view name,
                                             absl::string_view field = "name");
// A snapshot name, or a bare session name meaning its latest weights.
absl::StatusOr<WeightsRef> ParseWeightsName(absl::string_view name,
                                            absl::string_view field = "name");

// Labels (Session.labels): at most 64; keys 1-63 characters of [a-z0-9_-] starting with a
// letter, values 0-63 of [a-z0-9_.-]. InvalidArgument names `field` and the label.
absl::Status ValidateLabels(const google::protobuf::Map<std::string, std::string>& labels,
                            absl::string_view field);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_RESOURCE_NAMES_H_
