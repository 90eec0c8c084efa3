// File: server/storage/sqlite_storage.cc
#include "server/storage/sqlite_storage.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "server/api/resource_names.h"
#include "server/storage/file_blobs.h"

namespace alignd::server {
namespace fs = std::filesystem;

namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Stmt() { sqlite3_finalize(stmt_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  Stmt& Bind(int i, const std::string& s) {
    sqlite3_bind_blob(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindText(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  int Step() { return sqlite3_step(stmt_); }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::string Blob(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    return std::string(static_cast<const char*>(p), sqlite3_column_bytes(stmt_, col));
  }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

absl::Status SqlError(sqlite3* db, const char* what) {
  return absl::InternalError(absl::StrCat("sqlite ", what, ": ", sqlite3_errmsg(db)));
}

class SqliteStorage final : public Storage {
 public:
  static absl::StatusOr<std::unique_ptr<Storage>> Open(const std::string& data_dir);
  ~SqliteStorage() override;

  absl::StatusOr<std::unique_ptr<BlobWriter>> NewDatasetPayload() override;
  absl::StatusOr<std::string> ReadDatasetPayload(const v1::Dataset& dataset) override;
  absl::Status PutDataset(const v1::Dataset& dataset) override;
  absl::Status PutExperiment(const v1::Experiment& experiment) override;
  absl::StatusOr<v1::Experiment> GetExperiment(const std::string& name) override;
  absl::StatusOr<std::vector<v1::Experiment>> ListExperiments() override;
  absl::Status DeleteExperiment(const std::string& name) override;
  absl::StatusOr<v1::Dataset> GetDataset(const std::string& name) override;
  absl::StatusOr<std::vector<v1::Dataset>> ListDatasets(const std::string& after,
                                                        int limit) override;
  absl::Status DeleteDataset(const std::string& name) override;

  absl::Status PutSession(const v1::Session& session) override;
  absl::StatusOr<v1::Session> GetSession(const std::string& name) override;
  absl::StatusOr<std::vector<v1::Session>> ListSessions() override;
  absl::Status DeleteSession(const std::string& name) override;

  absl::Status AppendMetrics(const std::string& session,
                             const std::vector<StoredMetric>& events) override;
  absl::StatusOr<std::vector<v1::MetricEvent>> ReadMetrics(const std::string& session,
                                                           int64_t start_seq, int limit) override;
  absl::StatusOr<std::vector<v1::MetricEvent>> ReadMetricsSampled(const std::string& session,
                                                                  int64_t start_seq,
                                                                  int64_t end_seq,
                                                                  int64_t every) override;
  absl::StatusOr<NewestMetrics> ReadNewestMetrics(const std::string& session) override;
  absl::StatusOr<int64_t> TruncateMetricsAfterStep(const std::string& session,
                                                   int64_t step) override;
  absl::StatusOr<int64_t> CountMetrics(const std::string& session) override;

  absl::Status PutCheckpoint(const std::string& session, const StoredState& state) override;
  absl::StatusOr<StoredState> GetCheckpoint(const std::string& session) override;
  absl::StatusOr<int64_t> CheckpointStep(const std::string& session) override;

  absl::Status PutSnapshot(const std::string& session, const StoredState& state) override;
  absl::StatusOr<std::string> GetSnapshot(const std::string& session, int64_t step) override;
  absl::StatusOr<std::vector<SnapshotInfo>> ListSnapshots(const std::string& session) override;

 private:
  explicit SqliteStorage(std::string data_dir) : data_dir_(data_dir), blobs_(data_dir) {}
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckpointLoop();

  const std::string data_dir_;
  const FileBlobs blobs_;  // the bytes, in data_dir_ beside the database
  int lock_fd_ = -1;       // data_dir/LOCK, flock'ed while open
  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_) = nullptr;
  // WAL checkpoints (which fsync the database) run here, on their own connection, instead of
  // inside whichever INSERT crosses SQLite's threshold: a metric append never waits for one.
  sqlite3* checkpoint_db_ = nullptr;
  absl::Mutex stop_mu_;
  bool stop_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread checkpointer_;
};

absl::StatusOr<std::unique_ptr<Storage>> SqliteStorage::Open(const std::string& data_dir) {
  std::unique_ptr<SqliteStorage> s(new SqliteStorage(data_dir));
  RETURN_IF_ERROR(s->blobs_.Prepare("--data_dir"));
  // One process per data directory: a second alignd on it would interleave its writes and
  // its uploads' temporary files with ours. The lock goes with the process, however it ends.
  const std::string lock_path = (fs::path(data_dir) / "LOCK").string();
  s->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (s->lock_fd_ < 0) return Errno("open " + lock_path);
  if (::flock(s->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return Errno("lock " + lock_path);
    char pid[32] = {};
    (void)!::pread(s->lock_fd_, pid, sizeof(pid) - 1, 0);
    return absl::FailedPreconditionError(
        absl::StrCat("the data directory ", data_dir, " is in use by another alignd (pid ",
                     absl::StripAsciiWhitespace(pid), "; lock file ", lock_path, ")"));
  }
  const std::string pid = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(s->lock_fd_, 0) != 0 || ::pwrite(s->lock_fd_, pid.data(), pid.size(), 0) < 0)
    return Errno("write " + lock_path);
  // Uploads that a crash interrupted left their temporary files; nobody else can be
  // writing them now.
  s->blobs_.ClearInterruptedUploads();
  absl::MutexLock lock(&s->mu_);
  const std::string db_path = (fs::path(data_dir) / "alignd.db").string();
  if (sqlite3_open_v2(db_path.c_str(), &s->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK)
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot open ", db_path, ": ", s->db_ ? sqlite3_errmsg(s->db_) : "out of memory"));
  sqlite3_busy_timeout(s->db_, 5000);
  for (const char* sql : {
           "PRAGMA journal_mode=WAL",
           "PRAGMA wal_autocheckpoint=0",  // see checkpointer_
           // WAL + NORMAL: a committed transaction survives a process crash (kill -9); only
           // a power cut can lose the last ones.
           "PRAGMA synchronous=NORMAL",
           "CREATE TABLE IF NOT EXISTS datasets (id TEXT PRIMARY KEY, record BLOB NOT NULL)",
           "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, record BLOB NOT NULL)",
           "CREATE TABLE IF NOT EXISTS experiments (id TEXT PRIMARY KEY, record BLOB NOT NULL)",
           "CREATE TABLE IF NOT EXISTS metrics (session TEXT NOT NULL, seq INTEGER NOT NULL, "
           "step INTEGER NOT NULL, event BLOB NOT NULL, PRIMARY KEY (session, seq))",
           "CREATE TABLE IF NOT EXISTS snapshots (session TEXT NOT NULL, step INTEGER NOT NULL, "
           "PRIMARY KEY (session, step))",
       }) {
    if (absl::Status st = s->Exec(sql); !st.ok())
      return absl::FailedPreconditionError(absl::StrCat(db_path, ": ", st.message()));
  }
  // Columns added after the first data directories were written: added where missing.
  // metrics.kind is 0 for a step event, 1 for an evaluation, NULL in rows written before it
  // existed; its partial index finds a log's evaluations (and rows of unknown kind) without
  // reading its steps (ReadMetricsSampled).
  for (const auto& [table, column, type] :
       {std::tuple{"snapshots", "create_time", "INTEGER NOT NULL DEFAULT 0"},
        std::tuple{"metrics", "kind", "INTEGER"}}) {
    const std::string has = absl::StrCat("SELECT COUNT(*) FROM pragma_table_info('", table,
                                         "') WHERE name = '", column, "'");
    const std::string add = absl::StrCat("ALTER TABLE ", table, " ADD COLUMN ", column, " ", type);
    Stmt cols(s->db_, has.c_str());
    if (cols.Step() == SQLITE_ROW && cols.Int(0) == 0)
      if (absl::Status st = s->Exec(add.c_str()); !st.ok())
        return absl::FailedPreconditionError(absl::StrCat(db_path, ": ", st.message()));
  }
  if (absl::Status st = s->Exec("CREATE INDEX IF NOT EXISTS metrics_not_steps ON metrics "
                                "(session, seq) WHERE kind IS NOT 0");
      !st.ok())
    return absl::FailedPreconditionError(absl::StrCat(db_path, ": ", st.message()));
  if (sqlite3_open_v2(db_path.c_str(), &s->checkpoint_db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK)
    return absl::FailedPreconditionError(absl::StrCat("cannot open ", db_path, " for checkpoints"));
  sqlite3_busy_timeout(s->checkpoint_db_, 5000);
  SqliteStorage* raw = s.get();
  s->checkpointer_ = std::thread([raw] { raw->CheckpointLoop(); });
  return std::unique_ptr<Storage>(std::move(s));
}

void SqliteStorage::CheckpointLoop() {
  absl::MutexLock lock(&stop_mu_);
  while (!stop_mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Seconds(1))) {
    stop_mu_.Unlock();
    // PASSIVE: copies what it can without blocking writers or readers.
    sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    stop_mu_.Lock();
  }
}

SqliteStorage::~SqliteStorage() {
  {
    absl::MutexLock lock(&stop_mu_);
    stop_ = true;
  }
  if (checkpointer_.joinable()) checkpointer_.join();
  if (checkpoint_db_ != nullptr) {
    sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr,
                              nullptr);
    sqlite3_close(checkpoint_db_);
  }
  {
    absl::MutexLock lock(&mu_);
    if (db_ != nullptr) sqlite3_close(db_);
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);  // last: the lock covers the files until here
}

absl::Status SqliteStorage::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("sqlite: ", msg, " in ", sql));
  }
  return absl::OkStatus();
}

// ---- Data sets ------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<BlobWriter>> SqliteStorage::NewDatasetPayload() {
  return blobs_.NewDatasetPayload();
}

absl::StatusOr<std::string> SqliteStorage::ReadDatasetPayload(const v1::Dataset& d) {
  return blobs_.ReadDatasetPayload(d);
}

absl::Status SqliteStorage::PutDataset(const v1::Dataset& d) {
  absl::MutexLock lock(&mu_);
  Stmt st(db_, "INSERT OR REPLACE INTO datasets (id, record) VALUES (?, ?)");
  st.BindText(1, d.name()).Bind(2, d.SerializeAsString());
  if (st.Step() != SQLITE_DONE) return SqlError(db_, "put dataset");
  return absl::OkStatus();
}

absl::Status SqliteStorage::PutExperiment(const v1::Experiment& e) {
  absl::MutexLock lock(&mu_);
  Stmt st(db_, "INSERT OR REPLACE INTO experiments (id, record) VALUES (?, ?)");
  st.BindText(1, e.name()).Bind(2, e.SerializeAsString());
  if (st.Step() != SQLITE_DONE) return SqlError(db_, "put experiment");
  return absl::OkStatus();
}

absl::StatusOr<v1::Experiment> SqliteStorage::GetExperiment(const std::string& name) {
  absl::MutexLock lock(&mu_);
  Stmt st(db_, "SELECT record FROM experiments WHERE id = ?");
  st.BindText(1, name);
  if (st.Step() != SQLITE_ROW) return absl::NotFoundError(absl::StrCat(name, " not found"));
  v1::Experiment e;
  if (!e.ParseFromString(st.Blob(0)))
    return absl::DataLossError(absl::StrCat(name, ": corrupt record"));
  return e;
}

absl::StatusOr<std::vector<v1::Experiment>> SqliteStorage::ListExperiments() {
  absl::MutexLock lock(&mu_);
  Stmt st(db_, "SELECT record FROM experiments ORDER BY id");
  std::vector<v1::Experiment> out;
  while (st.Step() == SQLITE_ROW) {
    out.emplace_back();
    if (!out.back().ParseFromString(st.Blob(0)))
      return absl::DataLossError("corrupt experiment record");
  }
  return out;
}

absl::Status SqliteStorage::DeleteExperiment(const std::string& name) {
  absl::MutexLock lock(&mu_);
  Stmt del(db_, "DELETE FROM experiments WHERE id = ?");
  del.BindText(1, name);
  if (del.Step() != SQLITE_DONE) return SqlError(db_, "delete experiment");
  if (sqlite3_changes(db_) == 0) return absl::NotFoundError(absl::StrCat(name, " not found"));
  return absl::OkStatus();
}

absl::StatusOr<v1::Dataset> SqliteStorage::GetDataset(const std::string& name) {
  absl::MutexLock lock(&mu_);
  Stmt st(db_, "SELECT record FROM datasets WHERE id = ?");
  st.BindText(1, name);
  if (st.Step() != SQLITE_ROW) return absl::NotFoundError(absl::StrCat(name, " not found"));
  v1::Dataset d;
  if (!d.ParseFromString(st.Blob(0)))
    return absl::DataLossError(absl::StrCat(name, ": corrupt record"));
  return d;
}

absl::StatusOr<std::vector<v1::Dataset>> SqliteStorage::ListDatasets(const std::string& after,
                                                                     int limit) {
  absl::MutexLock lock(&mu_);
  Stmt st(db_, "SELECT record FROM datasets WHERE id > ? ORDER BY id LIMIT ?");
  st.BindText(1, after).Bind(2, int64_t{limit});
  std::vector<v1::Dataset> out;
  while (st.Step() == SQLITE_ROW) {
    out.emplace_back();
    if (!out.back().ParseFromString(st.Blob(0)))
      return absl::DataLossError("corrupt dataset record");
  }
  return out;
}

absl::Status SqliteStorage::DeleteDataset(const std::string& name) {
  auto id = ParseDatasetName(name);
  if (!id.ok()) return id.status();
  std::string sha;
  {
    absl::MutexLock lock(&mu_);
    Stmt get(db_, "SELECT record FROM datasets WHERE id = ?");
    get.BindText(1, name);
    if (get.Step() != SQLITE_ROW) return absl::NotFoundError(absl::StrCat(name, " not found"));
    v1::Dataset d;
    if (d.ParseFromString(get.Blob(0))) sha = d.sha256();
    Stmt del(db_, "DELETE FROM datasets WHERE id = ?");
    del.BindText(1, name);
    if (del.Step() != SQLITE_DONE) return SqlError(db_, "delete dataset");
  }
  blobs_.RemoveDatasetPayload(name, sha);
  return absl::OkStatus();
}

// ---- Sessions ---------------------------------------------------------------------------

absl::Status SqliteStorage::PutSession(const v1::Session& s) {
  absl::MutexLock lock(&mu_);
  Stmt st(db_, "INSERT OR REPLACE INTO sessions (id, record) VALUES (?, ?)");
  st.BindText(1, s.name()).Bind(2, s.SerializeAsString());
  if (st.Step() != SQLITE_DONE) return SqlError(db_, "put session");
  return absl::OkStatus();
}

absl::StatusOr<v1::Session> SqliteStorage::GetSession(const std::string& name) {
  absl::MutexLock lock(&mu_);
  Stmt st(db_, "SELECT record FROM sessions WHERE id = ?");
  st.BindText(1, name);
  if (st.Step() != SQLITE_ROW) return absl::NotFoundError(absl::StrCat(name, " not found"));
  v1::Session s;
  if (!s.ParseFromString(st.Blob(0)))
    return absl::DataLossError(absl::StrCat(name, ": corrupt record"));
  return s;
}

absl::StatusOr<std::vector<v1::Session>> SqliteStorage::ListSessions() {
  absl::MutexLock lock(&mu_);
  Stmt st(db_, "SELECT record FROM sessions ORDER BY id");
  std::vector<v1::Session> out;
  while (st.Step() == SQLITE_ROW) {
    out.emplace_back();
    if (!out.back().ParseFromString(st.Blob(0)))
      return absl::DataLossError("corrupt session record");
  }
  return out;
}

absl::Status SqliteStorage::DeleteSession(const std::string& name) {
  RETURN_IF_ERROR(ParseSessionName(name).status());
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = Exec("BEGIN"); !s.ok()) return s;
    for (const char* sql :
         {"DELETE FROM sessions WHERE id = ?", "DELETE FROM metrics WHERE session = ?",
          "DELETE FROM snapshots WHERE session = ?"}) {
      Stmt st(db_, sql);
      st.BindText(1, name);
      if (st.Step() != SQLITE_DONE) {
        Exec("ROLLBACK").IgnoreError();
        return SqlError(db_, "delete session");
      }
    }
    if (absl::Status s = Exec("COMMIT"); !s.ok()) return s;
  }
  return blobs_.RemoveSession(name);
}

