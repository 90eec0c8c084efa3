// File: server/storage/pg_storage.cc
#include "server/storage/pg_storage.h"

#include <endian.h>
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "server/api/proto_convert.h"
#include "server/api/resource_names.h"
#include "server/sessions/cluster.h"
#include "server/sessions/session_rules.h"
#include "server/storage/file_blobs.h"
#include "server/storage/forwarding_storage.h"

namespace alignd::server {
namespace {

using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;

// A statement's parameters: text for names and integers, binary for bytes.
class Params {
 public:
  Params& Text(std::string s) { return Add(std::move(s), 0); }
  Params& Int(int64_t v) { return Add(std::to_string(v), 0); }
  Params& Bytes(std::string s) { return Add(std::move(s), 1); }
  Params& Null() {
    Add("", 0);
    nulls_.push_back(size() - 1);
    return *this;
  }
  int size() const { return static_cast<int>(values_.size()); }
  // Pointers into values_: valid until the next Add.
  std::vector<const char*> Pointers() const {
    std::vector<const char*> p;
    for (const auto& v : values_) p.push_back(v.data());
    for (int i : nulls_) p[i] = nullptr;
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
  std::vector<int> lengths_, formats_, nulls_;
};

// Results are asked for in binary: bytea as its bytes, bigint as 8 bytes big-endian.
std::string Bytes(const PGresult* r, int row, int col) {
  return std::string(PQgetvalue(r, row, col), PQgetlength(r, row, col));
}
int64_t Affected(const PGresult* r) {
  int64_t n = 0;
  return absl::SimpleAtoi(PQcmdTuples(const_cast<PGresult*>(r)), &n) ? n : 0;
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
  // Closes the connection instead of giving it back (what it holds goes with it).
  void Discard();

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
  Pool(std::string conninfo, int size, int64_t idle_in_transaction_ms)
      : conninfo_(std::move(conninfo)),
        size_(size),
        setup_(absl::StrCat("SET idle_in_transaction_session_timeout = ",
                            std::max<int64_t>(100, idle_in_transaction_ms))) {}
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
      // A process stopped inside a transaction (SIGSTOP, a long GC-like pause, a partition)
      // would hold its row locks, and a locked session is skipped by every claim: PostgreSQL
      // ends such a connection, so the lease can run out and the session be taken over.
      Result r(PQexec(c, setup_.c_str()), &PQclear);
      if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        const std::string why = PQerrorMessage(c);
        PQfinish(c);
        absl::MutexLock lock(&mu_);
        --open_;
        return absl::UnavailableError(absl::StrCat("postgresql session setup: ", why));
      }
    }
    return Conn(this, c);
  }

  void Discard(PGconn* c) {
    PQfinish(c);
    absl::MutexLock lock(&mu_);
    --open_;
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
  const std::string setup_;  // run on every new connection
  absl::Mutex mu_;
  std::vector<PGconn*> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // connections idle or in use
};

Conn::~Conn() {
  if (c_ != nullptr) pool_->Put(c_);
}

void Conn::Discard() {
  if (c_ != nullptr) pool_->Discard(c_);
  c_ = nullptr;
}

// The schema, created once per database (the advisory lock serialises replicas starting
// together: CREATE ... IF NOT EXISTS alone can still collide on the catalog).
// metrics.kind: 0 a step, 1 an evaluation, 2 anything else (kept: what the log held).
// sessions: the record, with what replicas coordinate on beside it (cluster.h): state and
// owner (queue, quotas), threads (claims), queue_seq (queue order), epoch/holder/
// lease_until (the lease), stop_ask (a pause or cancel asked of the holder), logged_seq
// (the stored log's last seq), version (grows with every change of the row: the order of one
// row's changes), txid (the transaction of the row's last change, set by a trigger: the
// cursor a listener re-reads by, since versions are drawn before their transactions commit
// and so commit out of order; transaction ids that are not yet committed are never below
// a snapshot's xmin).
//
// The whole schema is made once per database (a marker: the last trigger it creates): DDL
// on tables in use, even "IF NOT EXISTS", takes locks that queue behind the replicas' own
// transactions and ahead of their next statements, which deadlocked a replica's start
// against another's claim. A database made by an earlier build gets what it lacks, once.
constexpr char kSchema[] = R"sql(
SET client_min_messages = warning;
BEGIN;
SELECT pg_advisory_xact_lock(7361029);
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'sessions_txid_update') THEN RETURN; END IF;
  CREATE SEQUENCE IF NOT EXISTS alignd_queue;
  CREATE SEQUENCE IF NOT EXISTS alignd_version;
  CREATE TABLE IF NOT EXISTS datasets (id TEXT PRIMARY KEY, record BYTEA NOT NULL);
  CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, record BYTEA NOT NULL,
    state SMALLINT NOT NULL DEFAULT 0, owner TEXT NOT NULL DEFAULT '',
    threads INT NOT NULL DEFAULT 1, queue_seq BIGINT NOT NULL DEFAULT 0,
    epoch BIGINT NOT NULL DEFAULT 0, holder TEXT, lease_until TIMESTAMPTZ,
    stop_ask SMALLINT NOT NULL DEFAULT 0, logged_seq BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL DEFAULT 0);
  ALTER TABLE sessions ADD COLUMN IF NOT EXISTS txid BIGINT NOT NULL DEFAULT 0;
  CREATE INDEX IF NOT EXISTS sessions_queue ON sessions (queue_seq) WHERE state IN (1, 2);
  CREATE INDEX IF NOT EXISTS sessions_version ON sessions (version);
  CREATE INDEX IF NOT EXISTS sessions_txid ON sessions (txid);
  CREATE TABLE IF NOT EXISTS requests (key TEXT PRIMARY KEY, session TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS checkpoints (session TEXT PRIMARY KEY, step BIGINT NOT NULL);
  CREATE TABLE IF NOT EXISTS metrics (session TEXT NOT NULL, seq BIGINT NOT NULL,
    step BIGINT NOT NULL, kind SMALLINT NOT NULL, event BYTEA NOT NULL,
    PRIMARY KEY (session, seq));
  CREATE INDEX IF NOT EXISTS metrics_not_steps ON metrics (session, seq) WHERE kind <> 0;
  CREATE TABLE IF NOT EXISTS snapshots (session TEXT NOT NULL, step BIGINT NOT NULL,
    create_time BIGINT NOT NULL, PRIMARY KEY (session, step));
  CREATE OR REPLACE FUNCTION alignd_txid() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN NEW.txid := pg_current_xact_id()::text::bigint; RETURN NEW; END $f$;
  CREATE TRIGGER sessions_txid_insert BEFORE INSERT ON sessions
    FOR EACH ROW EXECUTE FUNCTION alignd_txid();
  CREATE TRIGGER sessions_txid_update BEFORE UPDATE ON sessions
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version) EXECUTE FUNCTION alignd_txid();
END $$;
-- Experiments (issue 22), made once on a database an earlier build made: its own marker.
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_tables WHERE tablename = 'experiments') THEN RETURN; END IF;
  CREATE TABLE experiments (id TEXT PRIMARY KEY, record BYTEA NOT NULL);
