// File: server/api/training_service.cc
#include "server/api/training_service.h"

#include <algorithm>

#include "base/status_macros.h"
#include "server/api/metrics_stream.h"
#include "server/api/resource_names.h"
#include "server/api/rpc_impl.h"
#include "server/api/snapshot_streams.h"
#include "server/api/stream_reactor.h"
#include "server/api/unary.h"
#include "server/export/export_stream.h"

namespace alignd::server {

TrainingServiceImpl::TrainingServiceImpl(SessionManager* sessions,
                                         std::chrono::milliseconds heartbeat, Identifier identifier)
    : sessions_(sessions), heartbeat_(heartbeat), identifier_(identifier), blocking_(8), io_(2) {
  ticker_ = std::thread([this] {
    auto last = std::chrono::steady_clock::now();
    while (!stop_.load()) {
      std::this_thread::sleep_for(std::min(heartbeat_, std::chrono::milliseconds(100)));
      if (std::chrono::steady_clock::now() - last < heartbeat_) continue;
      last = std::chrono::steady_clock::now();
      sessions_->NotifyAll();
    }
  });
}

TrainingServiceImpl::~TrainingServiceImpl() {
  stop_ = true;
  ticker_.join();
}

absl::Status TrainingServiceImpl::MayRead(grpc::CallbackServerContext* ctx,
                                          const std::string& name) {
  ASSIGN_OR_RETURN(const Caller caller, identifier_.Identify(*ctx));
  // A malformed name is the stream's to report, in its words.
  if (auto ref = ParseWeightsName(name); ref.ok())
    return SessionFor(*sessions_, caller, ref->session).status();
  if (ParseSessionName(name).ok()) return SessionFor(*sessions_, caller, name).status();
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CreateSession(grpc::CallbackServerContext* ctx,
                                                             const v1::CreateSessionRequest* req,
                                                             v1::Session* resp) {
  return AnswerOn(&blocking_, ctx, Rpc(sessions_, &identifier_, ctx, CreateSessionImpl, req, resp));
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetSession(grpc::CallbackServerContext* ctx,
                                                          const v1::GetSessionRequest* req,
                                                          v1::Session* resp) {
  return Answer(ctx, Rpc(sessions_, &identifier_, ctx, GetSessionImpl, req, resp));
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListSessions(grpc::CallbackServerContext* ctx,
                                                            const v1::ListSessionsRequest* req,
                                                            v1::ListSessionsResponse* resp) {
  return Answer(ctx, Rpc(sessions_, &identifier_, ctx, ListSessionsImpl, req, resp));
}

grpc::ServerUnaryReactor* TrainingServiceImpl::PauseSession(grpc::CallbackServerContext* ctx,
                                                            const v1::PauseSessionRequest* req,
                                                            v1::Session* resp) {
  return AnswerOn(&blocking_, ctx, Rpc(sessions_, &identifier_, ctx, PauseSessionImpl, req, resp));
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ResumeSession(grpc::CallbackServerContext* ctx,
                                                             const v1::ResumeSessionRequest* req,
                                                             v1::Session* resp) {
  return Answer(ctx, Rpc(sessions_, &identifier_, ctx, ResumeSessionImpl, req, resp));
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CancelSession(grpc::CallbackServerContext* ctx,
                                                             const v1::CancelSessionRequest* req,
                                                             v1::Session* resp) {
  return AnswerOn(&blocking_, ctx, Rpc(sessions_, &identifier_, ctx, CancelSessionImpl, req, resp));
}

grpc::ServerUnaryReactor* TrainingServiceImpl::DeleteSession(grpc::CallbackServerContext* ctx,
                                                             const v1::DeleteSessionRequest* req,
                                                             google::protobuf::Empty* resp) {
  return AnswerOn(&blocking_, ctx, Rpc(sessions_, &identifier_, ctx, DeleteSessionImpl, req, resp));
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* TrainingServiceImpl::StreamMetrics(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) {
  try {
    // Parsed here, as gRPC parses a typed method's request; a body that does not parse is
    // answered as gRPC answers it there (UNIMPLEMENTED, no message), which the RPC log's
    // interceptor turns into INTERNAL naming the request type, as for every method.
    v1::StreamMetricsRequest req;
    grpc::ByteBuffer body(*request);  // Deserialize consumes its buffer: a copy (refs only)
    if (!grpc::SerializationTraits<v1::StreamMetricsRequest>::Deserialize(&body, &req).ok())
      return new FailedStream<grpc::ByteBuffer>(absl::UnimplementedError(""));
    if (absl::Status st = MayRead(ctx, req.parent()); !st.ok())
      return new FailedStream<grpc::ByteBuffer>(st);
    return NewMetricsStream(sessions_, &io_, req, heartbeat_);
  } catch (...) {
    return new FailedStream<grpc::ByteBuffer>(FromException(std::current_exception()));
  }
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListMetrics(grpc::CallbackServerContext* ctx,
                                                           const v1::ListMetricsRequest* req,
                                                           v1::ListMetricsResponse* resp) {
  return AnswerOn(&blocking_, ctx, Rpc(sessions_, &identifier_, ctx, ListMetricsImpl, req, resp));
}

grpc::ServerWriteReactor<v1::SnapshotChunk>* TrainingServiceImpl::StreamSnapshots(
    grpc::CallbackServerContext* ctx, const v1::StreamSnapshotsRequest* req) {
  try {
    if (absl::Status st = MayRead(ctx, req->parent()); !st.ok())
      return new FailedStream<v1::SnapshotChunk>(st);
    return NewSnapshotStream(sessions_, &io_, *req);
  } catch (...) {
    return new FailedStream<v1::SnapshotChunk>(FromException(std::current_exception()));
  }
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetSnapshot(grpc::CallbackServerContext* ctx,
                                                           const v1::GetSnapshotRequest* req,
                                                           v1::Snapshot* resp) {
  return AnswerOn(&blocking_, ctx, Rpc(sessions_, &identifier_, ctx, GetSnapshotImpl, req, resp));
}

grpc::ServerWriteReactor<v1::SnapshotChunk>* TrainingServiceImpl::ReadSnapshot(
    grpc::CallbackServerContext* ctx, const v1::ReadSnapshotRequest* req) {
  try {
    if (absl::Status st = MayRead(ctx, req->name()); !st.ok())
      return new FailedStream<v1::SnapshotChunk>(st);
    return NewSnapshotReader(sessions_, &io_, *req);
  } catch (...) {
    return new FailedStream<v1::SnapshotChunk>(FromException(std::current_exception()));
  }
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListSnapshots(grpc::CallbackServerContext* ctx,
                                                             const v1::ListSnapshotsRequest* req,
                                                             v1::ListSnapshotsResponse* resp) {
  return Answer(ctx, Rpc(sessions_, &identifier_, ctx, ListSnapshotsImpl, req, resp));
}

grpc::ServerUnaryReactor* TrainingServiceImpl::Predict(grpc::CallbackServerContext* ctx,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  return AnswerOn(&blocking_, ctx, [this, ctx, request, response]() -> absl::Status {
    PredictRequestPool::Handle req = predict_requests_.Get();
    // A body that does not parse is answered as gRPC answers it for a typed method
    // (UNIMPLEMENTED, no message; the RPC log's interceptor makes it INTERNAL naming the
    // request type), before the caller is identified, as there.
    if (!predict_requests_.Parse(*request, &req)) return absl::UnimplementedError("");
    ASSIGN_OR_RETURN(const Caller caller, identifier_.Identify(*ctx));
    v1::PredictResponse resp;
    RETURN_IF_ERROR(PredictImpl(*sessions_, caller, *req, &resp));
    bool own_buffer = false;
    if (!grpc::SerializationTraits<v1::PredictResponse>::Serialize(resp, response, &own_buffer)
             .ok())
      return absl::InternalError("Predict: the answer could not be serialized");
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListRules(grpc::CallbackServerContext* ctx,
                                                         const v1::ListRulesRequest* req,
                                                         v1::ListRulesResponse* resp) {
  return Answer(ctx, Rpc(sessions_, &identifier_, ctx, ListRulesImpl, req, resp));
}

grpc::ServerUnaryReactor* TrainingServiceImpl::Evaluate(grpc::CallbackServerContext* ctx,
                                                        const v1::EvaluateRequest* req,
                                                        v1::EvaluateResponse* resp) {
  return AnswerOn(&blocking_, ctx, Rpc(sessions_, &identifier_, ctx, EvaluateImpl, req, resp));
}

grpc::ServerWriteReactor<v1::ExportChunk>* TrainingServiceImpl::ExportSession(
    grpc::CallbackServerContext* ctx, const v1::ExportSessionRequest* req) {
  try {
    absl::StatusOr<Caller> caller = identifier_.Identify(*ctx);
    if (!caller.ok()) return new FailedStream<v1::ExportChunk>(caller.status());
    // Made on the blocking pool: a long log or a large network takes a while to write.
    return NewExportStream(sessions_, &blocking_, *std::move(caller), *req);
  } catch (...) {
    return new FailedStream<v1::ExportChunk>(FromException(std::current_exception()));
  }
}

}  // namespace alignd::server
