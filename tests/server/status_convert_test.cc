#include "server/api/status_convert.h"

#include <gtest/gtest.h>

namespace alignd::server {
namespace {

TEST(StatusConvertTest, CodesAndMessagesMatchOneToOne) {
  for (int code = 0; code <= 16; ++code) {
    const absl::Status s(static_cast<absl::StatusCode>(code), code ? "msg" : "");
    const grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), code);
    if (code) {
      EXPECT_EQ(g.error_message(), "msg");
    }
    EXPECT_EQ(FromGrpcStatus(g), s);
  }
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("config.batch_size must be >= 1")).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("x")).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace alignd::server
