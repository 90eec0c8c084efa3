// File: server/resource_names.h
// -----------------------------------------------------------------------------
// Resource names are client input: their length is capped before anything looks
// them up or echoes them, and error messages quote at most an excerpt of any client
// string, so a 10,000-byte name gets INVALID_ARGUMENT with a short message, never a
// status larger than a client's 8 KiB metadata limit.
//
// Names: datasets/{16 hex}, sessions/{12 hex}, sessions/{12 hex}/snapshots/{step|latest}.
#ifndef ALIGND_SERVER_RESOURCE_NAMES_H_
#define ALIGND_SERVER_RESOURCE_NAMES_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace alignd::server {

// Longer than any name the server gives out, by a margin.
constexpr size_t kMaxNameBytes = 128;

// InvalidArgument if `name` is longer than kMaxNameBytes; `field` names the request
// field in the message ("name", "train_dataset", ...).
absl::Status CheckNameLength(absl::string_view name, absl::string_view field = "name");

// `text` as it may appear in an error message: whole if at most 64 bytes, else its
// first 64 bytes and how long it was.
std::string Excerpt(absl::string_view text);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_RESOURCE_NAMES_H_
