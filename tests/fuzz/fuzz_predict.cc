// Fuzz target: Predict's request as the server parses it (server/api/request_pool.h).
// Input: 2 bytes that choose how the body is cut into slices (gRPC hands a raw method its
// bytes in slices that follow the transport's reads), then the body. Parsed into a kept
// message (the pool lives across inputs, so a message that held an earlier input is
// parsed into), the result must be what protobuf's own parse of the whole body into a
// fresh message gives: the same success, and the same message.
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "google/protobuf/stubs/logging.h"
#include "server/api/request_pool.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // protobuf logs every name that is not UTF-8 (both parses refuse it); silenced here.
  static auto* silencer = new google::protobuf::LogSilencer();
  (void)silencer;
  static auto* pool = new alignd::server::PredictRequestPool();
  uint32_t state = uint32_t{data[0]} << 8 | data[1];
  const std::string body(reinterpret_cast<const char*>(data) + 2, size - 2);
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < body.size();) {
    state = state * 1103515245u + 12345u;
    const size_t n = std::min<size_t>(body.size() - at, 1 + (state >> 16) % 40);
    slices.emplace_back(body.data() + at, n);
    at += n;
  }
  const grpc::ByteBuffer bytes(slices.data(), slices.size());

  alignd::v1::PredictRequest fresh;
  const bool fresh_ok = fresh.ParseFromString(body);
  alignd::server::PredictRequestPool::Handle kept = pool->Get();
  const bool kept_ok = pool->Parse(bytes, &kept);
  if (kept_ok != fresh_ok) std::abort();
  if (!kept_ok) return 0;
  alignd::v1::PredictRequest got = *kept;
  if (!fresh.has_inputs()) {  // the one documented difference: inputs present, and empty
    if (got.inputs().ByteSizeLong() != 0) std::abort();
    got.clear_inputs();
  }
  if (got.SerializeAsString() != fresh.SerializeAsString()) std::abort();
  return 0;
}
