// File: server/api/request_pool.h
// -----------------------------------------------------------------------------
// Predict's requests, parsed into messages kept from earlier calls. A Predict of 1,000
// MNIST examples carries 3 MB of floats; parsed by gRPC into a fresh message, protobuf
// grows the packed field block by block (Reserve per 8 KB slice: ~6 MB copied through
// doubling buffers, then freed). Parsed into a kept message whose inputs were cleared,
// not deleted, the values land in the capacity the last call left: one copy, no
// allocation (alignd's CPU for a Predict of 1,000: 13.3 -> 12.5 ms a call, RESULTS.md).
//
// Parse merges the bytes into a cleared message (ParseFrom<kMerge>: protobuf's Parse would
// Clear() first, and a message's Clear() deletes its sub-messages). The result is the
// message the bytes encode, with one difference the RPCs do not read: has_inputs() is true
// even when the bytes had no inputs (then they are empty, as inputs() of a message without
// them reads).
#ifndef ALIGND_SERVER_API_REQUEST_POOL_H_
#define ALIGND_SERVER_API_REQUEST_POOL_H_

#include <grpcpp/support/byte_buffer.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "alignd/v1/sessions.pb.h"

namespace alignd::server {

class PredictRequestPool {
 public:
  // At most `keep` messages are kept, each with at most `max_kept_values` floats of
  // capacity, a name of at most kMaxKeptNameBytes and no unknown fields (another is freed
  // when returned). A kept message holds no caller's data: it is cleared when returned.
  explicit PredictRequestPool(size_t keep = 2, size_t max_kept_values = size_t{1} << 22)
      : keep_(keep), max_kept_values_(max_kept_values) {}

  // A message from the pool (or a new one), returned to it when the handle dies.
  class Handle {
   public:
    Handle(PredictRequestPool* pool, std::unique_ptr<v1::PredictRequest> m)
        : pool_(pool), m_(std::move(m)) {}
    Handle(Handle&&) = default;
    Handle& operator=(Handle&&) = delete;
    ~Handle() {
      if (m_ != nullptr) pool_->Return(std::move(m_));
    }
    v1::PredictRequest& operator*() const { return *m_; }
    v1::PredictRequest* operator->() const { return m_.get(); }

   private:
    PredictRequestPool* pool_;
    std::unique_ptr<v1::PredictRequest> m_;
  };

  // The request `bytes` encode, parsed into a kept message; false if they do not parse.
  // `bytes` is not consumed (its slices are referenced, not copied).
  // Whatever the bytes' slicing (gRPC's slices follow the transport's reads).
  bool Parse(const grpc::ByteBuffer& bytes, Handle* out);
  Handle Get();

  size_t kept() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  static constexpr size_t kMaxKeptNameBytes = 4096;
  static void ClearKeepingInputs(v1::PredictRequest& m);
  void Return(std::unique_ptr<v1::PredictRequest> m);

  const size_t keep_, max_kept_values_;
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<v1::PredictRequest>> free_ ABSL_GUARDED_BY(mu_);
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_REQUEST_POOL_H_
