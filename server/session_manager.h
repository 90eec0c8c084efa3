// File: server/session_manager.h
// -----------------------------------------------------------------------------
// Training sessions: their records, their state machine, the bounded pool of
// worker threads that runs them, their metric logs, checkpoints and snapshots.
//
// States: QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED, with PAUSED reachable
// from QUEUED and RUNNING and left by Resume (back to QUEUED). Any other transition
// is FailedPrecondition.
//
// A worker runs one session at a time on its own thread (core is single-threaded).
// The engine calls back after every step; on metric steps and evaluations the
// session appends an event (seq 1, 2, 3, ...) to its log in storage and wakes its
// listeners, which read the log themselves: the log is the queue, so a slow reader
// never slows training and never loses an event. Checkpoints are written every
// checkpoint_every steps and on pause and shutdown.
//
// Restart (Start after a crash or a shutdown): every session that was QUEUED or
// RUNNING is queued again, resumes from its last checkpoint (or from step 0 without
// one) with bit-identical results, and its metric log is cut back to the
// checkpoint's step, so a step is never reported twice with different values.
//
// Thread-safe. Storage and the data set store must outlive the manager.
#ifndef ALIGND_SERVER_SESSION_MANAGER_H_
#define ALIGND_SERVER_SESSION_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "alignd/v1/sessions.pb.h"
#include "core/config.h"
#include "server/dataset_store.h"
#include "server/storage.h"

namespace alignd::server {

// Woken when a session has something new: an event in its log, a snapshot, a change
// of state, or a heartbeat tick. Called from the training thread or an RPC thread,
// with the session's notify lock held: implementations must be quick and must not
// add or remove listeners. RemoveListener waits for a running notification, so a
// listener may be destroyed right after removing itself.
class SessionListener {
 public:
  virtual ~SessionListener() = default;
  virtual void OnSessionUpdate() = 0;
};

class SessionObserver;

class Session {
 public:
  Session(v1::Session record, core::TrainerOptions options)
      : record_(record), options_(std::move(options)), name_(record.name()) {}

  const std::string& name() const { return name_; }
  v1::Session record() const {
    absl::MutexLock lock(&mu_);
    return record_;
  }
  v1::SessionState state() const {
    absl::MutexLock lock(&mu_);
    return record_.state();
  }
  int64_t last_seq() const {
    absl::MutexLock lock(&mu_);
    return record_.last_seq();
  }
  const core::TrainerOptions& options() const { return options_; }
  // True once DeleteSession removed it (open streams end).
  bool deleted() const { return deleted_.load(); }

  // The newest figures the engine reported (NaN until there are some), for /metrics.
  struct Latest {
    double loss = std::numeric_limits<double>::quiet_NaN();
    double accuracy = std::numeric_limits<double>::quiet_NaN();
    double nse = std::numeric_limits<double>::quiet_NaN();
    double eval_loss = std::numeric_limits<double>::quiet_NaN();
    double eval_error = std::numeric_limits<double>::quiet_NaN();
    double eval_nse = std::numeric_limits<double>::quiet_NaN();
    std::vector<double> update_angle;  // per hidden layer, degrees
  };
  Latest latest() const {
    absl::MutexLock lock(&mu_);
    return latest_;
  }

  void AddListener(SessionListener* l);
  void RemoveListener(SessionListener* l);
  // Wakes every listener (also used for heartbeats).
  void Notify();

 private:
  friend class SessionManager;
  friend class SessionObserver;
  enum class StopRequest { kNone, kPause, kCancel, kShutdown };

  absl::Mutex notify_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  v1::Session record_ ABSL_GUARDED_BY(mu_);
  std::vector<SessionListener*> listeners_ ABSL_GUARDED_BY(notify_mu_);
  Latest latest_ ABSL_GUARDED_BY(mu_);
  const core::TrainerOptions options_;
  const std::string name_;
  std::atomic<StopRequest> stop_{StopRequest::kNone};
  std::atomic<bool> deleted_{false};
};

struct SessionManagerOptions {
  int max_running = 2;              // worker threads
  int max_queued = 64;              // QUEUED sessions at most
  int max_sessions = 10000;         // stored sessions at most
  int64_t checkpoint_every = 1000;  // default when a session does not say
  int64_t max_layer_width = 100000;
  int64_t max_parameters = int64_t{1} << 28;  // weights of one network
  // Memory one session may need (core::EstimateTrainingBytes plus its data sets).
  int64_t max_session_bytes = int64_t{8} << 30;
};

class SessionManager {
 public:
  SessionManager(Storage* storage, DatasetStore* datasets, SessionManagerOptions options);
  ~SessionManager();  // Shutdown()

  // Loads every stored session and starts the workers (see the file comment).
  absl::Status Start();
  // Stops the workers: running sessions stop after their current step, checkpoint, and
  // are stored as QUEUED so that the next Start resumes them. Idempotent.
  void Shutdown();

  absl::StatusOr<v1::Session> Create(const v1::CreateSessionRequest& request);
  absl::StatusOr<std::shared_ptr<Session>> Find(const std::string& name);
  absl::StatusOr<v1::Session> Get(const std::string& name);
  // Sorted by name; state SESSION_STATE_UNSPECIFIED = all.
  std::vector<v1::Session> List(v1::SessionState state);
  absl::StatusOr<v1::Session> Pause(const std::string& name);
  absl::StatusOr<v1::Session> Resume(const std::string& name);
  absl::StatusOr<v1::Session> Cancel(const std::string& name);
  absl::Status Delete(const std::string& name);

  // True if a session that is not finished uses the data set.
  bool UsesDataset(const std::string& dataset);
  // Deletes a data set unless a session that is not finished uses it
  // (FailedPrecondition); atomic with respect to Create.
  absl::Status DeleteDataset(const std::string& name);

  Storage* storage() const { return storage_; }
  DatasetStore* datasets() const { return datasets_; }

  // True once Shutdown began (open streams end with UNAVAILABLE).
  bool stopping() {
    absl::MutexLock lock(&mu_);
    return stopping_;
  }

  // Blocks until no session is QUEUED or RUNNING (tests and tools).
  void WaitIdle();

 private:
  bool UsesDatasetLocked(const std::string& dataset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WorkerLoop();
  void RunSession(const std::shared_ptr<Session>& s);
  // Sets the state (and end_time for terminal ones) and persists it. Does not notify:
  // listeners must be woken with no manager lock held (Session::Notify).
  void SetState(Session& s, v1::SessionState state, const std::string& reason = "");
  absl::Status Persist(const Session& s);
  absl::Status Enqueue(const std::shared_ptr<Session>& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Storage* const storage_;
  DatasetStore* const datasets_;
  const SessionManagerOptions options_;

  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<Session>> queue_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_SESSION_MANAGER_H_
