// File: server/api/resource_names.cc
#include "server/api/resource_names.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace alignd::server {
namespace {

constexpr absl::string_view kDatasets = "datasets/";
constexpr absl::string_view kSessions = "sessions/";
constexpr absl::string_view kSnapshots = "/snapshots/";

bool IsId(absl::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return true;
}

absl::Status NotA(absl::string_view field, absl::string_view name, absl::string_view pattern) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " '", Excerpt(name), "' is not a name of the form ", pattern));
}

}  // namespace

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

std::string DatasetName(absl::string_view id) { return absl::StrCat(kDatasets, id); }
std::string SessionName(absl::string_view id) { return absl::StrCat(kSessions, id); }
std::string SnapshotName(absl::string_view session_name, int64_t step) {
  return step < 0 ? absl::StrCat(session_name, kSnapshots, "latest")
                  : absl::StrCat(session_name, kSnapshots, step);
}

absl::StatusOr<std::string> ParseDatasetName(absl::string_view name, absl::string_view field) {
  if (absl::Status s = CheckNameLength(name, field); !s.ok()) return s;
  if (!absl::ConsumePrefix(&name, kDatasets) || !IsId(name))
    return NotA(field, name, "datasets/{id}");
  return std::string(name);
}

absl::StatusOr<std::string> ParseSessionName(absl::string_view name, absl::string_view field) {
  if (absl::Status s = CheckNameLength(name, field); !s.ok()) return s;
  absl::string_view id = name;
  if (!absl::ConsumePrefix(&id, kSessions) || !IsId(id)) return NotA(field, name, "sessions/{id}");
  return std::string(id);
}

absl::StatusOr<WeightsRef> ParseSnapshotName(absl::string_view name, absl::string_view field) {
  if (absl::Status s = CheckNameLength(name, field); !s.ok()) return s;
  const size_t pos = name.find(kSnapshots);
  if (pos == absl::string_view::npos)
    return NotA(field, name, "sessions/{id}/snapshots/{step|latest}");
  absl::string_view session = name.substr(0, pos);
  absl::string_view id = session;
  if (!absl::ConsumePrefix(&id, kSessions) || !IsId(id))
    return NotA(field, name, "sessions/{id}/snapshots/{step|latest}");
  const absl::string_view step_text = name.substr(pos + kSnapshots.size());
  WeightsRef ref;
  ref.session = std::string(session);
  if (step_text != "latest" && (!absl::SimpleAtoi(step_text, &ref.step) || ref.step < 0))
    return absl::InvalidArgumentError(absl::StrCat(field, ": snapshot step '", Excerpt(step_text),
                                                   "' is not a number >= 0 or 'latest'"));
  return ref;
}

absl::StatusOr<WeightsRef> ParseWeightsName(absl::string_view name, absl::string_view field) {
  if (name.find(kSnapshots) != absl::string_view::npos) return ParseSnapshotName(name, field);
  auto id = ParseSessionName(name, field);
  if (!id.ok())
    return absl::InvalidArgumentError(absl::StrCat(
        field, " '", Excerpt(name), "' is neither sessions/{id} nor a snapshot's name"));
  return WeightsRef{std::string(name), WeightsRef::kLatest};
}

absl::Status ValidateLabels(const google::protobuf::Map<std::string, std::string>& labels,
                            absl::string_view field) {
  if (labels.size() > 64)
    return absl::InvalidArgumentError(
        absl::StrCat(field, " has ", labels.size(), " labels; at most 64"));
  auto lower = [](char c) { return c >= 'a' && c <= 'z'; };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  for (const auto& [k, v] : labels) {
    bool ok = !k.empty() && k.size() <= 63 && lower(k[0]);
    for (char c : k) ok = ok && (lower(c) || digit(c) || c == '_' || c == '-');
    if (!ok)
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": key '", Excerpt(k),
                       "' must be 1-63 characters of [a-z0-9_-] starting with a letter"));
    ok = v.size() <= 63;
    for (char c : v) ok = ok && (lower(c) || digit(c) || c == '_' || c == '-' || c == '.');
    if (!ok)
      return absl::InvalidArgumentError(absl::StrCat(field, "[", k, "]: value '", Excerpt(v),
                                                     "' must be 0-63 characters of [a-z0-9_.-]"));
  }
  return absl::OkStatus();
}

}  // namespace alignd::server
