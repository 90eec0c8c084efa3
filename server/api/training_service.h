// File: server/api/training_service.h
// -----------------------------------------------------------------------------
// TrainingService on gRPC's callback API: wiring only. Each unary RPC is a function
// in session_impl.cc (rpc_impl.h), run inline when it is quick (reads of records in
// memory) or on the `blocking_` executor when it may wait (Pause and Cancel wait for
// the worker's checkpoint; Create loads data sets; Predict and Evaluate may build a
// network or sweep a data set; Delete removes files). The streams are
// metrics_stream.h and snapshot_streams.h, which read storage on `io_`.
#ifndef ALIGND_SERVER_API_TRAINING_SERVICE_H_
#define ALIGND_SERVER_API_TRAINING_SERVICE_H_

#include <atomic>
#include <chrono>
#include <thread>

#include "alignd/v1/sessions.grpc.pb.h"
#include "server/api/executor.h"
#include "server/api/request_pool.h"
#include "server/net/auth.h"
#include "server/sessions/session_manager.h"

namespace alignd::server {

// StreamMetrics is a raw method (gRPC's WithRawCallbackMethod_): it takes the request's
// bytes and writes events' bytes, so that one event's encoding is shared by all its
// subscribers (metrics_stream.h). Predict is one too: its request (3 MB for 1,000 MNIST
// examples) is parsed on the executor into a message kept from an earlier call
// (request_pool.h). The wire is the same as the typed methods'.
class TrainingServiceImpl final : public v1::TrainingService::WithRawCallbackMethod_Predict<
                                      v1::TrainingService::WithRawCallbackMethod_StreamMetrics<
                                          v1::TrainingService::CallbackService>> {
 public:
  // `sessions` must outlive the service. Heartbeats go to idle streams every `heartbeat`.
  // Callers are told apart by `identifier` (auth.h; by default everyone is an admin).
  TrainingServiceImpl(SessionManager* sessions, std::chrono::milliseconds heartbeat,
                      Identifier identifier = Identifier());
  ~TrainingServiceImpl() override;

  grpc::ServerUnaryReactor* CreateSession(grpc::CallbackServerContext* ctx,
                                          const v1::CreateSessionRequest* request,
                                          v1::Session* response) override;
  grpc::ServerUnaryReactor* GetSession(grpc::CallbackServerContext* ctx,
                                       const v1::GetSessionRequest* request,
                                       v1::Session* response) override;
  grpc::ServerUnaryReactor* ListSessions(grpc::CallbackServerContext* ctx,
                                         const v1::ListSessionsRequest* request,
                                         v1::ListSessionsResponse* response) override;
  grpc::ServerUnaryReactor* PauseSession(grpc::CallbackServerContext* ctx,
                                         const v1::PauseSessionRequest* request,
                                         v1::Session* response) override;
  grpc::ServerUnaryReactor* ResumeSession(grpc::CallbackServerContext* ctx,
                                          const v1::ResumeSessionRequest* request,
                                          v1::Session* response) override;
  grpc::ServerUnaryReactor* CancelSession(grpc::CallbackServerContext* ctx,
                                          const v1::CancelSessionRequest* request,
                                          v1::Session* response) override;
  grpc::ServerUnaryReactor* DeleteSession(grpc::CallbackServerContext* ctx,
                                          const v1::DeleteSessionRequest* request,
                                          google::protobuf::Empty* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* StreamMetrics(
      grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* ListMetrics(grpc::CallbackServerContext* ctx,
                                        const v1::ListMetricsRequest* request,
                                        v1::ListMetricsResponse* response) override;
  grpc::ServerWriteReactor<v1::SnapshotChunk>* StreamSnapshots(
      grpc::CallbackServerContext* ctx, const v1::StreamSnapshotsRequest* request) override;
  grpc::ServerUnaryReactor* GetSnapshot(grpc::CallbackServerContext* ctx,
                                        const v1::GetSnapshotRequest* request,
                                        v1::Snapshot* response) override;
  grpc::ServerWriteReactor<v1::SnapshotChunk>* ReadSnapshot(
      grpc::CallbackServerContext* ctx, const v1::ReadSnapshotRequest* request) override;
  grpc::ServerUnaryReactor* ListSnapshots(grpc::CallbackServerContext* ctx,
                                          const v1::ListSnapshotsRequest* request,
                                          v1::ListSnapshotsResponse* response) override;
  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Evaluate(grpc::CallbackServerContext* ctx,
                                     const v1::EvaluateRequest* request,
                                     v1::EvaluateResponse* response) override;
  grpc::ServerUnaryReactor* ListRules(grpc::CallbackServerContext* ctx,
                                      const v1::ListRulesRequest* request,
                                      v1::ListRulesResponse* response) override;
  grpc::ServerWriteReactor<v1::ExportChunk>* ExportSession(
      grpc::CallbackServerContext* ctx, const v1::ExportSessionRequest* request) override;

 private:
  // OK if the caller may read the session `name` is of (or in: a snapshot, weights).
  absl::Status MayRead(grpc::CallbackServerContext* ctx, const std::string& name);

  SessionManager* const sessions_;
  const std::chrono::milliseconds heartbeat_;
  const Identifier identifier_;
  // Before the executors: destroyed after them, since ~Executor runs what is still queued
  // (a Predict returns its request to the pool).
  PredictRequestPool predict_requests_;
  Executor blocking_;  // unary work that may wait or compute at length
  Executor io_;        // streams' reads of storage
  std::atomic<bool> stop_{false};
  std::thread ticker_;  // wakes every session's watchers each heartbeat interval
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_TRAINING_SERVICE_H_
