// File: server/pg_storage.cc
#include "server/pg_storage.h"

#include <endian.h>
#include <libpq-fe.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "server/file_blobs.h"
#include "server/resource_names.h"

namespace alignd::server {
namespace {

using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;

// A statement's parameters: text for names and integers, binary for bytes.
class Params {
 public:
  Params& Text(std::string s) { return Add(std::move(s), 0); }
  Params& Int(int64_t v) { return Add(std::to_string(v), 0); }
  Params& Bytes(std::string s) { return Add(std::move(s), 1); }
  int size() const { return static_cast<int>(values_.size()); }
  // Pointers into values_: valid until the next Add.
  std::vector<const char*> Pointers() const {
    std::vector<const char*> p;
    for (const auto& v : values_) p.push_back(v.data());
    return p;
  }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  Params& Add(std::string v, int format) {
    lengths_.push_back(static_cast<int>(v.size()));
    formats_.push_back(format);
    values_.push_back(std::move(v));
    return *this;
  }
  std::vector<std::string> values_;
  std::vector<int> lengths_, formats_;
};

// Results are asked for in binary: bytea as its bytes, bigint as 8 bytes big-endian.
std::string Bytes(const PGresult* r, int row, int col) {
  return std::string(PQgetvalue(r, row, col), PQgetlength(r, row, col));
}
int64_t Int64(const PGresult* r, int row, int col) {
  uint64_t v = 0;
  std::memcpy(&v, PQgetvalue(r, row, col), sizeof v);
  return static_cast<int64_t>(be64toh(v));
}

// One connection from the pool, given back when destroyed.
class Pool;
class Conn {
 public:
  Conn(Pool* pool, PGconn* c) : pool_(pool), c_(c) {}
  Conn(Conn&& o) noexcept : pool_(o.pool_), c_(o.c_) { o.c_ = nullptr; }
  ~Conn();
  PGconn* get() const { return c_; }

  // Runs `sql` with `p`; the result if its status is `want`, else the error as a Status:
  // Unavailable when the connection broke, AlreadyExists for a unique key taken,
  // Internal otherwise (naming `what`).
  absl::StatusOr<Result> Run(const char* what, const char* sql, const Params& p,
                             ExecStatusType want = PGRES_TUPLES_OK) {
    std::vector<const char*> values = p.Pointers();
    Result r(PQexecParams(c_, sql, p.size(), nullptr, values.data(), p.lengths(), p.formats(),
                          /*resultFormat=*/1),
             &PQclear);
    if (r && PQresultStatus(r.get()) == want) return r;
    return Error(what, r.get());
  }
  absl::Status Exec(const char* what, const char* sql) {
    Result r(PQexec(c_, sql), &PQclear);
    if (r && PQresultStatus(r.get()) == PGRES_COMMAND_OK) return absl::OkStatus();
    return Error(what, r.get());
  }
  absl::Status Error(const char* what, const PGresult* r) const {
    const std::string message = r ? PQresultErrorMessage(r) : PQerrorMessage(c_);
    const std::string text =
        absl::StrCat("postgresql ", what, ": ", absl::StripTrailingAsciiWhitespace(message));
    if (PQstatus(c_) != CONNECTION_OK) return absl::UnavailableError(text);
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    if (state && std::strcmp(state, "23505") == 0) return absl::AlreadyExistsError(text);
    // Class 08 (connection exception), 57P (operator intervention: shutdown, restart).
    if (state && (absl::StartsWith(state, "08") || absl::StartsWith(state, "57P")))
      return absl::UnavailableError(text);
    return absl::InternalError(text);
  }

 private:
  Pool* pool_;
  PGconn* c_;
};

class Pool {
 public:
  Pool(std::string conninfo, int size) : conninfo_(std::move(conninfo)), size_(size) {}
  ~Pool() {
    for (PGconn* c : idle_) PQfinish(c);
  }

