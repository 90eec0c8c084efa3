// File: server/export/weights_import.cc
// Initial weights from a safetensors file (CreateSessionRequest.initial_weights): the format
// ExportSession writes, read back with the spec's checks.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "server/api/resource_names.h"
#include "server/api/snapshot_streams.h"
#include "server/export/exports.h"

namespace alignd::server {

absl::StatusOr<std::map<std::string, SafetensorsTensor>> ParseSafetensors(absl::string_view data,
                                                                          absl::string_view field) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": not a safetensors file: ", what));
  };
  if (data.size() < 8) return bad("shorter than its 8-byte header size");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{static_cast<unsigned char>(data[i])} << (8 * i);
  if (n > data.size() - 8 || n > (16u << 20))
    return bad(absl::StrCat("a header of ", n, " bytes in a file of ", data.size()));
  const absl::string_view head = data.substr(8, n);
  if (head.empty() || head[0] != '{') return bad("the header is not a JSON object");
  nlohmann::json h = nlohmann::json::parse(head.begin(), head.end(), nullptr, false);
  if (h.is_discarded() || !h.is_object()) return bad("the header is not a JSON object");
  const absl::string_view buffer = data.substr(8 + n);
  std::map<std::string, SafetensorsTensor> out;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const auto& item : h.items()) {
    const std::string& name = item.key();
    const nlohmann::json& e = item.value();
    if (name == "__metadata__") continue;
    auto tensor_bad = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": tensor ", Excerpt(name), ": ", what));
    };
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
        !e.contains("data_offsets"))
      return tensor_bad("needs dtype, shape and data_offsets");
    if (e["dtype"] != "F32")
      return tensor_bad(
          absl::StrCat("dtype ", Excerpt(e["dtype"].dump()), "; alignd's weights are F32"));
    SafetensorsTensor t;
    uint64_t count = 1;
    if (!e["shape"].is_array() || e["shape"].size() > 8) return tensor_bad("a bad shape");
    for (const auto& d : e["shape"]) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (1u << 30))
        return tensor_bad("a bad shape");
      t.shape.push_back(d.get<int64_t>());
      count *= d.get<uint64_t>();
      if (count > (uint64_t{1} << 31)) return tensor_bad("too large");
    }
    const auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      return tensor_bad("bad data_offsets");
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > buffer.size() || end - begin != 4 * count)
      return tensor_bad(absl::StrCat("data_offsets [", begin, ", ", end, ") do not hold ", count,
                                     " float32 values in a buffer of ", buffer.size(), " bytes"));
    t.values.resize(count);
    if (count > 0) std::memcpy(t.values.data(), buffer.data() + begin, 4 * count);
    for (float v : t.values)
      if (!std::isfinite(v)) return tensor_bad("holds NaN or Inf");
    spans.emplace_back(begin, end);
    out[name] = std::move(t);
  }
  std::sort(spans.begin(), spans.end());
  uint64_t at = 0;
  for (const auto& [b, e] : spans) {
    if (b != at) return bad("its tensors' data_offsets leave a hole or overlap");
    at = e;
  }
  if (at != buffer.size()) return bad("bytes after the last tensor");
  return out;
}

absl::Status ApplySafetensors(const std::map<std::string, SafetensorsTensor>& file,
                              const core::NetworkConfig& net, absl::string_view field,
                              core::TrainerState* state, std::map<int, core::Matrix>* feedback) {
  // The names and shapes ReadSnapshot (and so ExportSession) gives this network's tensors.
  const v1::Snapshot meta = SnapshotMetadata("", *state, net);
  std::map<std::string, const v1::TensorShape*> by_label;
  for (const auto& s : meta.shapes())
    if (s.rows() * s.cols() > 0) by_label[s.label()] = &s;
  for (const auto& [name, t] : file) {
    auto it = by_label.find(name);
    if (it == by_label.end()) {
      std::vector<std::string> names;
      for (const auto& [k, v] : by_label) names.push_back(k);
      return absl::InvalidArgumentError(absl::StrCat(field, ": tensor ", name,
                                                     " is not one of this network's (",
                                                     absl::StrJoin(names, ", "), ")"));
    }
    const v1::TensorShape& s = *it->second;
    std::vector<int64_t> want(s.dims().begin(), s.dims().end());
    const bool vector_ok = name[0] == 'b' && t.shape == std::vector<int64_t>{s.rows()};
    if (t.shape != want && !vector_ok)
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": tensor ", name, " is [", absl::StrJoin(t.shape, ", "),
                       "]; this network's is [", absl::StrJoin(want, ", "), "]"));
    int layer = 0;
    (void)absl::SimpleAtoi(name.substr(1), &layer);
    core::Matrix* m = name[0] == 'W'   ? &state->weights[layer]
                      : name[0] == 'b' ? &state->biases[layer]
                      : feedback       ? &(*feedback)[layer]
                                       : &state->feedback[layer];
    if (want.size() == 4) {  // a kernel in C order: row o of the matrix is filter o
      *m = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
          t.values.data(), s.rows(), s.cols());
    } else {  // [rows, cols] in C order, to the engine's column-major
      *m = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
          t.values.data(), s.rows(), s.cols());
    }
    // A sparse network's removed connections stay removed: a weight there is refused, not
    // silently dropped.
    if (name[0] == 'W' && layer < static_cast<int>(state->weight_masks.size()) &&
        state->weight_masks[layer].size() == m->size() &&
        ((m->array() != 0.0f) && (state->weight_masks[layer].array() == 0.0f)).any())
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": tensor ", name,
                       " has weights where the network's connection mask removed them "
                       "(connection_sparsity): zero them, or import into a dense network"));
  }
  return absl::OkStatus();
}

}  // namespace alignd::server
