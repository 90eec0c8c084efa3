// File: server/api/request_pool.cc
#include "server/api/request_pool.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <utility>

namespace alignd::server {
namespace {

bool HasUnknownFields(const google::protobuf::Message& m) {
  return !m.GetReflection()->GetUnknownFields(m).empty();
}

}  // namespace

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
  ClearKeepingInputs(m);
  grpc::ByteBuffer body(bytes);  // the reader takes a non-const buffer: a copy of the refs
  grpc::ProtoBufferReader reader(&body);
  if (!reader.status().ok()) return false;
  // What ParseFromZeroCopyStream does, without its Clear(). Not MergeFrom(Bounded)
  // ZeroCopyStream: after a parse that stops early (a 0 or end-group tag) it backs the
  // stream up by what it did not read, which can be more than gRPC's reader holds of its
  // current slice, and ProtoBufferReader::BackUp aborts the process on that.
  return m.ParseFrom<google::protobuf::MessageLite::kMerge>(
      static_cast<google::protobuf::io::ZeroCopyInputStream*>(&reader));
}

void PredictRequestPool::ClearKeepingInputs(v1::PredictRequest& m) {
  // Everything goes but the inputs' storage: released, cleared (a repeated field's Clear
  // keeps its capacity), put back.
  v1::Tensor* inputs = m.release_inputs();
  m.Clear();
  if (inputs == nullptr) inputs = new v1::Tensor();
  inputs->Clear();
  m.set_allocated_inputs(inputs);
}

void PredictRequestPool::Return(std::unique_ptr<v1::PredictRequest> m) {
  // Freed rather than kept resident: a message that held a long name (a resource name is
  // a few dozen bytes), more values than the bound, or unknown fields (Clear() empties
  // their set but keeps its array: an 8 MiB body of 2-byte unknown fields leaves ~64 MiB).
  if (m->name().capacity() > kMaxKeptNameBytes || HasUnknownFields(*m) ||
      (m->has_inputs() &&
       (static_cast<size_t>(m->inputs().values().Capacity()) > max_kept_values_ ||
        HasUnknownFields(m->inputs()))))
    return;
  ClearKeepingInputs(*m);  // the caller's data goes now, not at the next parse
  absl::MutexLock lock(&mu_);
  if (free_.size() < keep_) free_.push_back(std::move(m));
}

size_t PredictRequestPool::kept() const {
  absl::MutexLock lock(&mu_);
  return free_.size();
}

}  // namespace alignd::server