END $$;
COMMIT;
)sql";

// The channel every replica listens on. Payloads: "s {name}" (the record changed or was
// deleted), "m {name} {seq}" (the log grew to seq), "k {name}" (a stop was asked).
constexpr char kChannel[] = "alignd";

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

absl::Status LeaseLost(const std::string& session, int64_t epoch) {
  return absl::AbortedError(absl::StrCat("lease lost: ", session, " is no longer held at epoch ",
                                         epoch, " (another replica took it over)"));
}

// A transaction on one connection, rolled back unless committed (a connection left inside
// one is never reused: Pool::Put).
class Txn {
 public:
  explicit Txn(Conn& c) : c_(c) {}
  ~Txn() {
    if (open_) c_.Exec("rollback", "ROLLBACK").IgnoreError();
  }
  absl::Status Begin(const char* sql = "BEGIN") {
    RETURN_IF_ERROR(c_.Exec("begin", sql));
    open_ = true;
    return absl::OkStatus();
  }
  absl::Status Commit() {
    open_ = false;
    return c_.Exec("commit", "COMMIT");
  }
  // ABORTED unless `session` is at `epoch` (0: no condition); the row is share-locked until
  // the end, so a claim that would change the epoch waits for this transaction.
  absl::Status Fence(const std::string& session, int64_t epoch) {
    if (epoch == 0) return absl::OkStatus();
    ASSIGN_OR_RETURN(Result r, c_.Run("fence",
                                      "SELECT 1 FROM sessions WHERE id = $1 AND epoch = $2 "
                                      "FOR SHARE",
                                      Params().Text(session).Int(epoch)));
    if (PQntuples(r.get()) == 0) return LeaseLost(session, epoch);
    return absl::OkStatus();
  }

 private:
  Conn& c_;
  bool open_ = false;
};

std::string ReplicaName() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("%s/%d/%04x", host, getpid(), rng() & 0xffff);
}

class PostgresStorage final : public Storage, public Cluster {
 public:
  explicit PostgresStorage(const PostgresOptions& o)
      : conninfo_(o.conninfo),
        pool_(o.conninfo, std::max(1, o.connections), o.idle_in_transaction_ms),
        blobs_(o.blobs_dir),
        replica_(o.replica.empty() ? ReplicaName() : o.replica) {}

  ~PostgresStorage() override { StopListening(); }

  absl::Status Init() {
    RETURN_IF_ERROR(blobs_.Prepare("--blobs"));
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    return c.Exec("create schema", kSchema);
  }

  Cluster* cluster() override { return this; }

