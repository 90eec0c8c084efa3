// File: server/api/status_convert.h
// -----------------------------------------------------------------------------
// The one place where absl::Status becomes grpc::Status (tf-serving's
// grpc_status_util). The codes match 1:1; the message is kept as is.
#ifndef ALIGND_SERVER_API_STATUS_CONVERT_H_
#define ALIGND_SERVER_API_STATUS_CONVERT_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace alignd::server {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_STATUS_CONVERT_H_
