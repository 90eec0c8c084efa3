// File: server/training_service.h
// -----------------------------------------------------------------------------
// The gRPC services (callback API): DatasetService and TrainingService. They
// adapt requests to DatasetStore and SessionManager and convert every
// absl::Status once (status_convert.h). Streams are reactors with one write in
// flight; what they send comes from the session's metric log in storage, so a slow
// reader only falls behind, never slows training or loses an event.
#ifndef ALIGND_SERVER_TRAINING_SERVICE_H_
#define ALIGND_SERVER_TRAINING_SERVICE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "alignd/v1/datasets.grpc.pb.h"
#include "alignd/v1/sessions.grpc.pb.h"
#include "core/trainer.h"
#include "server/dataset_store.h"
#include "server/session_manager.h"

namespace alignd::server {

class DatasetServiceImpl final : public v1::DatasetService::CallbackService {
 public:
  // Both must outlive the service.
  DatasetServiceImpl(DatasetStore* store, SessionManager* sessions)
      : store_(store), sessions_(sessions) {}

  grpc::ServerReadReactor<v1::UploadDatasetRequest>* UploadDataset(grpc::CallbackServerContext* ctx,
                                                                   v1::Dataset* response) override;
  grpc::ServerUnaryReactor* CreateGeneratedDataset(grpc::CallbackServerContext* ctx,
                                                   const v1::CreateGeneratedDatasetRequest* request,
                                                   v1::Dataset* response) override;
  grpc::ServerUnaryReactor* GetDataset(grpc::CallbackServerContext* ctx,
                                       const v1::GetDatasetRequest* request,
                                       v1::Dataset* response) override;
  grpc::ServerUnaryReactor* ListDatasets(grpc::CallbackServerContext* ctx,
                                         const v1::ListDatasetsRequest* request,
                                         v1::ListDatasetsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteDataset(grpc::CallbackServerContext* ctx,
                                          const v1::DeleteDatasetRequest* request,
                                          google::protobuf::Empty* response) override;

 private:
  DatasetStore* const store_;
  SessionManager* const sessions_;
};

// Networks for Predict and Evaluate, keyed by the identity of the weights file they were
// loaded from (path, inode, size, mtime; files are replaced by rename, so new weights are a
// new key): a request for weights already loaded reuses the immutable Trainer (its
// Predict/Evaluate are const and may run on several threads at once). At most
// kMaxNetworks, least recently used out. Also remembers checkpoint files' steps, so that
// resolving "the latest weights" does not parse a checkpoint per request. Thread-safe.
class NetworkCache {
 public:
  static constexpr size_t kMaxNetworks = 4;
  std::shared_ptr<const core::Trainer> Get(const std::string& key);
  void Put(const std::string& key, std::shared_ptr<const core::Trainer> trainer);
  std::optional<int64_t> Step(const std::string& key);
  void PutStep(const std::string& key, int64_t step);

 private:
  struct Entry {
    std::shared_ptr<const core::Trainer> trainer;
    uint64_t last_use = 0;
  };
  absl::Mutex mu_;
  std::map<std::string, Entry> networks_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> steps_ ABSL_GUARDED_BY(mu_);
  uint64_t clock_ ABSL_GUARDED_BY(mu_) = 0;
};

class TrainingServiceImpl final : public v1::TrainingService::CallbackService {
 public:
  // `sessions` must outlive the service. Heartbeats go to idle streams every `heartbeat`.
  TrainingServiceImpl(SessionManager* sessions, std::chrono::milliseconds heartbeat);
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
  grpc::ServerWriteReactor<v1::MetricEvent>* StreamMetrics(
      grpc::CallbackServerContext* ctx, const v1::StreamMetricsRequest* request) override;
  grpc::ServerUnaryReactor* ListMetrics(grpc::CallbackServerContext* ctx,
                                        const v1::ListMetricsRequest* request,
                                        v1::ListMetricsResponse* response) override;
  grpc::ServerWriteReactor<v1::SnapshotChunk>* StreamSnapshots(
      grpc::CallbackServerContext* ctx, const v1::StreamSnapshotsRequest* request) override;
  grpc::ServerWriteReactor<v1::SnapshotChunk>* GetSnapshot(
      grpc::CallbackServerContext* ctx, const v1::GetSnapshotRequest* request) override;
  grpc::ServerUnaryReactor* ListSnapshots(grpc::CallbackServerContext* ctx,
                                          const v1::ListSnapshotsRequest* request,
                                          v1::ListSnapshotsResponse* response) override;
  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* ctx,
                                    const v1::PredictRequest* request,
                                    v1::PredictResponse* response) override;
  grpc::ServerUnaryReactor* Evaluate(grpc::CallbackServerContext* ctx,
                                     const v1::EvaluateRequest* request,
                                     v1::EvaluateResponse* response) override;

 private:
  SessionManager* const sessions_;
  const std::chrono::milliseconds heartbeat_;
  std::atomic<bool> stop_{false};
  std::thread ticker_;     // wakes every session's listeners each heartbeat interval
  NetworkCache networks_;  // Predict and Evaluate; checkpoint steps for "latest" snapshots
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_TRAINING_SERVICE_H_