// ---- Metrics ----------------------------------------------------------------------------

absl::Status SqliteStorage::AppendMetrics(const std::string& name,
                                          const std::vector<StoredMetric>& events) {
  if (events.empty()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Exec("BEGIN"); !s.ok()) return s;
  Stmt st(db_, "INSERT INTO metrics (session, seq, step, event, kind) VALUES (?, ?, ?, ?, ?)");
  for (const StoredMetric& m : events) {
    st.Reset();
    st.BindText(1, name)
        .Bind(2, m.event.seq())
        .Bind(3, m.step)
        .Bind(4, m.event.SerializeAsString())
        .Bind(5, int64_t{m.event.has_step() ? 0 : 1});
    if (st.Step() != SQLITE_DONE) {
      const absl::Status err = SqlError(db_, "append metric");
      Exec("ROLLBACK").IgnoreError();
      return err;
    }
  }
  return Exec("COMMIT");
}

absl::StatusOr<std::vector<v1::MetricEvent>> SqliteStorage::ReadMetrics(const std::string& name,
                                                                        int64_t start_seq,
                                                                        int limit) {
  absl::MutexLock lock(&mu_);
  Stmt st(db_, "SELECT event FROM metrics WHERE session = ? AND seq >= ? ORDER BY seq LIMIT ?");
  st.BindText(1, name).Bind(2, start_seq).Bind(3, int64_t{limit});
  std::vector<v1::MetricEvent> out;
  while (st.Step() == SQLITE_ROW) {
    out.emplace_back();
    if (!out.back().ParseFromString(st.Blob(0))) return absl::DataLossError("corrupt metric event");
  }
  return out;
}

