// File: server/training_service.cc
#include "server/training_service.h"

#include <algorithm>

#include "server/metrics_stream.h"
#include "server/rpc_impl.h"
#include "server/snapshot_streams.h"
#include "server/stream_reactor.h"
#include "server/unary.h"

namespace alignd::server {

TrainingServiceImpl::TrainingServiceImpl(SessionManager* sessions,
                                         std::chrono::milliseconds heartbeat)
    : sessions_(sessions), heartbeat_(heartbeat), blocking_(8), io_(2) {
  ticker_ = std::thread([this] {
    auto last = std::chrono::steady_clock::now();
    while (!stop_.load()) {
      std::this_thread::sleep_for(std::min(heartbeat_, std::chrono::milliseconds(100)));
      if (std::chrono::steady_clock::now() - last < heartbeat_) continue;
      last = std::chrono::steady_clock::now();
      for (const v1::Session& r : sessions_->List(v1::SESSION_STATE_UNSPECIFIED))
        if (auto s = sessions_->Find(r.name()); s.ok()) (*s)->Notify();
    }
  });
}

TrainingServiceImpl::~TrainingServiceImpl() {
  stop_ = true;
  ticker_.join();
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CreateSession(grpc::CallbackServerContext* ctx,
                                                             const v1::CreateSessionRequest* req,
                                                             v1::Session* resp) {
  return AnswerOn(&blocking_, ctx,
                  [this, req, resp] { return CreateSessionImpl(*sessions_, *req, resp); });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetSession(grpc::CallbackServerContext* ctx,
                                                          const v1::GetSessionRequest* req,
                                                          v1::Session* resp) {
  return Answer(ctx, [&] { return GetSessionImpl(*sessions_, *req, resp); });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListSessions(grpc::CallbackServerContext* ctx,
                                                            const v1::ListSessionsRequest* req,
                                                            v1::ListSessionsResponse* resp) {
  return Answer(ctx, [&] { return ListSessionsImpl(*sessions_, *req, resp); });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::PauseSession(grpc::CallbackServerContext* ctx,
                                                            const v1::PauseSessionRequest* req,
                                                            v1::Session* resp) {
  return AnswerOn(&blocking_, ctx,
                  [this, req, resp] { return PauseSessionImpl(*sessions_, *req, resp); });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ResumeSession(grpc::CallbackServerContext* ctx,
                                                             const v1::ResumeSessionRequest* req,
                                                             v1::Session* resp) {
  return Answer(ctx, [&] { return ResumeSessionImpl(*sessions_, *req, resp); });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CancelSession(grpc::CallbackServerContext* ctx,
                                                             const v1::CancelSessionRequest* req,
                                                             v1::Session* resp) {
  return AnswerOn(&blocking_, ctx,
                  [this, req, resp] { return CancelSessionImpl(*sessions_, *req, resp); });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::DeleteSession(grpc::CallbackServerContext* ctx,
                                                             const v1::DeleteSessionRequest* req,
                                                             google::protobuf::Empty* resp) {
  return AnswerOn(&blocking_, ctx,
                  [this, req, resp] { return DeleteSessionImpl(*sessions_, *req, resp); });
}

grpc::ServerWriteReactor<v1::MetricEvent>* TrainingServiceImpl::StreamMetrics(
    grpc::CallbackServerContext*, const v1::StreamMetricsRequest* req) {
  try {
    return NewMetricsStream(sessions_, &io_, *req, heartbeat_);
  } catch (...) {
    return new FailedStream<v1::MetricEvent>(FromException(std::current_exception()));
  }
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListMetrics(grpc::CallbackServerContext* ctx,
                                                           const v1::ListMetricsRequest* req,
                                                           v1::ListMetricsResponse* resp) {
  return AnswerOn(&blocking_, ctx,
                  [this, req, resp] { return ListMetricsImpl(*sessions_, *req, resp); });
}

grpc::ServerWriteReactor<v1::SnapshotChunk>* TrainingServiceImpl::StreamSnapshots(
    grpc::CallbackServerContext*, const v1::StreamSnapshotsRequest* req) {
  try {
    return NewSnapshotStream(sessions_, &io_, *req);
  } catch (...) {
    return new FailedStream<v1::SnapshotChunk>(FromException(std::current_exception()));
  }
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetSnapshot(grpc::CallbackServerContext* ctx,
                                                           const v1::GetSnapshotRequest* req,
                                                           v1::Snapshot* resp) {
  return AnswerOn(&blocking_, ctx,
                  [this, req, resp] { return GetSnapshotImpl(*sessions_, *req, resp); });
}

grpc::ServerWriteReactor<v1::SnapshotChunk>* TrainingServiceImpl::ReadSnapshot(
    grpc::CallbackServerContext*, const v1::ReadSnapshotRequest* req) {
  try {
    return NewSnapshotReader(sessions_, &io_, *req);
  } catch (...) {
    return new FailedStream<v1::SnapshotChunk>(FromException(std::current_exception()));
  }
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListSnapshots(grpc::CallbackServerContext* ctx,
                                                             const v1::ListSnapshotsRequest* req,
                                                             v1::ListSnapshotsResponse* resp) {
  return Answer(ctx, [&] { return ListSnapshotsImpl(*sessions_, *req, resp); });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::Predict(grpc::CallbackServerContext* ctx,
                                                       const v1::PredictRequest* req,
                                                       v1::PredictResponse* resp) {
  return AnswerOn(&blocking_, ctx,
                  [this, req, resp] { return PredictImpl(*sessions_, *req, resp); });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::Evaluate(grpc::CallbackServerContext* ctx,
                                                        const v1::EvaluateRequest* req,
                                                        v1::EvaluateResponse* resp) {
  return AnswerOn(&blocking_, ctx,
                  [this, req, resp] { return EvaluateImpl(*sessions_, *req, resp); });
}

}  // namespace alignd::server
