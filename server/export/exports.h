// File: server/export/exports.h
// -----------------------------------------------------------------------------
// A session as the files other tools read (ExportSession; the formats are documented on
// proto/alignd/v1/sessions.proto's ExportFormat): its metric log as CSV, JSON lines or a
// TensorBoard event file, the session as JSON, one state's weights as safetensors or an ONNX
// model. Plain functions of protos and core types: no gRPC, no storage.
#ifndef ALIGND_SERVER_EXPORT_EXPORTS_H_
#define ALIGND_SERVER_EXPORT_EXPORTS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "alignd/v1/sessions.pb.h"
#include "core/config.h"
#include "core/trainer.h"

namespace alignd::server {

struct ExportFile {
  std::string filename;      // what to save it as
  std::string content_type;  // its media type
  std::string data;
};

// The session's id ("sessions/abc" -> "abc"): the stem of its files' names.
std::string SessionIdOf(const v1::Session& session);

// The session as JSON (protobuf's JSON mapping, the proto's field names).
std::string SessionJson(const v1::Session& session);

// CSV, JSONL or TFEVENTS of `events` (a session's log in seq order: step and eval events;
// others are skipped). InvalidArgument for another format.
absl::StatusOr<ExportFile> ExportMetricLog(const v1::Session& session,
                                           const std::vector<v1::MetricEvent>& events,
                                           v1::ExportFormat format);

// SAFETENSORS or ONNX of `state`'s weights, for the session's network `net` (completed:
// sizes derived). FailedPrecondition where ONNX cannot express the network; InvalidArgument
// for another format.
absl::StatusOr<ExportFile> ExportWeights(const v1::Session& session,
                                         const core::TrainerState& state,
                                         const core::NetworkConfig& net, v1::ExportFormat format);

// A safetensors file's tensors (float32 only), checked as the published spec asks: the
// header's size and JSON, each entry's dtype, shape and offsets, offsets that tile the
// buffer exactly, finite values. InvalidArgument naming `field` and the tensor.
struct SafetensorsTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;  // C order
};
absl::StatusOr<std::map<std::string, SafetensorsTensor>> ParseSafetensors(absl::string_view data,
                                                                          absl::string_view field);

// `state` (a trainer's, for the network `net`) with the tensors of `file` in place of its
// own: the names and shapes ExportSession's safetensors have (W{i}, b{i} as [out] or
// [out, 1], B{i}), any subset of them. InvalidArgument naming `field` and the tensor for a
// name the network does not have, a wrong shape, or a value that is not finite.
// With `feedback`, the B{i} go there (layer -> B in the state's orientation) instead, for
// the rule to take through Trainer::SetFeedback.
absl::Status ApplySafetensors(const std::map<std::string, SafetensorsTensor>& file,
                              const core::NetworkConfig& net, absl::string_view field,
                              core::TrainerState* state,
                              std::map<int, core::Matrix>* feedback = nullptr);

// TFRecord framing (tfevents files): CRC-32C (Castagnoli), its masked form, and one record
// (length, masked CRC of the length, data, masked CRC of the data) appended to `out`.
uint32_t Crc32c(absl::string_view data);
uint32_t MaskedCrc32c(absl::string_view data);
void AppendTfRecord(absl::string_view data, std::string* out);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_EXPORT_EXPORTS_H_
