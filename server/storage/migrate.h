// File: server/storage/migrate.h
// -----------------------------------------------------------------------------
// Migrate: copies everything one store holds into another — data sets (records and
// payloads), sessions (records, metric logs, checkpoints, snapshots) — through the Storage
// interface, so that a user who outgrows one machine (the embedded SQLite data directory)
// keeps their history on replicas (PostgreSQL + a shared blob folder): `alignd migrate`.
//
// Every item is checked by digest: the SHA-256 of what was read from the source against the
// SHA-256 of what the destination returns when read back. A session's record is written
// last, as its commit: a migration cut short leaves no record, and the next run clears what
// it left and copies the session again. A session whose record is already in the
// destination with the same digest is skipped (a second run copies nothing); one that is
// there but differs (trained further on the replicas since, say) is left alone and named.
//
// A session QUEUED or RUNNING in the source arrives QUEUED: a replica claims it and resumes
// from its checkpoint, bit for bit, as a restart of one alignd would.
//
// The source must not change meanwhile: stop the alignd that owns it first.
#ifndef ALIGND_SERVER_STORAGE_MIGRATE_H_
#define ALIGND_SERVER_STORAGE_MIGRATE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/storage/storage.h"

namespace alignd::server {

struct MigrateReport {
  int datasets_copied = 0, datasets_skipped = 0;
  int sessions_copied = 0, sessions_skipped = 0;
  int64_t events = 0, checkpoints = 0, snapshots = 0, bytes = 0;
  // Sessions already in the destination that differ from the source (not overwritten).
  std::vector<std::string> conflicts;
};

// Copies `from` into `to`. `progress` (may be empty) gets one line per item. DataLoss if a
// digest read back differs from the one read from the source; the first error stops it.
absl::StatusOr<MigrateReport> Migrate(Storage* from, Storage* to,
                                      const std::function<void(const std::string&)>& progress);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_STORAGE_MIGRATE_H_
