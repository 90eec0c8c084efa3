// File: server/sessions/live_session.h
// -----------------------------------------------------------------------------
// LiveSession: a session as the running server holds it — its record (the v1::Session
// clients see, with its newest figures: latest_step and latest_eval, kept by the
// SessionRecorder), its trainer options, what its worker was asked to do (pause, cancel,
// shut down), and its recent metric events in memory (MetricRing) with the watchers (open
// streams) that follow them.
//
// Events reach a stream without a read: the worker pushes each event into the ring and
// wakes the watchers, which take it from memory. Only a stream that asks for events
// older than the ring reads them from storage, on its own executor (metrics_stream.h).
// The ring drops an event only after storage has it, so "older than the ring" always
// means "in storage".
#ifndef ALIGND_SERVER_SESSIONS_LIVE_SESSION_H_
#define ALIGND_SERVER_SESSIONS_LIVE_SESSION_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "alignd/v1/sessions.pb.h"
#include "core/config.h"

namespace alignd::server {

// The recent metric events of one session. Thread-safe.
class MetricRing {
 public:
  // Events kept once stored; events not yet stored are always kept.
  static constexpr size_t kKeep = 1024;

  // An empty ring whose next event is last_seq + 1, everything up to last_seq stored.
  explicit MetricRing(int64_t last_seq = 0) { Reset(last_seq); }
  void Reset(int64_t last_seq);
  // Appends the next event (its seq must be last_seq() + 1).
  void Push(std::shared_ptr<const v1::MetricEvent> event);
  // Storage holds every event up to `seq`.
  void MarkStored(int64_t seq);

  enum class Where { kHere, kOlder, kNotYet };
  // The event with `seq` if it is here; else whether it is older than the ring (so in
  // storage) or not produced yet.
  std::shared_ptr<const v1::MetricEvent> Get(int64_t seq, Where* where) const;
  // The same event with its wire encoding (SerializeAsString). The bytes are made once, by
  // the first caller, and kept with the event: every stream that sends it sends these
  // bytes, however many follow the session (the fan-out serialises an event once, not once
  // per subscriber). Both null, with *where as Get's, when the event is not here.
  struct Encoded {
    std::shared_ptr<const v1::MetricEvent> event;
    std::shared_ptr<const std::string> bytes;
  };
  Encoded GetEncoded(int64_t seq, Where* where) const;
  // The events here with seq in [from, to] that `keep` takes (all, without one), at most
  // `limit`, in seq order; *first is the seq of the ring's oldest event, so every event
  // before it is in storage. Both under one lock: they agree (ListMetrics).
  std::vector<std::shared_ptr<const v1::MetricEvent>> Read(
      int64_t from, int64_t to, size_t limit, int64_t* first,
      const std::function<bool(const v1::MetricEvent&)>& keep = nullptr) const;
  int64_t last_seq() const;
  int64_t stored_seq() const;

 private:
  void Trim() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  mutable absl::Mutex mu_;
  std::deque<std::shared_ptr<const v1::MetricEvent>> events_ ABSL_GUARDED_BY(mu_);
  // encoded_[k]: events_[k]'s wire bytes once a stream asked for them (null before).
  mutable std::deque<std::shared_ptr<const std::string>> encoded_ ABSL_GUARDED_BY(mu_);
  int64_t first_seq_ ABSL_GUARDED_BY(mu_) = 1;  // seq of events_.front()
  int64_t stored_seq_ ABSL_GUARDED_BY(mu_) = 0;
};

// Woken when a session has something new: an event, a snapshot, a change of state, or a
// heartbeat tick. Called from the training thread or an RPC or ticker thread, with the
// session's watcher lock held: implementations must be quick (no I/O; hand work to an
// executor) and must not add or remove watchers. RemoveWatcher waits for a running
// wake-up, so a watcher may be destroyed right after removing itself.
class SessionWatcher {
 public:
  virtual ~SessionWatcher() = default;
  virtual void OnSessionUpdate() = 0;
};

class LiveSession {
 public:
  LiveSession(v1::Session record, core::TrainerOptions options)
      : record_(record),
        options_(std::move(options)),
        name_(record.name()),
        owner_(record.owner()),
        metrics_(record.last_seq()) {}

  const std::string& name() const { return name_; }
  // The principal that created it (immutable; empty with authentication off).
  const std::string& owner() const { return owner_; }
  v1::Session record() const {
    absl::MutexLock lock(&mu_);
    return record_;
  }
  v1::SessionState state() const {
    absl::MutexLock lock(&mu_);
    return record_.state();
  }
  const core::TrainerOptions& options() const { return options_; }
  // True once DeleteSession removed it (open streams end).
  bool deleted() const { return deleted_.load(); }
  // Counts snapshots stored while the server runs (snapshot streams look when it moves).
  int64_t snapshots_stored() const { return snapshots_stored_.load(); }
  MetricRing& metrics() { return metrics_; }
  const MetricRing& metrics() const { return metrics_; }

  // Steps this process has trained of the session (a counter that never goes back: a
  // restart that resumes from a checkpoint starts it again at 0, which Prometheus reads as
  // a counter reset, not as steps lost).
  int64_t steps_trained() const { return steps_trained_.load(std::memory_order_relaxed); }
  // Whether its run was asked to stop (pause, cancel or shutdown) since a worker took it:
  // its worker stops at the next step.
  bool stop_requested() const { return stop_.load() != StopRequest::kNone; }
  // True while this process trains it under a lease (replicas on a shared database).
  bool held_here() const { return epoch_.load() != 0; }

  void AddWatcher(SessionWatcher* w);
  void RemoveWatcher(SessionWatcher* w);
  // Wakes every watcher (also used for heartbeats).
  void Notify();

 private:
  friend class SessionManager;
  friend class SessionRecorder;
  // kLeaseLost: another replica holds the session now (cluster.h); stop and write nothing.
  // kStopEarly: its experiment's stopping policy ended it (SessionManager::EarlyStopping).
  enum class StopRequest { kNone, kPause, kCancel, kShutdown, kLeaseLost, kStopEarly };
  // Asks the worker to stop unless something else was asked first.
  void AskStop(StopRequest r) {
    StopRequest none = StopRequest::kNone;
    stop_.compare_exchange_strong(none, r);
  }

  // Lock order: watchers_mu_, then mu_ (a watcher reads the record while woken).
  absl::Mutex watchers_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  v1::Session record_ ABSL_GUARDED_BY(mu_);
  std::vector<SessionWatcher*> watchers_ ABSL_GUARDED_BY(watchers_mu_);
  const core::TrainerOptions options_;
  const std::string name_;
  const std::string owner_;
  MetricRing metrics_;
  std::atomic<StopRequest> stop_{StopRequest::kNone};
  std::atomic<bool> deleted_{false};
  std::atomic<int64_t> steps_trained_{0};
  std::atomic<int64_t> snapshots_stored_{0};
  // Replicas (cluster.h): the epoch of the lease this process trains it under (0: it does
  // not), and when that lease was last renewed (steady clock, ms).
  std::atomic<int64_t> epoch_{0};
  std::atomic<int64_t> renewed_ms_{0};
  // The version and lease epoch of the database row the local view was last refreshed from
  // (guarded by the manager's refresh_mu_).
  int64_t row_version_ = 0;
  int64_t row_epoch_ = 0;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_SESSIONS_LIVE_SESSION_H_
