// File: server/storage/forwarding_storage.h
#ifndef ALIGND_SERVER_STORAGE_FORWARDING_STORAGE_H_
#define ALIGND_SERVER_STORAGE_FORWARDING_STORAGE_H_

#include <memory>
#include <string>
#include <vector>

#include "server/storage/storage.h"

namespace alignd::server {

// A Storage that forwards every call to another (leveldb's EnvWrapper): a replica's fenced
// view of the shared storage derives from it (pg_storage.cc), and so do tests that watch or
// bend a few calls of a real storage.
class ForwardingStorage : public Storage {
 public:
  // Owns `inner`.
  explicit ForwardingStorage(std::unique_ptr<Storage> inner)
      : owned_(std::move(inner)), inner_(owned_.get()) {}
  // `inner` must outlive this.
  explicit ForwardingStorage(Storage* inner) : inner_(inner) {}

  absl::StatusOr<std::unique_ptr<BlobWriter>> NewDatasetPayload() override {
    return inner_->NewDatasetPayload();
  }
  absl::StatusOr<std::string> ReadDatasetPayload(const v1::Dataset& d) override {
    return inner_->ReadDatasetPayload(d);
  }
  absl::Status PutExperiment(const v1::Experiment& e) override { return inner_->PutExperiment(e); }
  absl::StatusOr<v1::Experiment> GetExperiment(const std::string& n) override {
    return inner_->GetExperiment(n);
  }
  absl::StatusOr<std::vector<v1::Experiment>> ListExperiments() override {
    return inner_->ListExperiments();
  }
  absl::Status DeleteExperiment(const std::string& n) override {
    return inner_->DeleteExperiment(n);
  }
  absl::Status PutDataset(const v1::Dataset& d) override { return inner_->PutDataset(d); }
  absl::StatusOr<v1::Dataset> GetDataset(const std::string& n) override {
    return inner_->GetDataset(n);
  }
  absl::StatusOr<std::vector<v1::Dataset>> ListDatasets(const std::string& a, int l) override {
    return inner_->ListDatasets(a, l);
  }
  absl::Status DeleteDataset(const std::string& n) override { return inner_->DeleteDataset(n); }
  absl::Status PutSession(const v1::Session& s) override { return inner_->PutSession(s); }
  absl::StatusOr<v1::Session> GetSession(const std::string& n) override {
    return inner_->GetSession(n);
  }
  absl::StatusOr<std::vector<v1::Session>> ListSessions() override {
    return inner_->ListSessions();
  }
  absl::Status DeleteSession(const std::string& n) override { return inner_->DeleteSession(n); }
  absl::Status AppendMetrics(const std::string& n, const std::vector<StoredMetric>& e) override {
    return inner_->AppendMetrics(n, e);
  }
  absl::StatusOr<std::vector<v1::MetricEvent>> ReadMetrics(const std::string& n, int64_t s,
                                                           int l) override {
    return inner_->ReadMetrics(n, s, l);
  }
  absl::StatusOr<std::vector<v1::MetricEvent>> ReadMetricsSampled(const std::string& n, int64_t s,
                                                                  int64_t e, int64_t k) override {
    return inner_->ReadMetricsSampled(n, s, e, k);
  }
  absl::StatusOr<NewestMetrics> ReadNewestMetrics(const std::string& n) override {
    return inner_->ReadNewestMetrics(n);
  }
  absl::StatusOr<int64_t> TruncateMetricsAfterStep(const std::string& n, int64_t s) override {
    return inner_->TruncateMetricsAfterStep(n, s);
  }
  absl::StatusOr<int64_t> CountMetrics(const std::string& n) override {
    return inner_->CountMetrics(n);
  }
  absl::Status PutCheckpoint(const std::string& n, const StoredState& s) override {
    return inner_->PutCheckpoint(n, s);
  }
  absl::StatusOr<StoredState> GetCheckpoint(const std::string& n) override {
    return inner_->GetCheckpoint(n);
  }
  absl::StatusOr<int64_t> CheckpointStep(const std::string& n) override {
    return inner_->CheckpointStep(n);
  }
  absl::Status PutSnapshot(const std::string& n, const StoredState& s) override {
    return inner_->PutSnapshot(n, s);
  }
  absl::StatusOr<std::string> GetSnapshot(const std::string& n, int64_t s) override {
    return inner_->GetSnapshot(n, s);
  }
  absl::StatusOr<std::vector<SnapshotInfo>> ListSnapshots(const std::string& n) override {
    return inner_->ListSnapshots(n);
  }
  absl::Status WithDatasetLock(const std::function<absl::Status()>& fn) override {
    return inner_->WithDatasetLock(fn);
  }
  Cluster* cluster() override { return inner_->cluster(); }

 private:
  std::unique_ptr<Storage> owned_;
  Storage* const inner_;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_STORAGE_FORWARDING_STORAGE_H_
