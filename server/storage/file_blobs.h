// File: server/storage/file_blobs.h
// -----------------------------------------------------------------------------
// The bytes alignd keeps, as files under one root: data set payloads, each session's
// latest checkpoint and its snapshots. Both Storage implementations keep their bytes here
// (sqlite_storage.h under --data_dir, pg_storage.h under --blobs, a local or a shared
// volume); the records that name them are the database's.
//
//   {root}/datasets/{id}.bin                          data set payloads
//   {root}/sessions/{id}/checkpoint-{step}.bin        the latest checkpoint
//   {root}/sessions/{id}/snapshots/{step}.bin         weight snapshots
//
// Every file is written whole under a temporary name, fsynced and renamed into place (then
// the folder fsynced): a reader, on this machine or another that mounts the volume, sees
// the old file or the new one, never a part. A checkpoint's step is in its file name, so the
// step and the bytes are one atomic write (no index beside it can disagree after a kill).
// Thread-safe: nothing is kept in memory.
#ifndef ALIGND_SERVER_STORAGE_FILE_BLOBS_H_
#define ALIGND_SERVER_STORAGE_FILE_BLOBS_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "alignd/v1/datasets.pb.h"
#include "server/storage/storage.h"

namespace alignd::server {

// Writes `bytes` to `path` atomically and durably; creates missing parent folders.
absl::Status AtomicWriteFile(const std::string& path, std::string_view bytes);
// NotFound if the file cannot be opened.
absl::StatusOr<std::string> ReadFile(const std::string& path);

class FileBlobs {
 public:
  explicit FileBlobs(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }

  // Creates {root}/datasets. FailedPrecondition, naming `flag`, if it cannot.
  absl::Status Prepare(const std::string& flag) const;
  // Removes the temporary files of uploads a crash interrupted. Only for a root this process
  // owns alone (a shared volume's uploads in progress belong to other replicas).
  void ClearInterruptedUploads() const;

  // ---- Data set payloads (names "datasets/{id}").
  absl::StatusOr<std::unique_ptr<BlobWriter>> NewDatasetPayload() const;
  absl::StatusOr<std::string> ReadDatasetPayload(const v1::Dataset& dataset) const;
  void RemoveDatasetPayload(const std::string& name, const std::string& sha256) const;

  // ---- Sessions (names "sessions/{id}").
  absl::Status PutCheckpoint(const std::string& session, const StoredState& state) const;
  absl::StatusOr<StoredState> GetCheckpoint(const std::string& session) const;
  absl::StatusOr<int64_t> CheckpointStep(const std::string& session) const;
  // Where a database indexes the checkpoint (pg_storage.h: the index row is written under
  // the writer's lease, after the file): the file alone, its bytes at a step, and the
  // removal of the checkpoint files older than `step` (only older ones: a holder that is
  // late to tidy up after its lease was taken over must not remove the newer checkpoint
  // of the replica that holds the session now).
  absl::Status WriteCheckpointFile(const std::string& session, const StoredState& state) const;
  absl::StatusOr<std::string> ReadCheckpointFile(const std::string& session, int64_t step) const;
  void RemoveCheckpointsBefore(const std::string& session, int64_t step) const;
  absl::Status PutSnapshot(const std::string& session, const StoredState& state) const;
  absl::StatusOr<std::string> GetSnapshot(const std::string& session, int64_t step) const;
  // Everything of the session: checkpoint and snapshots.
  absl::Status RemoveSession(const std::string& session) const;

 private:
  absl::StatusOr<std::string> SessionDir(const std::string& session) const;
  std::string DatasetsDir() const;
  const std::string root_;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_STORAGE_FILE_BLOBS_H_
