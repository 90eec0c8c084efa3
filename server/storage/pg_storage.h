// File: server/storage/pg_storage.h
// -----------------------------------------------------------------------------
// Storage (storage.h) on PostgreSQL (records, metric logs, snapshot index) and a blob root
// (file_blobs.h: payloads, checkpoints, snapshots) that may be a shared volume (NFS,
// CephFS, EFS), so that several alignd processes can serve one store.
//
// Through libpq: a small pool of connections, each used by one call at a time. A connection
// that breaks (PostgreSQL restarted, the network cut) makes that call UNAVAILABLE and is
// opened again by the next one; nothing is half written (every write is one statement or
// one transaction). The schema is created on first use, under an advisory lock so that
// replicas starting together do not race.
#ifndef ALIGND_SERVER_STORAGE_PG_STORAGE_H_
#define ALIGND_SERVER_STORAGE_PG_STORAGE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/storage/storage.h"

namespace alignd::server {

struct PostgresOptions {
  // A libpq connection string or URI: "postgresql://user@host:5432/alignd",
  // "host=/run/postgresql dbname=alignd".
  std::string conninfo;
  // Where the bytes go (file_blobs.h's layout).
  std::string blobs_dir;
  // Connections kept open at most; calls beyond them wait for one.
  int connections = 8;
  // A connection left idle inside a transaction this long is ended by PostgreSQL (its locks
  // released): keep it well under the lease (--lease_ms / 2 in alignd).
  int64_t idle_in_transaction_ms = 5000;
  // This process's name among the replicas (cluster.h); empty: host/pid/random.
  std::string replica;
};

// Any number of alignd processes may share one database and blob root: the storage is also
// their Cluster (storage->cluster(): the queue, leases with fencing epochs, announcements).
//
// Connects, creates the schema if missing, and prepares the blob root. FailedPrecondition
// naming what failed: PostgreSQL unreachable, refused, or the blob root unusable.
absl::StatusOr<std::unique_ptr<Storage>> OpenPostgresStorage(const PostgresOptions& options);

// True for "postgresql://..." and "postgres://..." (what --storage takes).
bool IsPostgresUri(const std::string& s);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_STORAGE_PG_STORAGE_H_