  // ---- Data sets.
  absl::StatusOr<std::unique_ptr<BlobWriter>> NewDatasetPayload() override {
    return blobs_.NewDatasetPayload();
  }
  absl::StatusOr<std::string> ReadDatasetPayload(const v1::Dataset& d) override {
    return blobs_.ReadDatasetPayload(d);
  }
  absl::Status PutExperiment(const v1::Experiment& e) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    return c
        .Run("put experiment",
             "INSERT INTO experiments (id, record) VALUES ($1, $2) "
             "ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
             Params().Text(e.name()).Bytes(e.SerializeAsString()), PGRES_COMMAND_OK)
        .status();
  }
  absl::StatusOr<v1::Experiment> GetExperiment(const std::string& name) override {
    return Get<v1::Experiment>("get experiment", "SELECT record FROM experiments WHERE id = $1",
                               name);
  }
  absl::StatusOr<std::vector<v1::Experiment>> ListExperiments() override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    ASSIGN_OR_RETURN(Result r, c.Run("list experiments",
                                     "SELECT record FROM experiments ORDER BY id", Params()));
    return Records<v1::Experiment>(r.get(), 0, "experiment record");
  }
  absl::Status DeleteExperiment(const std::string& name) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    ASSIGN_OR_RETURN(Result r, c.Run("delete experiment", "DELETE FROM experiments WHERE id = $1",
                                     Params().Text(name), PGRES_COMMAND_OK));
    if (std::string(PQcmdTuples(r.get())) == "0")
      return absl::NotFoundError(absl::StrCat(name, " not found"));
    return absl::OkStatus();
  }
  absl::Status PutDataset(const v1::Dataset& d) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    return c
        .Run("put dataset",
             "INSERT INTO datasets (id, record) VALUES ($1, $2) "
             "ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
             Params().Text(d.name()).Bytes(d.SerializeAsString()), PGRES_COMMAND_OK)
        .status();
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
  // FailedPrecondition while a session that is not finished uses it, as the replicas see
  // it: under the lock Insert takes, so a Create on another replica at the same moment
  // either is stored first (and this refuses) or finds the data set gone (NotFound).
  absl::Status DeleteDataset(const std::string& name) override {
    RETURN_IF_ERROR(ParseDatasetName(name).status());
    std::string sha;
    {
      ASSIGN_OR_RETURN(Conn c, pool_.Get());
      Txn t(c);
      RETURN_IF_ERROR(t.Begin());
      RETURN_IF_ERROR(
          c.Run("delete dataset", "SELECT pg_advisory_xact_lock(7361031)", Params()).status());
      ASSIGN_OR_RETURN(Result users,
                       c.Run("delete dataset",
                             "SELECT record FROM sessions WHERE state IN (1, 2, 3)", Params()));
      ASSIGN_OR_RETURN(std::vector<v1::Session> active,
                       Records<v1::Session>(users.get(), 0, "session record"));
      for (const v1::Session& u : active)
        if (u.train_dataset() == name || u.eval_dataset() == name) return DatasetInUse(name);
      ASSIGN_OR_RETURN(
          Result r, c.Run("delete dataset", "DELETE FROM datasets WHERE id = $1 RETURNING record",
                          Params().Text(name)));
      if (PQntuples(r.get()) == 0) return absl::NotFoundError(absl::StrCat(name, " not found"));
      v1::Dataset d;
      if (d.ParseFromString(Bytes(r.get(), 0, 0))) sha = d.sha256();
      RETURN_IF_ERROR(t.Commit());
    }
    blobs_.RemoveDatasetPayload(name, sha);
    return absl::OkStatus();
  }

  // A session-level advisory lock of its own, held on one connection while `fn` runs its
  // calls on others (a transaction's lock would end with idle_in_transaction_session_timeout
  // during a long payload fsync). It may wait for Insert's lock 7361031 inside (DeleteDataset),
  // never the reverse. A process that dies holding it loses its connection, and the lock.
  absl::Status WithDatasetLock(const std::function<absl::Status()>& fn) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    RETURN_IF_ERROR(c.Run("data set lock", "SELECT pg_advisory_lock(7361032)", Params()).status());
    const absl::Status st = fn();
    auto unlocked = c.Run("data set lock", "SELECT pg_advisory_unlock(7361032)", Params());
    if (!unlocked.ok()) c.Discard();  // never back in the pool still holding it
    return st;
  }

  // ---- Sessions.
  absl::Status PutSession(const v1::Session& s) override { return PutSessionAt(s, 0); }
  // epoch 0: insert or replace (a session going back to QUEUED goes to the queue's end; one
  // inserted whose log is stored already, by a migration, starts at the log's end);
  // else the holder's write: only while the session is at `epoch`, and a state other than
  // RUNNING ends the lease.
  absl::Status PutSessionAt(const v1::Session& s, int64_t epoch) {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    Params p;
    p.Text(s.name())
        .Bytes(s.SerializeAsString())
        .Int(s.state())
        .Text(s.owner())
        .Int(std::max(1, s.config().threads()));
    if (epoch == 0) {
      ASSIGN_OR_RETURN(
          Result r,
          c.Run("put session",
                "WITH u AS (INSERT INTO sessions (id, record, state, owner, threads, queue_seq, "
                "version, logged_seq) VALUES ($1, $2, $3, $4, $5, nextval('alignd_queue'), "
                "nextval('alignd_version'), (SELECT COALESCE(MAX(seq), 0) FROM metrics WHERE "
                "session = $1)) ON CONFLICT (id) DO UPDATE SET record = "
                "EXCLUDED.record, state = EXCLUDED.state, owner = EXCLUDED.owner, threads = "
                "EXCLUDED.threads, queue_seq = CASE WHEN EXCLUDED.state = 1 AND sessions.state "
                "<> 1 THEN EXCLUDED.queue_seq ELSE sessions.queue_seq END, version = "
                "EXCLUDED.version RETURNING id) SELECT pg_notify('alignd', 's ' || id) FROM u",
                p));
      return absl::OkStatus();
    }
    // The holder gives the session back (QUEUED at shutdown, PAUSED when asked): a pause or
    // cancel asked of it meanwhile is what it becomes, not lost with the lease (a cancel
    // asked while the holder shuts down would otherwise queue the session to run again).
    Txn t(c);
    RETURN_IF_ERROR(t.Begin());
    ASSIGN_OR_RETURN(Result asked, c.Run("put session",
                                         "SELECT stop_ask FROM sessions WHERE id = $1 AND "
                                         "epoch = $2 FOR UPDATE",
                                         Params().Text(s.name()).Int(epoch)));
    if (PQntuples(asked.get()) == 0) return LeaseLost(s.name(), epoch);
    const auto ask = static_cast<StopAsk>(Int64i(asked.get(), 0, 0));
    v1::Session record = s;
    if (ask == StopAsk::kCancel &&
        (s.state() == v1::SESSION_STATE_QUEUED || s.state() == v1::SESSION_STATE_PAUSED)) {
      record.set_state(v1::SESSION_STATE_CANCELLED);
      *record.mutable_end_time() = Now();
    } else if (ask == StopAsk::kPause && s.state() == v1::SESSION_STATE_QUEUED) {
      record.set_state(v1::SESSION_STATE_PAUSED);
    }
    ASSIGN_OR_RETURN(
        Result r,
        c.Run("put session",
              "WITH u AS (UPDATE sessions SET record = $2, state = $3, owner = $4, threads = $5, "
              "version = nextval('alignd_version'), "
              "holder = CASE WHEN $3::smallint = 2 THEN holder END, "
              "lease_until = CASE WHEN $3::smallint = 2 THEN lease_until END, "
              "stop_ask = CASE WHEN $3::smallint = 2 THEN stop_ask ELSE 0 END "
              "WHERE id = $1 AND epoch = $6 RETURNING id) "
              "SELECT pg_notify('alignd', 's ' || id) FROM u",
              Params()
                  .Text(record.name())
                  .Bytes(record.SerializeAsString())
                  .Int(record.state())
                  .Text(record.owner())
                  .Int(std::max(1, record.config().threads()))
                  .Int(epoch)));
    if (PQntuples(r.get()) == 0) return LeaseLost(s.name(), epoch);
    return t.Commit();
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
      RETURN_IF_ERROR(DeleteRows(c, name, /*only_idle=*/false).status());
    }
    return blobs_.RemoveSession(name);
  }

  // ---- Metric logs.
  absl::Status AppendMetrics(const std::string& session,
                             const std::vector<StoredMetric>& events) override {
    return AppendMetricsAt(session, events, 0, nullptr);
  }
  // With the holder's epoch: only while the session is at it; with a record, that record
  // is stored in the same transaction (another replica's Get sees the figures of the last
  // batch, not of the last checkpoint).
  absl::Status AppendMetricsAt(const std::string& session, const std::vector<StoredMetric>& events,
                               int64_t epoch, const v1::Session* record) {
    if (events.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    Txn t(c);
    RETURN_IF_ERROR(t.Begin());
    const int64_t last = events.back().event.seq();
    {
      Params p;
      p.Text(session).Int(epoch).Int(last);
      if (record != nullptr) p.Bytes(record->SerializeAsString());
      ASSIGN_OR_RETURN(
          Result r,
          c.Run(
              "append metrics",
              record != nullptr
                  ? "UPDATE sessions SET logged_seq = GREATEST(logged_seq, $3), record = $4, "
                    "version = nextval('alignd_version') WHERE id = $1 AND ($2 = 0 OR epoch = $2)"
                  : "UPDATE sessions SET logged_seq = GREATEST(logged_seq, $3), "
                    "version = nextval('alignd_version') WHERE id = $1 AND ($2 = 0 OR epoch = $2)",
              p, PGRES_COMMAND_OK));
      if (epoch != 0 && Affected(r.get()) == 0) return LeaseLost(session, epoch);
    }
    // Rows in statements of up to kRows (5 parameters each; PostgreSQL takes 65535).
    constexpr size_t kRows = 1000;
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
      RETURN_IF_ERROR(c.Run("append metrics", sql.c_str(), p, PGRES_COMMAND_OK).status());
    }
    RETURN_IF_ERROR(c.Run("append metrics", "SELECT pg_notify('alignd', 'm ' || $1 || ' ' || $2)",
                          Params().Text(session).Int(last))
                        .status());
    return t.Commit();
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
    return NewestOn(c, session);
  }

  absl::StatusOr<int64_t> TruncateMetricsAfterStep(const std::string& session,
                                                   int64_t step) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    return TruncateOn(c, session, step);
  }

  absl::StatusOr<int64_t> CountMetrics(const std::string& session) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    ASSIGN_OR_RETURN(Result r,
                     c.Run("count metrics", "SELECT COUNT(*) FROM metrics WHERE session = $1",
                           Params().Text(session)));
    return Int64(r.get(), 0, 0);
  }

  // ---- Checkpoints: the file first (the step in its name), then the row that points at it
  // (under the holder's lease), then the older files go.
  absl::Status PutCheckpoint(const std::string& session, const StoredState& state) override {
    return PutCheckpointAt(session, state, 0);
  }
  absl::Status PutCheckpointAt(const std::string& session, const StoredState& state,
                               int64_t epoch) {
    RETURN_IF_ERROR(blobs_.WriteCheckpointFile(session, state));
    {
      ASSIGN_OR_RETURN(Conn c, pool_.Get());
      Txn t(c);
      RETURN_IF_ERROR(t.Begin());
      RETURN_IF_ERROR(t.Fence(session, epoch));
      RETURN_IF_ERROR(c.Run("put checkpoint",
                            "INSERT INTO checkpoints (session, step) VALUES ($1, $2) "
                            "ON CONFLICT (session) DO UPDATE SET step = EXCLUDED.step",
                            Params().Text(session).Int(state.step), PGRES_COMMAND_OK)
                          .status());
      RETURN_IF_ERROR(t.Commit());
    }
    blobs_.RemoveCheckpointsBefore(session, state.step);
    return absl::OkStatus();
  }
  absl::StatusOr<StoredState> GetCheckpoint(const std::string& session) override {
    ASSIGN_OR_RETURN(int64_t step, CheckpointStep(session));
    ASSIGN_OR_RETURN(std::string bytes, blobs_.ReadCheckpointFile(session, step));
    return StoredState{step, std::move(bytes)};
  }
  absl::StatusOr<int64_t> CheckpointStep(const std::string& session) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    return CheckpointStepOn(c, session);
  }

  // ---- Snapshots: the bytes first, then the row that lists them.
  absl::Status PutSnapshot(const std::string& session, const StoredState& state) override {
    return PutSnapshotAt(session, state, 0);
  }
  absl::Status PutSnapshotAt(const std::string& session, const StoredState& state, int64_t epoch) {
    RETURN_IF_ERROR(blobs_.PutSnapshot(session, state));
    const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    Txn t(c);
    RETURN_IF_ERROR(t.Begin());
    RETURN_IF_ERROR(t.Fence(session, epoch));
    RETURN_IF_ERROR(
        c.Run("add snapshot",
              "INSERT INTO snapshots (session, step, create_time) VALUES ($1, $2, $3) "
              "ON CONFLICT (session, step) DO UPDATE SET create_time = EXCLUDED.create_time",
              Params().Text(session).Int(state.step).Int(now_us), PGRES_COMMAND_OK)
            .status());
    return t.Commit();
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

  // ---- Cluster.
  const std::string& replica() const override { return replica_; }

  absl::StatusOr<v1::Session> Insert(const v1::Session& record,
                                     const InsertLimits& limits) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    Txn t(c);
    RETURN_IF_ERROR(t.Begin());
    // Inserts and resumes one at a time across replicas: the counts below are exact.
    RETURN_IF_ERROR(
        c.Run("insert session", "SELECT pg_advisory_xact_lock(7361031)", Params()).status());
    if (!limits.request_key.empty()) {
      ASSIGN_OR_RETURN(Result r, c.Run("insert session",
                                       "SELECT s.record FROM requests q JOIN sessions s ON "
                                       "s.id = q.session WHERE q.key = $1",
                                       Params().Text(limits.request_key)));
      if (PQntuples(r.get()) > 0) {
        v1::Session found;
        if (!found.ParseFromString(Bytes(r.get(), 0, 0)))
          return absl::DataLossError("corrupt session record");
        return found;
      }
    }
    ASSIGN_OR_RETURN(Result counts, c.Run("insert session",
                                          "SELECT COUNT(*) FILTER (WHERE state = 1), COUNT(*), "
                                          "COUNT(*) FILTER (WHERE owner = $1 AND state IN (1, 2)), "
                                          "COUNT(*) FILTER (WHERE id = $2) FROM sessions",
                                          Params().Text(record.owner()).Text(record.name())));
    const int64_t queued = Int64(counts.get(), 0, 0), all = Int64(counts.get(), 0, 1),
                  active = Int64(counts.get(), 0, 2), same = Int64(counts.get(), 0, 3);
    if (same > 0) return absl::AlreadyExistsError(absl::StrCat(record.name(), " already exists"));
    // Its data sets, under the lock DeleteDataset takes: a data set deleted by another
    // replica since Create loaded it is NotFound here, and one deleted after this commits
    // sees the session that uses it.
    for (const std::string& d : {record.train_dataset(), record.eval_dataset()}) {
      if (d.empty()) continue;
      ASSIGN_OR_RETURN(Result r, c.Run("insert session", "SELECT 1 FROM datasets WHERE id = $1",
                                       Params().Text(d)));
      if (PQntuples(r.get()) == 0) return absl::NotFoundError(absl::StrCat(d, " not found"));
    }
    if (limits.max_sessions > 0 && all >= limits.max_sessions)
      return TooManySessions(static_cast<int>(all));
    if (limits.max_active > 0 && active >= limits.max_active)
      return QuotaExceeded(record.owner(), static_cast<int>(active), limits.max_active);
    if (limits.max_queued > 0 && queued >= limits.max_queued) return QueueFull(limits.max_queued);
    RETURN_IF_ERROR(PutSessionOn(c, record));
    if (!limits.request_key.empty())
      RETURN_IF_ERROR(c.Run("insert session",
                            "INSERT INTO requests (key, session) VALUES ($1, $2) ON CONFLICT "
                            "(key) DO UPDATE SET session = EXCLUDED.session",
                            Params().Text(limits.request_key).Text(record.name()), PGRES_COMMAND_OK)
                          .status());
    RETURN_IF_ERROR(t.Commit());
    return record;
  }

  absl::StatusOr<std::optional<ClaimedSession>> Claim(
      int free_threads, int64_t lease_ms, const std::vector<std::string>& busy) override {
    // A text[] literal; session names are resource names (no quote, backslash or space).
    std::string busy_ids = "{";
    for (const std::string& b : busy)
      absl::StrAppend(&busy_ids, busy_ids.size() > 1 ? "," : "", "\"", b, "\"");
    busy_ids += "}";
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    // A session whose holder died with a stop asked of it gets what was asked, not a run:
    // then the next one is looked at.
    for (int tries = 0; tries < 16; ++tries) {
      Txn t(c);
      RETURN_IF_ERROR(t.Begin());
      ASSIGN_OR_RETURN(
          Result r,
          c.Run("claim",
                "SELECT id, record, threads, stop_ask, state FROM sessions WHERE (state = 1 OR "
                "(state = 2 AND lease_until < now())) AND id <> ALL($1::text[]) "
                "ORDER BY queue_seq LIMIT 1 FOR UPDATE SKIP LOCKED",
                Params().Text(busy_ids)));
      if (PQntuples(r.get()) == 0) return std::optional<ClaimedSession>();
      const std::string name = Bytes(r.get(), 0, 0);
      v1::Session record;
      if (!record.ParseFromString(Bytes(r.get(), 0, 1)))
        return absl::DataLossError(absl::StrCat(name, ": corrupt record"));
      const int64_t threads = Int64i(r.get(), 0, 2);
      const int64_t ask = Int64i(r.get(), 0, 3);
      const bool orphan = Int64i(r.get(), 0, 4) == 2;
      if (orphan && ask != 0) {
        record.set_state(ask == static_cast<int>(StopAsk::kCancel) ? v1::SESSION_STATE_CANCELLED
                                                                   : v1::SESSION_STATE_PAUSED);
        if (IsTerminal(record.state())) *record.mutable_end_time() = Now();
        RETURN_IF_ERROR(FenceOff(c, record).status());
        RETURN_IF_ERROR(t.Commit());
        continue;
      }
      if (threads > free_threads) return std::optional<ClaimedSession>();
      // Resume from the checkpoint: the log cut back to its step, the figures from the log.
      int64_t step = 0;
      if (auto ck = CheckpointStepOn(c, name); ck.ok())
        step = *ck;
      else if (ck.status().code() != absl::StatusCode::kNotFound)
        return ck.status();
      ASSIGN_OR_RETURN(int64_t last_seq, TruncateOn(c, name, step));
      ASSIGN_OR_RETURN(NewestMetrics newest, NewestOn(c, name));
      record.set_last_seq(last_seq);
      record.set_step(step);
      record.clear_latest_step();
      record.clear_latest_eval();
      if (newest.step) *record.mutable_latest_step() = newest.step->step();
      if (newest.eval) *record.mutable_latest_eval() = newest.eval->eval();
      record.set_state(v1::SESSION_STATE_RUNNING);
      if (!record.has_start_time()) *record.mutable_start_time() = Now();
      ASSIGN_OR_RETURN(
          Result u,
          c.Run("claim",
                "UPDATE sessions SET record = $2, state = 2, epoch = epoch + 1, holder = $3, "
                "lease_until = now() + ($4::float8) * interval '1 millisecond', stop_ask = 0, "
                "logged_seq = $5, version = nextval('alignd_version') WHERE id = $1 "
                "RETURNING epoch, version",
                Params()
                    .Text(name)
                    .Bytes(record.SerializeAsString())
                    .Text(replica_)
                    .Int(lease_ms)
                    .Int(last_seq)));
      const int64_t epoch = Int64(u.get(), 0, 0), version = Int64(u.get(), 0, 1);
      RETURN_IF_ERROR(Notify(c, absl::StrCat("s ", name)));
      RETURN_IF_ERROR(t.Commit());
      return std::optional<ClaimedSession>(ClaimedSession{std::move(record), epoch, version});
    }
    return std::optional<ClaimedSession>();
  }

  absl::StatusOr<StopAsk> Renew(const std::string& session, int64_t epoch,
                                int64_t lease_ms) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    ASSIGN_OR_RETURN(Result r,
                     c.Run("renew",
                           "UPDATE sessions SET lease_until = now() + ($3::float8) * interval "
                           "'1 millisecond' WHERE id = $1 AND epoch = $2 AND state = 2 "
                           "RETURNING stop_ask",
                           Params().Text(session).Int(epoch).Int(lease_ms)));
    if (PQntuples(r.get()) > 0) return static_cast<StopAsk>(Int64i(r.get(), 0, 0));
    // Still at this epoch but no longer RUNNING: the run wrote its end a moment ago (the
    // renewal raced it), which is no lost lease.
    ASSIGN_OR_RETURN(Result e, c.Run("renew", "SELECT 1 FROM sessions WHERE id = $1 AND epoch = $2",
                                     Params().Text(session).Int(epoch)));
    if (PQntuples(e.get()) > 0) return StopAsk::kNone;
    return LeaseLost(session, epoch);
  }

  std::unique_ptr<Storage> Fenced(const std::string& session, int64_t epoch,
                                  std::function<v1::Session()> live) override;

  absl::StatusOr<OpResult> Transition(const std::string& session, Op op, int max_queued,
                                      int max_active) override {
    RETURN_IF_ERROR(ParseSessionName(session).status());
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    Txn t(c);
    RETURN_IF_ERROR(t.Begin());
    if (op == Op::kResume)
      RETURN_IF_ERROR(
          c.Run("resume session", "SELECT pg_advisory_xact_lock(7361031)", Params()).status());
    ASSIGN_OR_RETURN(Result r, c.Run("change session",
                                     "SELECT record, (lease_until >= now())::int FROM sessions "
                                     "WHERE id = $1 FOR UPDATE",
                                     Params().Text(session)));
    if (PQntuples(r.get()) == 0) return absl::NotFoundError(absl::StrCat(session, " not found"));
    OpResult out;
    if (!out.record.ParseFromString(Bytes(r.get(), 0, 0)))
      return absl::DataLossError(absl::StrCat(session, ": corrupt record"));
    const bool live = !PQgetisnull(r.get(), 0, 1) && Int64i(r.get(), 0, 1) == 1;
    v1::Session& rec = out.record;
    const v1::SessionState st = rec.state();
    const bool running = st == v1::SESSION_STATE_RUNNING;
    auto ask = [&](StopAsk a) -> absl::StatusOr<OpResult> {
      RETURN_IF_ERROR(c.Run("change session", "UPDATE sessions SET stop_ask = $2 WHERE id = $1",
                            Params().Text(session).Int(static_cast<int>(a)), PGRES_COMMAND_OK)
                          .status());
      RETURN_IF_ERROR(Notify(c, absl::StrCat("k ", session)));
      RETURN_IF_ERROR(t.Commit());
      out.asked = true;
      return out;
    };
    switch (op) {
      case Op::kPause:
        if (running && live) return ask(StopAsk::kPause);
        if (st != v1::SESSION_STATE_QUEUED && !running)
          return IllegalTransition(session, st, "pause");
        rec.set_state(v1::SESSION_STATE_PAUSED);
        break;
      case Op::kCancel:
        if (IsTerminal(st)) return IllegalTransition(session, st, "cancel");
        if (running && live) return ask(StopAsk::kCancel);
        rec.set_state(v1::SESSION_STATE_CANCELLED);
        *rec.mutable_end_time() = Now();
        break;
      case Op::kResume: {
        if (st != v1::SESSION_STATE_PAUSED) return IllegalTransition(session, st, "resume");
        ASSIGN_OR_RETURN(Result n, c.Run("resume session",
                                         "SELECT COUNT(*) FILTER (WHERE state = 1), COUNT(*) "
                                         "FILTER (WHERE owner = $1 AND state IN (1, 2)) FROM "
                                         "sessions",
                                         Params().Text(rec.owner())));
        const int64_t queued = Int64(n.get(), 0, 0), active = Int64(n.get(), 0, 1);
        if (max_active > 0 && active >= max_active)
          return QuotaExceeded(rec.owner(), static_cast<int>(active), max_active);
        if (max_queued > 0 && queued >= max_queued) return QueueFull(max_queued);
        rec.set_state(v1::SESSION_STATE_QUEUED);
        break;
      }
    }
    // QUEUED or PAUSED, or RUNNING under a lease that expired: changed here, the epoch moved
    // on so that a holder that comes back writes nothing.
    RETURN_IF_ERROR(FenceOff(c, rec).status());
    RETURN_IF_ERROR(t.Commit());
    return out;
  }

  absl::Status Delete(const std::string& session) override {
    RETURN_IF_ERROR(ParseSessionName(session).status());
    bool deleted = false;
    {
      // One connection at a time: a call that holds one while it waits for a second can
      // wait for ever once every connection of the pool is held that way.
      ASSIGN_OR_RETURN(Conn c, pool_.Get());
      ASSIGN_OR_RETURN(deleted, DeleteRows(c, session, /*only_idle=*/true));
    }
    if (!deleted) {
      ASSIGN_OR_RETURN(v1::Session s, GetSession(session));
      return CannotDeleteActive(session, s.state());
    }
    return blobs_.RemoveSession(session);
  }

  absl::StatusOr<SessionRow> Read(const std::string& session) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    ASSIGN_OR_RETURN(Result r,
                     c.Run("read session",
                           "SELECT record, logged_seq, version, COALESCE(holder, ''), epoch "
                           "FROM sessions WHERE id = $1",
                           Params().Text(session)));
    if (PQntuples(r.get()) == 0) return absl::NotFoundError(absl::StrCat(session, " not found"));
    return RowOf(r.get(), 0);
  }

  absl::StatusOr<std::vector<SessionRow>> Changes(int64_t after, std::vector<std::string>* names,
                                                  int64_t* next) override {
    ASSIGN_OR_RETURN(Conn c, pool_.Get());
    // One snapshot for all three reads. The next cursor is its xmin: every transaction
    // this read cannot see yet has an id at or above it, so the next read finds it.
    Txn t(c);
    RETURN_IF_ERROR(t.Begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    ASSIGN_OR_RETURN(
        Result x, c.Run("read changes",
                        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint", Params()));
    if (next != nullptr) *next = Int64(x.get(), 0, 0);
    ASSIGN_OR_RETURN(Result r,
                     c.Run("read changes",
                           "SELECT record, logged_seq, version, COALESCE(holder, ''), epoch "
                           "FROM sessions WHERE txid >= $1 ORDER BY id",
                           Params().Int(after)));
    std::vector<SessionRow> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      ASSIGN_OR_RETURN(SessionRow row, RowOf(r.get(), i));
      out.push_back(std::move(row));
    }
    if (names != nullptr) {
      ASSIGN_OR_RETURN(Result n, c.Run("read changes", "SELECT id FROM sessions", Params()));
      names->clear();
      for (int i = 0; i < PQntuples(n.get()); ++i) names->push_back(Bytes(n.get(), i, 0));
    }
    RETURN_IF_ERROR(t.Commit());
    return out;
  }

  void Listen(Listener listener) override {
    StopListening();
    listening_ = true;
    listener_ = std::thread([this, l = std::move(listener)] { ListenLoop(l); });
  }
  void StopListening() override {
    listening_ = false;
    if (listener_.joinable()) listener_.join();
  }
  bool Reachable() override {
    if (listener_.joinable()) return reachable_.load();
    auto c = pool_.Get();
    return c.ok() && c->Run("ping", "SELECT 1", Params()).ok();
  }

 private:
  static int64_t Int64i(const PGresult* r, int row, int col) {
    // Binary int2/int4 columns: their own widths.
    const int len = PQgetlength(r, row, col);
    const char* v = PQgetvalue(r, row, col);
    if (len == 2) {
      uint16_t x;
      std::memcpy(&x, v, 2);
      return static_cast<int16_t>(be16toh(x));
    }
    if (len == 4) {
      uint32_t x;
      std::memcpy(&x, v, 4);
      return static_cast<int32_t>(be32toh(x));
    }
    return Int64(r, row, col);
  }

  static absl::StatusOr<SessionRow> RowOf(const PGresult* r, int i) {
    SessionRow row;
    if (!row.record.ParseFromString(Bytes(r, i, 0)))
      return absl::DataLossError("corrupt session record");
    row.logged_seq = Int64(r, i, 1);
    row.version = Int64(r, i, 2);
    row.holder = Bytes(r, i, 3);
    row.epoch = Int64(r, i, 4);
    return row;
  }

  static absl::Status Notify(Conn& c, const std::string& payload) {
    return c.Run("notify", "SELECT pg_notify('alignd', $1)", Params().Text(payload)).status();
  }

  // Stores `record` as it is, with no holder: the epoch goes up (a holder that lost its
  // lease writes nothing after this) and a QUEUED one goes to the queue's end.
  absl::StatusOr<int64_t> FenceOff(Conn& c, const v1::Session& record) {
    ASSIGN_OR_RETURN(
        Result r,
        c.Run("change session",
              "UPDATE sessions SET record = $2, state = $3, epoch = epoch + 1, holder = NULL, "
              "lease_until = NULL, stop_ask = 0, version = nextval('alignd_version'), "
              "queue_seq = CASE WHEN $3::smallint = 1 THEN nextval('alignd_queue') ELSE queue_seq "
              "END "
              "WHERE id = $1 RETURNING epoch",
              Params().Text(record.name()).Bytes(record.SerializeAsString()).Int(record.state())));
    RETURN_IF_ERROR(Notify(c, absl::StrCat("s ", record.name())));
    return Int64(r.get(), 0, 0);
  }

  absl::Status PutSessionOn(Conn& c, const v1::Session& s) {
    RETURN_IF_ERROR(
        c.Run("put session",
              "INSERT INTO sessions (id, record, state, owner, threads, queue_seq, version) "
              "VALUES ($1, $2, $3, $4, $5, nextval('alignd_queue'), nextval('alignd_version'))",
              Params()
                  .Text(s.name())
                  .Bytes(s.SerializeAsString())
                  .Int(s.state())
                  .Text(s.owner())
                  .Int(std::max(1, s.config().threads())),
              PGRES_COMMAND_OK)
            .status());
    return Notify(c, absl::StrCat("s ", s.name()));
  }

  // One statement, one transaction: the record, its log, its checkpoint row, its snapshot
  // index and its request ids go together. False if only_idle and the session is QUEUED or
  // RUNNING (or absent).
  absl::StatusOr<bool> DeleteRows(Conn& c, const std::string& name, bool only_idle) {
    ASSIGN_OR_RETURN(
        Result r,
        c.Run("delete session",
              only_idle ? "WITH a AS (DELETE FROM sessions WHERE id = $1 AND state NOT IN (1, 2) "
                          "RETURNING id), b AS (DELETE FROM metrics WHERE session IN (SELECT id "
                          "FROM a)), c AS (DELETE FROM snapshots WHERE session IN (SELECT id FROM "
                          "a)), d AS (DELETE FROM checkpoints WHERE session IN (SELECT id FROM "
                          "a)), e AS (DELETE FROM requests WHERE session IN (SELECT id FROM a)) "
                          "SELECT pg_notify('alignd', 's ' || id) FROM a"
                        : "WITH a AS (DELETE FROM sessions WHERE id = $1 RETURNING id), "
                          "b AS (DELETE FROM metrics WHERE session = $1), "
                          "c AS (DELETE FROM snapshots WHERE session = $1), "
                          "d AS (DELETE FROM checkpoints WHERE session = $1), "
                          "e AS (DELETE FROM requests WHERE session = $1) "
                          "SELECT pg_notify('alignd', 's ' || id) FROM a",
              Params().Text(name)));
    return PQntuples(r.get()) > 0;
  }

  absl::StatusOr<int64_t> CheckpointStepOn(Conn& c, const std::string& session) {
    ASSIGN_OR_RETURN(Result r,
                     c.Run("checkpoint step", "SELECT step FROM checkpoints WHERE session = $1",
                           Params().Text(session)));
    if (PQntuples(r.get()) == 0)
      return absl::NotFoundError(absl::StrCat(session, " has no checkpoint"));
    return Int64(r.get(), 0, 0);
  }

  absl::StatusOr<int64_t> TruncateOn(Conn& c, const std::string& session, int64_t step) {
    ASSIGN_OR_RETURN(Result r,
                     c.Run("truncate metrics",
                           "WITH d AS (DELETE FROM metrics WHERE session = $1 AND step > $2 "
                           "RETURNING seq) SELECT COALESCE(MAX(seq), 0)::bigint FROM metrics "
                           "WHERE session = $1 AND step <= $2",
                           Params().Text(session).Int(step)));
    const int64_t last = Int64(r.get(), 0, 0);
    RETURN_IF_ERROR(c.Run("truncate metrics", "UPDATE sessions SET logged_seq = $2 WHERE id = $1",
                          Params().Text(session).Int(last), PGRES_COMMAND_OK)
                        .status());
    return last;
  }

  absl::StatusOr<NewestMetrics> NewestOn(Conn& c, const std::string& session) {
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

  // LISTEN on a connection of its own; reconnects (every 0.5 s while it cannot) and tells
  // the listener to re-read after each reconnect and every kResyncEvery.
  void ListenLoop(const Listener& l) {
    using Clock = std::chrono::steady_clock;
    constexpr auto kResyncEvery = std::chrono::seconds(2);
    PGconn* conn = nullptr;
    auto last_resync = Clock::now();
    while (listening_) {
      if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
        if (conn != nullptr) PQfinish(conn);
        conn = PQconnectdb(conninfo_.c_str());
        Result r(conn && PQstatus(conn) == CONNECTION_OK ? PQexec(conn, "LISTEN alignd") : nullptr,
                 &PQclear);
        if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
          reachable_ = false;
          std::this_thread::sleep_for(std::chrono::milliseconds(500));
          continue;
        }
        reachable_ = true;
        if (l.on_resync) l.on_resync();
        last_resync = Clock::now();
      }
      pollfd p{PQsocket(conn), POLLIN, 0};
      poll(&p, 1, 200);
      if (!PQconsumeInput(conn)) {
        reachable_ = false;
        continue;  // reconnect above
      }
      while (PGnotify* n = PQnotifies(conn)) {
        std::vector<std::string> parts = absl::StrSplit(n->extra, ' ');
        PQfreemem(n);
        if (parts.size() == 3 && parts[0] == "m") {
          int64_t seq = 0;
          if (absl::SimpleAtoi(parts[2], &seq) && l.on_log) l.on_log(parts[1], seq);
        } else if (parts.size() == 2 && (parts[0] == "s" || parts[0] == "k")) {
          if (l.on_session) l.on_session(parts[1]);
        }
      }
      if (Clock::now() - last_resync >= kResyncEvery) {
        if (l.on_resync) l.on_resync();
        last_resync = Clock::now();
      }
    }
    if (conn != nullptr) PQfinish(conn);
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

  const std::string conninfo_;
  Pool pool_;
  const FileBlobs blobs_;
  const std::string replica_;
  std::atomic<bool> listening_{false};
  std::atomic<bool> reachable_{false};
  std::thread listener_;
};

// A holder's view of the storage: its writes of `session` fenced by `epoch`, the metric
// batches carrying the live record; everything else passes through (ForwardingStorage).
class FencedStorage final : public ForwardingStorage {
 public:
  FencedStorage(PostgresStorage* pg, std::string session, int64_t epoch,
                std::function<v1::Session()> live)
      : ForwardingStorage(pg),
        pg_(pg),
        session_(std::move(session)),
        epoch_(epoch),
        live_(std::move(live)) {}

  absl::Status PutSession(const v1::Session& s) override {
    return pg_->PutSessionAt(s, s.name() == session_ ? epoch_ : 0);
  }
  absl::Status DeleteSession(const std::string&) override {
    return absl::FailedPreconditionError("a trainer does not delete sessions");
  }
  absl::Status AppendMetrics(const std::string& n, const std::vector<StoredMetric>& e) override {
    if (n != session_ || e.empty() || !live_) return pg_->AppendMetricsAt(n, e, 0, nullptr);
    v1::Session record = live_();
    record.set_last_seq(e.back().event.seq());  // what is stored, not what the ring holds
    return pg_->AppendMetricsAt(n, e, epoch_, &record);
  }
  absl::StatusOr<int64_t> TruncateMetricsAfterStep(const std::string&, int64_t) override {
    return absl::FailedPreconditionError("a trainer does not cut its log (Claim does)");
  }
  absl::Status PutCheckpoint(const std::string& n, const StoredState& s) override {
    return pg_->PutCheckpointAt(n, s, n == session_ ? epoch_ : 0);
  }
  absl::Status PutSnapshot(const std::string& n, const StoredState& s) override {
    return pg_->PutSnapshotAt(n, s, n == session_ ? epoch_ : 0);
  }

 private:
  PostgresStorage* const pg_;
  const std::string session_;
  const int64_t epoch_;
  const std::function<v1::Session()> live_;
};

std::unique_ptr<Storage> PostgresStorage::Fenced(const std::string& session, int64_t epoch,
                                                 std::function<v1::Session()> live) {
  return std::make_unique<FencedStorage>(this, session, epoch, std::move(live));
}

}  // namespace

bool IsPostgresUri(const std::string& s) {
  return absl::StartsWith(s, "postgresql://") || absl::StartsWith(s, "postgres://");
}

absl::StatusOr<std::unique_ptr<Storage>> OpenPostgresStorage(const PostgresOptions& options) {
  auto s = std::make_unique<PostgresStorage>(options);
  if (absl::Status st = s->Init(); !st.ok())
    return absl::FailedPreconditionError(absl::StrCat("--storage: ", st.message()));
  return std::unique_ptr<Storage>(std::move(s));
}

}  // namespace alignd::server
