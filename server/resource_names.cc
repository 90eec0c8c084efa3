// File: server/resource_names.cc
#include "server/resource_names.h"

#include "absl/strings/str_cat.h"

namespace alignd::server {

absl::Status CheckNameLength(absl::string_view name, absl::string_view field) {
  if (name.size() <= kMaxNameBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " is ", name.size(), " bytes long; resource names are at most ",
                   kMaxNameBytes, " (it begins '", Excerpt(name), "')"));
}

std::string Excerpt(absl::string_view text) {
  constexpr size_t kShown = 64;
  if (text.size() <= kShown) return std::string(text);
  return absl::StrCat(text.substr(0, kShown), "... (", text.size(), " bytes)");
}

}  // namespace alignd::server