  // A connection that is up: an idle one, a new one, or one given back once all are in use.
  absl::StatusOr<Conn> Get() {
    PGconn* c = nullptr;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Pool* p) { return !p->idle_.empty() || p->open_ < p->size_; }, this));
      if (!idle_.empty()) {
        c = idle_.back();
        idle_.pop_back();
      } else {
        ++open_;
      }
    }
    if (c != nullptr && PQstatus(c) != CONNECTION_OK) {
      PQfinish(c);
      c = nullptr;
    }
    if (c == nullptr) {
      c = PQconnectdb(conninfo_.c_str());
      if (c == nullptr || PQstatus(c) != CONNECTION_OK) {
        const std::string why =
            c ? std::string(absl::StripTrailingAsciiWhitespace(PQerrorMessage(c)))
              : std::string("out of memory");
        if (c) PQfinish(c);
        absl::MutexLock lock(&mu_);
        --open_;
        return absl::UnavailableError(absl::StrCat("postgresql unreachable: ", why));
      }
    }
    return Conn(this, c);
  }

  void Put(PGconn* c) {
    absl::MutexLock lock(&mu_);
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE) {
      idle_.push_back(c);
    } else {
      PQfinish(c);  // broken, or left inside a transaction: never reused
      --open_;
    }
  }

 private:
  const std::string conninfo_;
  const int size_;
  absl::Mutex mu_;
  std::vector<PGconn*> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // connections idle or in use
};

Conn::~Conn() {
  if (c_ != nullptr) pool_->Put(c_);
}

// The schema, created once per database (the advisory lock serialises replicas starting
// together: CREATE ... IF NOT EXISTS alone can still collide on the catalog).
// metrics.kind: 0 a step, 1 an evaluation, 2 anything else (kept: what the log held).
constexpr char kSchema[] = R"sql(
SET client_min_messages = warning;
BEGIN;
SELECT pg_advisory_xact_lock(7361029);
CREATE TABLE IF NOT EXISTS datasets (id TEXT PRIMARY KEY, record BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, record BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS metrics (session TEXT NOT NULL, seq BIGINT NOT NULL,
  step BIGINT NOT NULL, kind SMALLINT NOT NULL, event BYTEA NOT NULL,
  PRIMARY KEY (session, seq));
CREATE INDEX IF NOT EXISTS metrics_not_steps ON metrics (session, seq) WHERE kind <> 0;
CREATE TABLE IF NOT EXISTS snapshots (session TEXT NOT NULL, step BIGINT NOT NULL,
  create_time BIGINT NOT NULL, PRIMARY KEY (session, step));
COMMIT;
)sql";

int16_t KindOf(const v1::MetricEvent& e) {
  if (e.has_step()) return 0;
  if (e.has_eval()) return 1;
  return 2;
}

template <typename Message>
absl::StatusOr<std::vector<Message>> Records(const PGresult* r, int col, const char* what) {
  std::vector<Message> out(PQntuples(r));
  for (int i = 0; i < PQntuples(r); ++i)
    if (!out[i].ParseFromString(Bytes(r, i, col)))
      return absl::DataLossError(absl::StrCat("corrupt ", what));
  return out;
}

class PostgresStorage final : public Storage {
 public:
  explicit PostgresStorage(const PostgresOptions& o)
      : pool_(o.conninfo, std::max(1, o.connections)), blobs_(o.blobs_dir) {}

  ~PostgresStorage() override {
    if (owner_ != nullptr) PQfinish(owner_);
  }

