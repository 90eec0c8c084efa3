// File: server/storage.h
// -----------------------------------------------------------------------------
// Everything alignd keeps on disk, under one data directory:
//
//   {data_dir}/alignd.db                 SQLite (WAL): data set and session records,
//                                        metric logs, the snapshot index
//   {data_dir}/datasets/{sha256}.bin     data set payloads, content-addressed
//   {data_dir}/sessions/{id}/checkpoint.bin          the latest checkpoint
//   {data_dir}/sessions/{id}/snapshots/{step}.bin    weight snapshots
//
// Files are written atomically (temp file, fsync, rename, fsync of the folder), so a
// kill -9 leaves either the old file or the new one. A record that names a file is
// written after the file. Behind this interface a cluster deployment can put the
// records in PostgreSQL and the blobs on a shared volume.
//
// Thread-safe: one SQLite connection behind a mutex; file writes need no lock
// (distinct paths, atomic renames).
#ifndef ALIGND_SERVER_STORAGE_H_
#define ALIGND_SERVER_STORAGE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "alignd/v1/datasets.pb.h"
#include "alignd/v1/sessions.pb.h"

struct sqlite3;

namespace alignd::server {

// Writes `bytes` to `path` atomically and durably. Creates missing parent folders.
absl::Status AtomicWriteFile(const std::string& path, const std::string& bytes);
absl::StatusOr<std::string> ReadFile(const std::string& path);

class Storage {
 public:
  // Opens (creating if needed) the data directory and its database. Returns
  // FailedPrecondition if the directory cannot be created or the database opened.
  static absl::StatusOr<std::unique_ptr<Storage>> Open(const std::string& data_dir);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  const std::string& data_dir() const { return data_dir_; }

  // Records are keyed by resource name ("datasets/{id}", "sessions/{id}"); file paths by id.

  // ---- Data sets.
  // The payload file of data set `id` (the part of its name after "datasets/").
  std::string DatasetPayloadPath(const std::string& id) const;
  absl::Status PutDataset(const v1::Dataset& dataset);
  // NotFound if absent.
  absl::StatusOr<v1::Dataset> GetDataset(const std::string& id);
  // Sorted by id; ids > after, at most limit.
  absl::StatusOr<std::vector<v1::Dataset>> ListDatasets(const std::string& after, int limit);
  // Removes the record and its payload file.
  absl::Status DeleteDataset(const std::string& id);

  // ---- Sessions.
  std::string SessionDir(const std::string& id) const;
  absl::Status PutSession(const v1::Session& session);  // insert or replace
  absl::StatusOr<v1::Session> GetSession(const std::string& id);
  absl::StatusOr<std::vector<v1::Session>> ListSessions();
  // Removes the record, its metric log, its snapshot index and its folder.
  absl::Status DeleteSession(const std::string& id);

  // ---- Metric logs: events keyed by (session, seq).
  absl::Status AppendMetric(const std::string& id, const v1::MetricEvent& event, int64_t step);
  // Events with seq >= start_seq, at most limit, in seq order.
  absl::StatusOr<std::vector<v1::MetricEvent>> ReadMetrics(const std::string& id, int64_t start_seq,
                                                           int limit);
  // Deletes the events of steps after `step` (a restart from a checkpoint at `step`), and
  // returns the last seq kept (0 if none).
  absl::StatusOr<int64_t> TruncateMetricsAfterStep(const std::string& id, int64_t step);
  absl::StatusOr<int64_t> CountMetrics(const std::string& id);

  // ---- Checkpoints and snapshots (serialized core::TrainerState).
  std::string CheckpointPath(const std::string& id) const;
  std::string SnapshotPath(const std::string& id, int64_t step) const;
  absl::Status AddSnapshot(const std::string& id, int64_t step, const std::string& bytes);
  // Steps of the stored snapshots, ascending.
  absl::StatusOr<std::vector<int64_t>> ListSnapshots(const std::string& id);

 private:
  explicit Storage(std::string data_dir) : data_dir_(std::move(data_dir)) {}
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckpointLoop();

  const std::string data_dir_;
  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_) = nullptr;
  // WAL checkpoints (which fsync the database) run here, on their own connection, instead of
  // inside whichever INSERT crosses SQLite's threshold: a metric append never waits for one.
  sqlite3* checkpoint_db_ = nullptr;
  absl::Mutex stop_mu_;
  bool stop_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread checkpointer_;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_STORAGE_H_
