// File: server/api/page_token.cc
#include "server/api/page_token.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace alignd::server {
namespace {
constexpr absl::string_view kMagic = "alignd.v1|";
}  // namespace

std::string EncodePageToken(absl::string_view listing, absl::string_view position) {
  return absl::WebSafeBase64Escape(absl::StrCat(kMagic, listing, "|", position));
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view listing, absl::string_view token) {
  if (token.empty()) return std::string();
  std::string raw;
  const std::string prefix = absl::StrCat(kMagic, listing, "|");
  if (token.size() > 1024 || !absl::WebSafeBase64Unescape(token, &raw) ||
      !absl::StartsWith(raw, prefix))
    return absl::InvalidArgumentError(
        "page_token is not one this listing gave (pass next_page_token back unchanged, with the "
        "same other fields)");
  return raw.substr(prefix.size());
}

uint64_t Fnv1a64(absl::string_view bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string FilterDigest(absl::string_view filter) { return std::to_string(Fnv1a64(filter)); }

int PageSize(int requested, int dflt, int cap) {
  if (requested <= 0) return dflt;
  return std::min(requested, cap);
}

}  // namespace alignd::server