absl::StatusOr<std::vector<v1::MetricEvent>> SqliteStorage::ReadMetricsSampled(
    const std::string& name, int64_t start_seq, int64_t end_seq, int64_t every) {
  absl::MutexLock lock(&mu_);
  std::vector<v1::MetricEvent> out;
  if (end_seq < start_seq) return out;
  every = std::max<int64_t>(1, every);
  // The strided seqs by primary-key lookups, the evaluations (and rows of unknown kind) by
  // the partial index: a million-event log costs max_points + evaluations row reads.
  Stmt st(db_,
          "WITH RECURSIVE pick(seq) AS (SELECT ?2 UNION ALL SELECT seq + ?3 FROM pick "
          "WHERE seq + ?3 <= ?4) "
          "SELECT m.seq, m.event FROM pick JOIN metrics m ON m.session = ?1 AND m.seq = pick.seq "
          "UNION "
          "SELECT seq, event FROM metrics INDEXED BY metrics_not_steps "
          "WHERE session = ?1 AND seq >= ?2 AND seq <= ?4 AND kind IS NOT 0 "
          "ORDER BY 1");
  st.BindText(1, name).Bind(2, start_seq).Bind(3, every).Bind(4, end_seq);
  while (st.Step() == SQLITE_ROW) {
    v1::MetricEvent e;
    if (!e.ParseFromString(st.Blob(1))) return absl::DataLossError("corrupt metric event");
    // Rows of unknown kind come through the index: keep their steps on the stride only.
    if (e.has_step() && (e.seq() - start_seq) % every != 0) continue;
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<Storage::NewestMetrics> SqliteStorage::ReadNewestMetrics(const std::string& name) {
  absl::MutexLock lock(&mu_);
  NewestMetrics out;
  // Backwards along the primary key to the first step (nearly every event is one), and along
  // the evaluations' partial index to the first evaluation; rows of unknown kind (written
  // before kinds were) are looked at on the way.
  for (const bool eval : {false, true}) {
    Stmt st(db_, eval ? "SELECT event FROM metrics INDEXED BY metrics_not_steps "
                        "WHERE session = ? AND kind IS NOT 0 ORDER BY seq DESC"
                      : "SELECT event FROM metrics WHERE session = ? AND kind IS NOT 1 "
                        "ORDER BY seq DESC");
    st.BindText(1, name);
    while (st.Step() == SQLITE_ROW) {
      v1::MetricEvent e;
      if (!e.ParseFromString(st.Blob(0))) return absl::DataLossError("corrupt metric event");
      if (eval ? e.has_eval() : e.has_step()) {
        (eval ? out.eval : out.step) = std::move(e);
        break;
      }
    }
  }
  return out;
}

absl::StatusOr<int64_t> SqliteStorage::TruncateMetricsAfterStep(const std::string& name,
                                                                int64_t step) {
  absl::MutexLock lock(&mu_);
  Stmt del(db_, "DELETE FROM metrics WHERE session = ? AND step > ?");
  del.BindText(1, name).Bind(2, step);
  if (del.Step() != SQLITE_DONE) return SqlError(db_, "truncate metrics");
  Stmt last(db_, "SELECT COALESCE(MAX(seq), 0) FROM metrics WHERE session = ?");
  last.BindText(1, name);
  if (last.Step() != SQLITE_ROW) return SqlError(db_, "last seq");
  return last.Int(0);
}

absl::StatusOr<int64_t> SqliteStorage::CountMetrics(const std::string& name) {
  absl::MutexLock lock(&mu_);
  Stmt st(db_, "SELECT COUNT(*) FROM metrics WHERE session = ?");
  st.BindText(1, name);
  if (st.Step() != SQLITE_ROW) return SqlError(db_, "count metrics");
  return st.Int(0);
}

// ---- Checkpoints and snapshots ----------------------------------------------------------

// In the data directory's files (file_blobs.h: the step is in the checkpoint's file name).
absl::Status SqliteStorage::PutCheckpoint(const std::string& name, const StoredState& state) {
  return blobs_.PutCheckpoint(name, state);
}

absl::StatusOr<StoredState> SqliteStorage::GetCheckpoint(const std::string& name) {
  return blobs_.GetCheckpoint(name);
}

absl::StatusOr<int64_t> SqliteStorage::CheckpointStep(const std::string& name) {
  return blobs_.CheckpointStep(name);
}

absl::Status SqliteStorage::PutSnapshot(const std::string& name, const StoredState& state) {
  RETURN_IF_ERROR(blobs_.PutSnapshot(name, state));
  absl::MutexLock lock(&mu_);
  Stmt st(db_, "INSERT OR REPLACE INTO snapshots (session, step, create_time) VALUES (?, ?, ?)");
  const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  st.BindText(1, name).Bind(2, state.step).Bind(3, now_us);
  if (st.Step() != SQLITE_DONE) return SqlError(db_, "add snapshot");
  return absl::OkStatus();
}

absl::StatusOr<std::string> SqliteStorage::GetSnapshot(const std::string& name, int64_t step) {
  return blobs_.GetSnapshot(name, step);
}

absl::StatusOr<std::vector<SnapshotInfo>> SqliteStorage::ListSnapshots(const std::string& name) {
  absl::MutexLock lock(&mu_);
  Stmt st(db_, "SELECT step, create_time FROM snapshots WHERE session = ? ORDER BY step");
  st.BindText(1, name);
  std::vector<SnapshotInfo> out;
  while (st.Step() == SQLITE_ROW) out.push_back(SnapshotInfo{st.Int(0), st.Int(1)});
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Storage>> OpenSqliteStorage(const std::string& data_dir) {
  return SqliteStorage::Open(data_dir);
}

}  // namespace alignd::server
