// File: server/api/proto_convert.h
// -----------------------------------------------------------------------------
// Conversions between the wire (alignd/v1 protos) and the engine (core/). Unset
// fields take the engine's defaults; every error is InvalidArgument naming the
// field as the client wrote it ("config.optimizer.learning_rate must be ...").
#ifndef ALIGND_SERVER_API_PROTO_CONVERT_H_
#define ALIGND_SERVER_API_PROTO_CONVERT_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "alignd/v1/config.pb.h"
#include "alignd/v1/sessions.pb.h"
#include "core/config.h"
#include "core/matrix.h"
#include "core/trainer.h"
#include "google/protobuf/timestamp.pb.h"

namespace alignd::server {

// The engine options for a wire config, validated (core::ValidateOptions), with the network
// completed (core::CompleteNetwork: sizes from the layers). With layers and no input_shape,
// the input's image shape comes from `feature_shape` (the training set's: [H, W] is 1 x H x W,
// [C, H, W] is C x H x W; any other rank is flat, and a conv or pooling layer is then refused
// with a word on input_shape); without it (a stored config, which has both), from sizes[0].
absl::StatusOr<core::TrainerOptions> ToTrainerOptions(
    const v1::TrainingConfig& config, const std::vector<int64_t>* feature_shape = nullptr);

v1::Rule FromRule(core::Rule r);
v1::LayerKind FromLayerKind(core::LayerKind k);

// The wire config with every default filled in, as the session will run it.
v1::TrainingConfig ToProto(const core::TrainerOptions& options);

void ToProto(const core::StepMetrics& m, v1::StepMetrics* out);
void ToProto(const core::EvalMetrics& m, v1::EvalMetrics* out);

// The current time with nanosecond resolution (protobuf 3.21's TimeUtil::GetCurrentTime
// has whole seconds only here).
google::protobuf::Timestamp Now();
// "RUNNING" for SESSION_STATE_RUNNING: how messages, logs and metric labels name states.
std::string StateName(v1::SessionState state);

// A Tensor's values as a rows x cols matrix, after checking values_size() == rows * cols.
absl::StatusOr<core::Matrix> FromProto(const v1::Tensor& t, const char* field);
// The same, checked the same, as a view of the message's values (no copy: valid while `t`
// is; Predict's 1,000 MNIST examples are 3 MB).
absl::StatusOr<core::ConstMatrixMap> MapProto(const v1::Tensor& t, const char* field);
void ToProto(const core::Matrix& m, v1::Tensor* out);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_PROTO_CONVERT_H_
