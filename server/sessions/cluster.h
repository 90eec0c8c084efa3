// File: server/sessions/cluster.h
// -----------------------------------------------------------------------------
// Cluster: what replicas of alignd that share one database agree on, and how. A Storage
// that several processes share (PostgreSQL, pg_storage.h) also offers this; the embedded
// one (SQLite) does not, and one alignd owns it alone (Storage::cluster() is nullptr).
//
// The database is the truth of every session's state. Sessions wait in one queue (QUEUED,
// in queue order); a replica with room claims the oldest it can fit, under a lease: the
// session's epoch goes up by one and names the holder, until a deadline the holder renews
// by heartbeat. Every write a trainer makes (metric events, checkpoints, snapshots, its
// record) goes through Fenced(session, epoch): it is conditional on the epoch still being
// the session's, so a holder that lost its lease (stopped, partitioned, slow) writes
// nothing and learns it (ABORTED). A lease that expires makes the session claimable again:
// the next holder cuts the metric log back to the checkpoint and resumes from it.
//
// Changes are announced (Listen): a session's record changed, its log grew to a seq, a
// stop was asked for. Announcements can be lost (a dropped connection); a listener also
// re-reads what changed (Changes) on every reconnect and every few seconds.
#ifndef ALIGND_SERVER_SESSIONS_CLUSTER_H_
#define ALIGND_SERVER_SESSIONS_CLUSTER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "alignd/v1/sessions.pb.h"

namespace alignd::server {

class Storage;

// What a replica asks of a session it does not hold.
enum class StopAsk { kNone = 0, kPause = 1, kCancel = 2 };

// Create's checks that hold across replicas, in the transaction that inserts the session.
struct InsertLimits {
  std::string request_key;  // owner/request_id; empty: none
  int max_queued = 0;       // QUEUED sessions at most, in all
  int max_sessions = 0;     // stored sessions at most
  int max_active = 0;       // of the record's owner, QUEUED + RUNNING; 0: no limit
  std::string quota_hint;   // the flag to name when max_active is reached
};

struct ClaimedSession {
  v1::Session record;  // RUNNING, its log cut back to the checkpoint (last_seq, step)
  int64_t epoch = 0;
  int64_t version = 0;  // the row's version after the claim
};

// A session's row as a listener re-reads it.
struct SessionRow {
  v1::Session record;
  int64_t logged_seq = 0;  // the stored log's last seq
  int64_t version = 0;     // grows with every change of the row
  std::string holder;      // the replica that trains it, if any
  int64_t epoch = 0;       // its lease's: a claim (which may cut the log back) raises it
};

class Cluster {
 public:
  virtual ~Cluster() = default;

  // This process's name among the replicas (unique per process).
  virtual const std::string& replica() const = 0;

  // Inserts a QUEUED session at the end of the queue, or returns the session a retry's
  // request_key names. ResourceExhausted over a limit (the message names it).
  virtual absl::StatusOr<v1::Session> Insert(const v1::Session& record,
                                             const InsertLimits& limits) = 0;

  // Claims the oldest claimable session — QUEUED, or RUNNING under a lease that expired —
  // if its threads fit in free_threads (the head is never overtaken: a session that does
  // not fit here waits for a replica where it does). Empty if there is none to claim.
  // Never one of `busy`: the sessions a worker of this process still runs (a lease can run
  // out under a process that was stopped; its own renewal then says whether it still
  // holds the session, and a second run of it here must not begin meanwhile).
  virtual absl::StatusOr<std::optional<ClaimedSession>> Claim(
      int free_threads, int64_t lease_ms, const std::vector<std::string>& busy) = 0;
  // Extends the lease by lease_ms from now; what was asked of the session meanwhile.
  // ABORTED if the epoch is no longer the session's (the lease was lost); kNone if it still
  // is but the session is no longer RUNNING (its holder just wrote its end).
  virtual absl::StatusOr<StopAsk> Renew(const std::string& session, int64_t epoch,
                                        int64_t lease_ms) = 0;
  // The writes a holder of `epoch` makes for `session`: every write of that session is
  // conditional on the epoch (ABORTED "lease lost" when it is not), reads pass through.
  // Each batch of metric events stores `live()` (the holder's record) with it, so that
  // every replica's Get sees the figures of the last batch.
  virtual std::unique_ptr<Storage> Fenced(const std::string& session, int64_t epoch,
                                          std::function<v1::Session()> live) = 0;

  // Pause, Resume and Cancel on the shared state. A QUEUED session is paused or cancelled
  // at once; a RUNNING one whose lease is live gets the ask (its holder stops at its next
  // step and writes the new state) and the caller waits for it; a RUNNING one whose lease
  // expired (its holder is gone) is fenced off and changed at once.
  enum class Op { kPause, kResume, kCancel };
  struct OpResult {
    v1::Session record;
    bool asked = false;  // a live holder was asked; the state changes when it stops
  };
  virtual absl::StatusOr<OpResult> Transition(const std::string& session, Op op, int max_queued,
                                              int max_active) = 0;
  // Deletes a session that is neither QUEUED nor RUNNING (FailedPrecondition otherwise,
  // NotFound if absent), with its log, checkpoint and snapshots.
  virtual absl::Status Delete(const std::string& session) = 0;
  // One session's row; NotFound if absent.
  virtual absl::StatusOr<SessionRow> Read(const std::string& session) = 0;
  // The rows changed since the read that returned the cursor `after` (all with 0), the
  // names of every session, and the cursor for the next read (`next`), all as of one
  // moment. A change that commits late is never skipped: rows changed by transactions the
  // read could not see yet are in the next read (at times again: a row can come twice).
  virtual absl::StatusOr<std::vector<SessionRow>> Changes(int64_t after,
                                                          std::vector<std::string>* names,
                                                          int64_t* next) = 0;

  // Announcements, delivered on a thread of the cluster's own until StopListening:
  // on_session(name) when a record changed (or was deleted) or a stop was asked,
  // on_log(name, seq) when its log grew to seq, on_resync() after a reconnect (what was
  // announced meanwhile is lost: re-read).
  struct Listener {
    std::function<void(const std::string&)> on_session;
    std::function<void(const std::string&, int64_t)> on_log;
    std::function<void()> on_resync;
  };
  virtual void Listen(Listener listener) = 0;
  virtual void StopListening() = 0;
  // True while the database answers (health).
  virtual bool Reachable() = 0;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_SESSIONS_CLUSTER_H_
