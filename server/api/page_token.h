// File: server/api/page_token.h
// -----------------------------------------------------------------------------
// Page tokens are opaque to clients: a position in a listing, bound to the listing it came
// from (its kind and the request's other fields), in web-safe base64. A token from another
// listing, or edited, or made up, is INVALID_ARGUMENT.
#ifndef ALIGND_SERVER_API_PAGE_TOKEN_H_
#define ALIGND_SERVER_API_PAGE_TOKEN_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace alignd::server {

// `listing` names the listing and the request fields that must not change between pages
// ("sessions|state=2"); `position` is where the next page starts.
std::string EncodePageToken(absl::string_view listing, absl::string_view position);
// The position in `token` ("" for an empty token: the first page).
absl::StatusOr<std::string> DecodePageToken(absl::string_view listing, absl::string_view token);
// FNV-1a, 64 bits: a digest that is the same on every replica and build (ids and orders
// derived from names and request ids, filters bound to page tokens).
uint64_t Fnv1a64(absl::string_view bytes);
// A request's filter as a listing binds it: a stable digest (FNV-1a, the same on every
// replica), so that a long filter does not make a long token.
std::string FilterDigest(absl::string_view filter);
// The page size a request asks for: `dflt` for 0 or less, at most `cap`.
int PageSize(int requested, int dflt, int cap);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_PAGE_TOKEN_H_