  absl::Status Init(const PostgresOptions& o) {
    RETURN_IF_ERROR(blobs_.Prepare("--blobs"));
    {
      ASSIGN_OR_RETURN(Conn c, pool_.Get());
      RETURN_IF_ERROR(c.Exec("create schema", kSchema));
    }
    if (!o.exclusive) return absl::OkStatus();
    owner_ = PQconnectdb(o.conninfo.c_str());
    if (owner_ == nullptr || PQstatus(owner_) != CONNECTION_OK)
      return absl::UnavailableError("postgresql unreachable for the owner's lock");
    Result r(PQexec(owner_, "SELECT pg_try_advisory_lock(7361030)::int"), &PQclear);
    if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK)
      return absl::InternalError(absl::StrCat("postgresql owner's lock: ", PQerrorMessage(owner_)));
    if (std::string(PQgetvalue(r.get(), 0, 0)) != "1")
      return absl::FailedPreconditionError(
          "the database is in use by another alignd (one alignd per database until sessions "
          "are claimed under leases)");
    return absl::OkStatus();
  }

  // ---- Data sets.
  absl::StatusOr<std::unique_ptr<BlobWriter>> NewDatasetPayload() override {
    return blobs_.NewDatasetPayload();
  }
  absl::StatusOr<std::string> ReadDatasetPayload(const v1::Dataset& d) override {
    return blobs_.ReadDatasetPayload(d);
  }
  absl::Status PutDataset(const v1::Dataset& d) override {
    return Put("put dataset",
               "INSERT INTO datasets (id, record) VALUES ($1, $2) "
               "ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
               d.name(), d.SerializeAsString());
  }
  absl::StatusOr<v1::Dataset> GetDataset(const std::string& name) override {
    return Get<v1::Dataset>("get dataset", "SELECT record FROM datasets WHERE id = $1", name);
  }
  absl::StatusOr<std::vector<v1::Dataset>> ListDatasets(const std::string& after,
                                                        int limit) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    ASSIGN_OR_RETURN(
        Result r,
        c.Run("list datasets", "SELECT record FROM datasets WHERE id > $1 ORDER BY id LIMIT $2",
              Params().Text(after).Int(limit)));
    return Records<v1::Dataset>(r.get(), 0, "dataset record");
  }
  absl::Status DeleteDataset(const std::string& name) override {
    RETURN_IF_ERROR(ParseDatasetName(name).status());
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    ASSIGN_OR_RETURN(Result r,
                     c.Run("delete dataset", "DELETE FROM datasets WHERE id = $1 RETURNING record",
                           Params().Text(name)));
    if (PQntuples(r.get()) == 0) return absl::NotFoundError(absl::StrCat(name, " not found"));
    v1::Dataset d;
    std::string sha;
    if (d.ParseFromString(Bytes(r.get(), 0, 0))) sha = d.sha256();
    blobs_.RemoveDatasetPayload(name, sha);
    return absl::OkStatus();
  }

  // ---- Sessions.
  absl::Status PutSession(const v1::Session& s) override {
    return Put("put session",
               "INSERT INTO sessions (id, record) VALUES ($1, $2) "
               "ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
               s.name(), s.SerializeAsString());
  }
  absl::StatusOr<v1::Session> GetSession(const std::string& name) override {
    return Get<v1::Session>("get session", "SELECT record FROM sessions WHERE id = $1", name);
  }
  absl::StatusOr<std::vector<v1::Session>> ListSessions() override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    ASSIGN_OR_RETURN(Result r,
                     c.Run("list sessions", "SELECT record FROM sessions ORDER BY id", Params()));
    return Records<v1::Session>(r.get(), 0, "session record");
  }
  absl::Status DeleteSession(const std::string& name) override {
    RETURN_IF_ERROR(ParseSessionName(name).status());
    {
      ASSIGN_OR_RETURN(Conn c, pool_.Get());
      // One statement, one transaction: the record, its log and its snapshot index go together.
      RETURN_IF_ERROR(c.Run("delete session",
                            "WITH a AS (DELETE FROM sessions WHERE id = $1), "
                            "b AS (DELETE FROM metrics WHERE session = $1) "
                            "DELETE FROM snapshots WHERE session = $1",
                            Params().Text(name), PGRES_COMMAND_OK)
                          .status());
    }
    return blobs_.RemoveSession(name);
  }

  // ---- Metric logs.
  absl::Status AppendMetrics(const std::string& session,
                             const std::vector<StoredMetric>& events) override {
    if (events.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    // Rows in statements of up to kRows (5 parameters each, PostgreSQL takes 65535), all in
    // one transaction when there are more: all or nothing.
    constexpr size_t kRows = 1000;
    const bool several = events.size() > kRows;
    if (several) RETURN_IF_ERROR(c.Exec("append metrics", "BEGIN"));
    for (size_t from = 0; from < events.size(); from += kRows) {
      const size_t to = std::min(events.size(), from + kRows);
      std::string sql = "INSERT INTO metrics (session, seq, step, kind, event) VALUES ";
      Params p;
      p.Text(session);
      for (size_t i = from; i < to; ++i) {
        const StoredMetric& m = events[i];
        const int k = p.size();
        absl::StrAppend(&sql, i == from ? "" : ",", "($1,$", k + 1, ",$", k + 2, ",$", k + 3, ",$",
                        k + 4, ")");
        p.Int(m.event.seq()).Int(m.step).Int(KindOf(m.event)).Bytes(m.event.SerializeAsString());
      }
      absl::Status st = c.Run("append metrics", sql.c_str(), p, PGRES_COMMAND_OK).status();
      if (!st.ok()) {
        if (several) c.Exec("append metrics", "ROLLBACK").IgnoreError();
        return st;
      }
    }
    if (several) return c.Exec("append metrics", "COMMIT");
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<v1::MetricEvent>> ReadMetrics(const std::string& session,
                                                           int64_t start_seq, int limit) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    ASSIGN_OR_RETURN(Result r, c.Run("read metrics",
                                     "SELECT event FROM metrics WHERE session = $1 AND seq >= $2 "
                                     "ORDER BY seq LIMIT $3",
                                     Params().Text(session).Int(start_seq).Int(limit)));
    return Records<v1::MetricEvent>(r.get(), 0, "metric event");
  }

  absl::StatusOr<std::vector<v1::MetricEvent>> ReadMetricsSampled(const std::string& session,
                                                                  int64_t start_seq,
                                                                  int64_t end_seq,
                                                                  int64_t every) override {
    if (end_seq < start_seq) return std::vector<v1::MetricEvent>{};
    every = std::max<int64_t>(1, every);
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    // The strided seqs by primary-key lookups (the series stops at the log's last seq), the
    // rest by the partial index: max_points + evaluations rows, however long the log.
    ASSIGN_OR_RETURN(
        Result r,
        c.Run("read sampled metrics",
              "SELECT m.seq, m.event FROM generate_series($2::bigint, LEAST($4::bigint, "
              "(SELECT COALESCE(MAX(seq), 0) FROM metrics WHERE session = $1)), $3::bigint) "
              "AS g(seq) JOIN metrics m ON m.session = $1 AND m.seq = g.seq AND m.kind = 0 "
              "UNION ALL "
              "SELECT seq, event FROM metrics WHERE session = $1 AND seq >= $2 AND seq <= $4 "
              "AND kind <> 0 ORDER BY 1",
              Params().Text(session).Int(start_seq).Int(every).Int(end_seq)));
    return Records<v1::MetricEvent>(r.get(), 1, "metric event");
  }

  absl::StatusOr<NewestMetrics> ReadNewestMetrics(const std::string& session) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    NewestMetrics out;
    for (const int kind : {0, 1}) {
      ASSIGN_OR_RETURN(Result r, c.Run("read newest metrics",
                                       "SELECT event FROM metrics WHERE session = $1 AND "
                                       "kind = $2 ORDER BY seq DESC LIMIT 1",
                                       Params().Text(session).Int(kind)));
      if (PQntuples(r.get()) == 0) continue;
      v1::MetricEvent e;
      if (!e.ParseFromString(Bytes(r.get(), 0, 0)))
        return absl::DataLossError("corrupt metric event");
      (kind == 0 ? out.step : out.eval) = std::move(e);
    }
    return out;
  }

  absl::StatusOr<int64_t> TruncateMetricsAfterStep(const std::string& session,
                                                   int64_t step) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    ASSIGN_OR_RETURN(Result r,
                     c.Run("truncate metrics",
                           "WITH d AS (DELETE FROM metrics WHERE session = $1 AND step > $2 "
                           "RETURNING seq) SELECT COALESCE(MAX(seq), 0)::bigint FROM metrics "
                           "WHERE session = $1 AND step <= $2",
                           Params().Text(session).Int(step)));
    return Int64(r.get(), 0, 0);
  }

  absl::StatusOr<int64_t> CountMetrics(const std::string& session) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    ASSIGN_OR_RETURN(Result r,
                     c.Run("count metrics", "SELECT COUNT(*) FROM metrics WHERE session = $1",
                           Params().Text(session)));
    return Int64(r.get(), 0, 0);
  }

  // ---- Checkpoints: files (the step in the name, file_blobs.h).
  absl::Status PutCheckpoint(const std::string& session, const StoredState& state) override {
    return blobs_.PutCheckpoint(session, state);
  }
  absl::StatusOr<StoredState> GetCheckpoint(const std::string& session) override {
    return blobs_.GetCheckpoint(session);
  }
  absl::StatusOr<int64_t> CheckpointStep(const std::string& session) override {
    return blobs_.CheckpointStep(session);
  }

  // ---- Snapshots: the bytes first, then the row that lists them.
  absl::Status PutSnapshot(const std::string& session, const StoredState& state) override {
    RETURN_IF_ERROR(blobs_.PutSnapshot(session, state));
    const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    return c
        .Run("add snapshot",
             "INSERT INTO snapshots (session, step, create_time) VALUES ($1, $2, $3) "
             "ON CONFLICT (session, step) DO UPDATE SET create_time = EXCLUDED.create_time",
             Params().Text(session).Int(state.step).Int(now_us), PGRES_COMMAND_OK)
        .status();
  }
  absl::StatusOr<std::string> GetSnapshot(const std::string& session, int64_t step) override {
    return blobs_.GetSnapshot(session, step);
  }
  absl::StatusOr<std::vector<SnapshotInfo>> ListSnapshots(const std::string& session) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    ASSIGN_OR_RETURN(Result r, c.Run("list snapshots",
                                     "SELECT step, create_time FROM snapshots WHERE session = $1 "
                                     "ORDER BY step",
                                     Params().Text(session)));
    std::vector<SnapshotInfo> out;
    for (int i = 0; i < PQntuples(r.get()); ++i)
      out.push_back(SnapshotInfo{Int64(r.get(), i, 0), Int64(r.get(), i, 1)});
    return out;
  }

 private:
  absl::Status Put(const char* what, const char* sql, const std::string& id, std::string record) {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    return c.Run(what, sql, Params().Text(id).Bytes(std::move(record)), PGRES_COMMAND_OK).status();
  }
  template <typename Message>
  absl::StatusOr<Message> Get(const char* what, const char* sql, const std::string& id) {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    ASSIGN_OR_RETURN(Result r, c.Run(what, sql, Params().Text(id)));
    if (PQntuples(r.get()) == 0) return absl::NotFoundError(absl::StrCat(id, " not found"));
    Message m;
    if (!m.ParseFromString(Bytes(r.get(), 0, 0)))
      return absl::DataLossError(absl::StrCat(id, ": corrupt record"));
    return m;
  }

  Pool pool_;
  const FileBlobs blobs_;
  PGconn* owner_ = nullptr;  // holds the advisory lock of PostgresOptions::exclusive
};

}  // namespace

bool IsPostgresUri(const std::string& s) {
  return absl::StartsWith(s, "postgresql://") || absl::StartsWith(s, "postgres://");
}

absl::StatusOr<std::unique_ptr<Storage>> OpenPostgresStorage(const PostgresOptions& options) {
  auto s = std::make_unique<PostgresStorage>(options);
  if (absl::Status st = s->Init(options); !st.ok())
    return absl::FailedPreconditionError(absl::StrCat("--storage: ", st.message()));
  return std::unique_ptr<Storage>(std::move(s));
}

}  // namespace alignd::server
