// File: server/storage/sqlite_storage.h
// -----------------------------------------------------------------------------
// Storage (storage.h) on one data directory: records and metric logs in SQLite (WAL),
// blobs in files beside it.
//
//   {data_dir}/alignd.db                              records, metric logs, indexes
//   {data_dir}/datasets/{id}.bin                      data set payloads
//   {data_dir}/sessions/{id}/checkpoint-{step}.bin    the latest checkpoint
//   {data_dir}/sessions/{id}/snapshots/{step}.bin     weight snapshots
//
// The files are file_blobs.h's (written atomically: temp file, fsync, rename, fsync of the
// folder). One SQLite connection behind a mutex serves every call; WAL checkpoints (which fsync the
// database) run on a thread of their own, so an append never waits for one.
#ifndef ALIGND_SERVER_STORAGE_SQLITE_STORAGE_H_
#define ALIGND_SERVER_STORAGE_SQLITE_STORAGE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/storage/file_blobs.h"  // AtomicWriteFile, ReadFile (for tests and tools)
#include "server/storage/storage.h"

namespace alignd::server {

// Opens (creating if needed) the data directory and its database. FailedPrecondition if
// the directory cannot be created or the database opened.
absl::StatusOr<std::unique_ptr<Storage>> OpenSqliteStorage(const std::string& data_dir);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_STORAGE_SQLITE_STORAGE_H_
