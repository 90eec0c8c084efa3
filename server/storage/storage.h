// File: server/storage/storage.h
// -----------------------------------------------------------------------------
// Storage: the one owner of what alignd keeps. Nothing else in the server knows a
// path or a table: records (data sets, sessions), each session's metric log, and the
// blobs (data set payloads, checkpoints, snapshots) go in and out through here.
//
// The contract every implementation keeps (the SQLite one in sqlite_storage.h, PostgreSQL
// with blobs on a shared volume in pg_storage.h):
//   - A Put is atomic and durable when it returns: after a kill -9 a reader finds the
//     old value or the new one, never a mix.
//   - A record that refers to a blob is written after the blob (PutDataset after its
//     payload's Commit).
//   - A checkpoint's step and bytes are one atomic write: GetCheckpoint never returns the
//     bytes of one checkpoint with the step of another, whenever the process died (a
//     restart cuts the metric log back to that step and resumes from those bytes).
//   - Names are resource names ("datasets/{id}", "sessions/{id}"), checked by the
//     caller (resource_names.h); the storage does not parse them beyond that.
//   - Thread-safe.
#ifndef ALIGND_SERVER_STORAGE_STORAGE_H_
#define ALIGND_SERVER_STORAGE_STORAGE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "alignd/v1/datasets.pb.h"
#include "alignd/v1/experiments.pb.h"
#include "alignd/v1/sessions.pb.h"

namespace alignd::server {

class Cluster;

// A data set's payload being written. Nothing is visible until Commit; destroyed
// uncommitted (an error, a dropped upload) it leaves nothing behind. The name is given
// at the end: an upload's name is a digest of its bytes, known once they have all come.
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  virtual absl::Status Append(std::string_view bytes) = 0;
  // Durably stores what was appended as the payload of data set `name`
  // ("datasets/{id}"), replacing what was there. Once.
  virtual absl::Status Commit(const std::string& name) = 0;
};

// A metric event with the training step it belongs to (restarts cut the log by step).
struct StoredMetric {
  int64_t step = 0;
  v1::MetricEvent event;
};

// A stored snapshot: its step and when it was stored (microseconds since the Unix epoch;
// 0 if unknown).
struct SnapshotInfo {
  int64_t step = 0;
  int64_t create_time_us = 0;
};

// A stored trainer state (core::SerializeState bytes) and the step it was taken at.
struct StoredState {
  int64_t step = 0;
  std::string bytes;
};

class Storage {
 public:
  virtual ~Storage() = default;

  // ---- Data sets: a record and its payload blob.
  // A writer for a data set's payload; commit it (naming the data set) before PutDataset.
  virtual absl::StatusOr<std::unique_ptr<BlobWriter>> NewDatasetPayload() = 0;
  // The payload of a stored data set; NotFound if it is missing.
  virtual absl::StatusOr<std::string> ReadDatasetPayload(const v1::Dataset& dataset) = 0;
  virtual absl::Status PutDataset(const v1::Dataset& dataset) = 0;
  // NotFound if absent.
  virtual absl::StatusOr<v1::Dataset> GetDataset(const std::string& name) = 0;
  // Sorted by name; names > after, at most limit.
  virtual absl::StatusOr<std::vector<v1::Dataset>> ListDatasets(const std::string& after,
                                                                int limit) = 0;
  // Removes the record and its payload. NotFound if absent.
  virtual absl::Status DeleteDataset(const std::string& name) = 0;

  // ---- Sessions.
  virtual absl::Status PutSession(const v1::Session& session) = 0;  // insert or replace
  virtual absl::StatusOr<v1::Session> GetSession(const std::string& name) = 0;
  virtual absl::StatusOr<std::vector<v1::Session>> ListSessions() = 0;  // sorted by name
  // Removes the record and everything of the session: metric log, checkpoint, snapshots.
  virtual absl::Status DeleteSession(const std::string& name) = 0;

  // ---- Experiments: a record each; their sessions are
  // sessions.
  virtual absl::Status PutExperiment(const v1::Experiment& experiment) = 0;  // insert or replace
  // NotFound if absent.
  virtual absl::StatusOr<v1::Experiment> GetExperiment(const std::string& name) = 0;
  virtual absl::StatusOr<std::vector<v1::Experiment>> ListExperiments() = 0;  // sorted by name
  // NotFound if absent.
  virtual absl::Status DeleteExperiment(const std::string& name) = 0;

  // ---- Metric logs: events keyed by (session, seq), appended in seq order.
  // Appends a batch in one transaction (all or nothing).
  virtual absl::Status AppendMetrics(const std::string& session,
                                     const std::vector<StoredMetric>& events) = 0;
  // Events with seq >= start_seq, at most limit, in seq order.
  virtual absl::StatusOr<std::vector<v1::MetricEvent>> ReadMetrics(const std::string& session,
                                                                   int64_t start_seq,
                                                                   int limit) = 0;
  // Downsampled: the stored events with seq start_seq, start_seq + every, start_seq +
  // 2 every, ... up to end_seq, and every stored evaluation from start_seq to end_seq, in seq
  // order (every >= 1; the caller picks it from the log's length, which may run past what is
  // stored: ListMetrics). Reads only those rows, however long the log.
  virtual absl::StatusOr<std::vector<v1::MetricEvent>> ReadMetricsSampled(
      const std::string& session, int64_t start_seq, int64_t end_seq, int64_t every) = 0;
  // The newest stored step event and the newest stored evaluation (either absent if there
  // is none): what a session record's latest figures are after a restart cut its log.
  struct NewestMetrics {
    std::optional<v1::MetricEvent> step, eval;
  };
  virtual absl::StatusOr<NewestMetrics> ReadNewestMetrics(const std::string& session) = 0;
  // Deletes the events of steps after `step` (a restart from a checkpoint at `step`), and
  // returns the last seq kept (0 if none).
  virtual absl::StatusOr<int64_t> TruncateMetricsAfterStep(const std::string& session,
                                                           int64_t step) = 0;
  virtual absl::StatusOr<int64_t> CountMetrics(const std::string& session) = 0;

  // ---- Checkpoints: one per session, the latest replacing the one before.
  virtual absl::Status PutCheckpoint(const std::string& session, const StoredState& state) = 0;
  // NotFound if the session has none.
  virtual absl::StatusOr<StoredState> GetCheckpoint(const std::string& session) = 0;
  // The checkpoint's step without its bytes; NotFound if none.
  virtual absl::StatusOr<int64_t> CheckpointStep(const std::string& session) = 0;

  // ---- Snapshots: immutable, one per (session, step).
  virtual absl::Status PutSnapshot(const std::string& session, const StoredState& state) = 0;
  // NotFound if there is none at `step`.
  virtual absl::StatusOr<std::string> GetSnapshot(const std::string& session, int64_t step) = 0;
  // The stored snapshots, by step ascending.
  virtual absl::StatusOr<std::vector<SnapshotInfo>> ListSnapshots(const std::string& session) = 0;

  // Runs `fn` while no other process that shares this storage runs one: the read-modify-
  // writes of data set records (owners, the stored-bytes quota's sum, a payload put in place
  // and its record, a delete and its payload's removal) across replicas. One alignd alone:
  // just fn() (DatasetStore's own lock orders its threads). Returns fn's status, or why the
  // lock could not be taken.
  virtual absl::Status WithDatasetLock(const std::function<absl::Status()>& fn) { return fn(); }

  // ---- Replicas: a storage that several alignd processes share also coordinates them
  // (cluster.h); nullptr for one that a single process owns (SQLite).
  virtual Cluster* cluster() { return nullptr; }
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_STORAGE_STORAGE_H_
