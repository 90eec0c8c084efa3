// File: server/api/request_pool.cc
#include "server/api/request_pool.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <climits>
#include <utility>

namespace alignd::server {

PredictRequestPool::Handle PredictRequestPool::Get() {
  {
    absl::MutexLock lock(&mu_);
    if (!free_.empty()) {
      std::unique_ptr<v1::PredictRequest> m = std::move(free_.back());
      free_.pop_back();
      return Handle(this, std::move(m));
    }
  }
  return Handle(this, std::make_unique<v1::PredictRequest>());
}

bool PredictRequestPool::Parse(const grpc::ByteBuffer& bytes, Handle* out) {
  v1::PredictRequest& m = **out;
  // Clear everything but the inputs' storage: released, cleared (a repeated field's
  // Clear keeps its capacity), put back.
  v1::Tensor* inputs = m.release_inputs();
  m.Clear();
  if (inputs == nullptr) inputs = new v1::Tensor();
  inputs->Clear();
  m.set_allocated_inputs(inputs);
  grpc::ByteBuffer body(bytes);  // the reader consumes its buffer: a copy of the refs only
  const size_t size = body.Length();
  if (size > size_t{INT_MAX}) return false;  // more than any message protobuf parses
  grpc::ProtoBufferReader reader(&body);
  return reader.status().ok() && m.MergeFromBoundedZeroCopyStream(&reader, static_cast<int>(size));
}

void PredictRequestPool::Return(std::unique_ptr<v1::PredictRequest> m) {
  if (m->has_inputs() && static_cast<size_t>(m->inputs().values().Capacity()) > max_kept_values_)
    return;  // freed: a rare large request does not stay resident
  if (m->has_inputs()) m->mutable_inputs()->Clear();  // its capacity stays; the caller's data goes
  absl::MutexLock lock(&mu_);
  if (free_.size() < keep_) free_.push_back(std::move(m));
}

size_t PredictRequestPool::kept() const {
  absl::MutexLock lock(&mu_);
  return free_.size();
}

}  // namespace alignd::server
