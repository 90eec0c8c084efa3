// File: server/sessions/session_manager.h
// -----------------------------------------------------------------------------
// Training sessions: their records, their state machine, the bounded pool of
// worker threads that runs them, their metric logs, checkpoints and snapshots.
//
// States: QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED | STOPPED (by an experiment's
// early stopping), with PAUSED reachable
// from QUEUED and RUNNING and left by Resume (back to QUEUED). Any other transition
// is FailedPrecondition.
//
// A worker runs one session at a time on its own thread, plus the session's
// TrainingConfig.threads - 1 helper threads for its products; sessions start in queue
// order while their threads fit in max_threads.
// The engine calls back after every step (SessionRecorder); on metric steps and
// evaluations the session gets an event (seq 1, 2, 3, ...) in its in-memory ring, its
// watchers are woken, and the recorder's writer thread appends it to the log in
// storage: the worker does no I/O while it trains, and a slow reader never slows
// training or loses an event (it catches up from storage). Checkpoints are written
// every checkpoint_every steps and on pause and shutdown.
//
// Predict, Evaluate and GetSnapshot read a session's weights through Weights()/State():
// a network is built once per (session, step) and shared (networks_), since the same
// step always has the same weights (restarts are bit-identical).
//
// Lock order (absl::Mutex throughout; each lock is taken alone or after those left of it;
// docs/ARCHITECTURE.md, "Threads and locks"):
//   SessionManager::mu_ -> LiveSession::watchers_mu_ -> a stream's mu_ ->
//   LiveSession::mu_ -> MetricRing::mu_ -> cache_mu_, SessionRecorder::mu_, Storage's, Executor's.
// The manager never calls Notify() with mu_ held (watchers may call back into it).
//
// Restart (Start after a crash or a shutdown): every session that was QUEUED or
// RUNNING is queued again, resumes from its last checkpoint (or from step 0 without
// one) with bit-identical results, and its metric log is cut back to the
// checkpoint's step, so a step is never reported twice with different values.
//
// Thread-safe. Storage and the data set store must outlive the manager.
#ifndef ALIGND_SERVER_SESSIONS_SESSION_MANAGER_H_
#define ALIGND_SERVER_SESSIONS_SESSION_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "alignd/v1/sessions.pb.h"
#include "core/config.h"
#include "core/network.h"
#include "core/trainer.h"
#include "server/api/resource_names.h"
#include "server/sessions/cluster.h"
#include "server/sessions/dataset_store.h"
#include "server/sessions/live_session.h"
#include "server/storage/storage.h"

namespace alignd::server {

struct SessionManagerOptions {
  int max_running = 2;  // worker threads: sessions trained at once at most
  // Threads of the running sessions' products, summed (TrainingConfig.threads). A session
  // waits QUEUED until its threads fit; the queue is served in order (no overtaking, so
  // a wide session is never starved by narrow ones). A session asking for more than this
  // is refused at Create; one stored by a server that allowed more runs alone.
  int max_threads = 2;
  int max_queued = 64;              // QUEUED sessions at most
  int max_sessions = 10000;         // stored sessions at most
  int64_t checkpoint_every = 1000;  // default when a session does not say
  int64_t max_layer_width = 100000;
  int64_t max_parameters = int64_t{1} << 28;  // weights of one network
  // Memory one session may need (core::EstimateTrainingBytes plus its data sets).
  int64_t max_session_bytes = int64_t{8} << 30;
  // Per principal (role user; docs/DEPLOY.md): sessions QUEUED or RUNNING at once. 0: no limit.
  int quota_active_sessions = 0;
  // Replicas on a shared database (cluster.h): how long a claimed session's lease lasts
  // without a heartbeat (renewed every lease_ms / 4). Another replica takes the session
  // over that long after its holder stopped answering.
  int64_t lease_ms = 10000;
  // How long a worker with room waits between looks at the queue when nothing announced
  // a change (announcements wake it at once).
  int64_t claim_poll_ms = 500;
};

// Who asks for a session to be queued (Create, Resume), and the quota that applies.
struct Requester {
  std::string owner;   // the principal; empty with authentication off
  int max_active = 0;  // QUEUED + RUNNING sessions of `owner` at most; 0: no limit
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

  // Validates the request against its data sets (without building a network) and queues
  // the session.
  // The session belongs to `by.owner`; its request_id is `by.owner`'s (another principal's
  // retry with the same id is another session). ResourceExhausted over `by.max_active`.
  absl::StatusOr<v1::Session> Create(const v1::CreateSessionRequest& request,
                                     const Requester& by = {});
  // As Create, for a session of an experiment: its record names the experiment and group.
  absl::StatusOr<v1::Session> CreateMember(const v1::CreateSessionRequest& request,
                                           const Requester& by, const std::string& experiment,
                                           const std::string& group);
  // What Create would refuse `request` for, without creating anything (an experiment checks
  // every session's request before it creates the first).
  absl::Status CheckCreate(const v1::CreateSessionRequest& request);
  // ResourceExhausted, naming the flag, if `n` more queued sessions of `by` would not fit
  // now (--max_sessions, --max_queued, by's quota): an experiment asks before it makes any.
  absl::Status CheckRoom(int n, const Requester& by);
  // InvalidArgument for a malformed name, NotFound for an unknown one.
  absl::StatusOr<std::shared_ptr<LiveSession>> Find(const std::string& name);
  absl::StatusOr<v1::Session> Get(const std::string& name);
  // Sorted by name; state SESSION_STATE_UNSPECIFIED = all.
  std::vector<v1::Session> List(v1::SessionState state);
  // Pause and Cancel of a RUNNING session block until its worker has stopped (and, for
  // Pause, checkpointed): call them off gRPC's callback threads.
  absl::StatusOr<v1::Session> Pause(const std::string& name);
  absl::StatusOr<v1::Session> Resume(const std::string& name, const Requester& by = {});
  absl::StatusOr<v1::Session> Cancel(const std::string& name);
  absl::Status Delete(const std::string& name);

  // True if a session that is not finished uses the data set.
  bool UsesDataset(const std::string& dataset);
  // Deletes a data set unless a session that is not finished uses it
  // (FailedPrecondition); atomic with respect to Create. With `owner`, removes that owner
  // only, and the data set with its last owner (DatasetStore::Delete).
  absl::Status DeleteDataset(const std::string& name, const std::string& owner = "");

  const SessionManagerOptions& options() const { return options_; }
  Storage* storage() const { return storage_; }
  DatasetStore* datasets() const { return datasets_; }

  // A session's weights, as a network ready to Predict and Evaluate (immutable, shared),
  // the step they are from, and whether the network was trained on class labels.
  struct Served {
    std::shared_ptr<const core::Network> network;
    int64_t step = 0;
    int64_t epoch = 0;
    bool class_labels = false;
  };
  // WeightsRef::kLatest: the newest of the last snapshot and the checkpoint. NotFound if
  // there are none (or none at that step).
  absl::StatusOr<Served> Weights(const WeightsRef& ref);
  // The stored trainer state behind the same weights (GetSnapshot).
  absl::StatusOr<core::TrainerState> State(const WeightsRef& ref);
  // The state of a snapshot known to be stored at `step` (a snapshot stream's next one).
  absl::StatusOr<core::TrainerState> SnapshotState(const std::string& session, int64_t step) {
    return ReadState(session, step, /*checkpoint=*/false);
  }

  // Replicas: true if the session's stored log now ends before `seq` (a failover cut it
  // back to the checkpoint), with the local view refreshed so that its ring says so too.
  // False for one alignd alone, or if the log reaches `seq`.
  bool LogEndsBefore(LiveSession& s, int64_t seq);

  // True once Shutdown began (open streams end with UNAVAILABLE).
  // Lock-free: streams ask while they hold their own locks (see the lock order above).
  bool stopping() const { return stopping_.load(); }

  // Wakes the watchers of every session this process knows (the streams' heartbeat tick);
  // reads nothing (on replicas a List reads every row of the database).
  void NotifyAll();

  // Blocks until no session is QUEUED or RUNNING (tests and tools).
  void WaitIdle();

  // Experiments' early stopping (server/experiments/early_stopping.h): asked on the worker's
  // thread after every validation evaluation of a session that belongs to an experiment; a
  // reason ends the session STOPPED with it. Set before Start.
  using EarlyStopping =
      std::function<std::optional<std::string>(const v1::Session&, const core::EvalMetrics&)>;
  void SetEarlyStopping(EarlyStopping f) { early_stopping_ = std::move(f); }

 private:
  // Create's checks and the record a valid request becomes (session_validation.cc): QUEUED,
  // named, without its owner. InvalidArgument / NotFound / ResourceExhausted naming the field
  // or the flag.
  struct NewSession {
    v1::Session record;
    core::TrainerOptions options;
  };
  absl::StatusOr<NewSession> Validate(const v1::CreateSessionRequest& create);
  // The session's record made visible (and queued if QUEUED; PAUSED waits), under the checks
  // that must hold where no other Create can slip in (ids, limits, quota, its data sets).
  absl::StatusOr<v1::Session> Register(const v1::Session& record,
                                       const core::TrainerOptions& options,
                                       const std::string& request_key, const Requester& by);
  // The serialised trainer state at step 0 with `safetensors`' tensors in place of the drawn
  // ones (CreateSessionRequest.initial_weights). InvalidArgument names the tensor.
  absl::StatusOr<std::string> InitialState(const std::string& safetensors,
                                           const core::TrainerOptions& options,
                                           const v1::Session& record);
  bool UsesDatasetLocked(const std::string& dataset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WorkerLoop();
  void RunSession(const std::shared_ptr<LiveSession>& s, Storage* store);
  // The session's provenance (what runs it here, the data sets' digests), set and stored as
  // it starts running.
  void RecordProvenance(LiveSession& s, Storage* store);
  // Sets the state (and end_time for terminal ones) and persists it (to `store`, the
  // holder's fenced view on replicas; storage_ without). Does not notify: watchers must be
  // woken with no manager lock held (LiveSession::Notify).
  void SetState(LiveSession& s, v1::SessionState state, const std::string& reason = "",
                Storage* store = nullptr);

  // ---- Replicas on a shared database (session_cluster.cc; cluster_ != nullptr).
  absl::Status StartCluster();
  absl::StatusOr<v1::Session> CreateInCluster(const v1::Session& record,
                                              const core::TrainerOptions& options,
                                              const std::string& request_key, const Requester& by);
  absl::StatusOr<v1::Session> ChangeInCluster(const std::string& name, Cluster::Op op,
                                              const Requester& by);
  absl::Status DeleteInCluster(const std::shared_ptr<LiveSession>& s);
  void ClusterWorkerLoop();
  void HeartbeatLoop();
  // The local view of a session another replica may train: its record and its log's end
  // from the database row. Creates it if missing. The session held here is left alone.
  std::shared_ptr<LiveSession> Refresh(const SessionRow& row);
  // Re-reads one session (an announcement): refreshes it, or forgets it if it is gone.
  void RefreshByName(const std::string& name);
  void Resync();
  void OnLog(const std::string& name, int64_t seq);
  // The session is gone from the database: open streams end. With `only`, if the session
  // known by that name is still that one.
  void Forget(const std::string& name, const LiveSession* only = nullptr);
  absl::Status Enqueue(const std::shared_ptr<LiveSession>& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ResourceExhausted if `by.owner` already has `by.max_active` sessions queued or running.
  absl::Status CheckQuota(const Requester& by) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets the networks built for a deleted session.
  void DropNetworks(const std::string& session);
  // Where `ref`'s weights are stored: the step, and whether that is the checkpoint.
  absl::StatusOr<std::pair<int64_t, bool>> Resolve(const WeightsRef& ref);
  absl::StatusOr<core::TrainerState> ReadState(const std::string& session, int64_t step,
                                               bool checkpoint);

  Storage* const storage_;
  DatasetStore* const datasets_;
  const SessionManagerOptions options_;
  EarlyStopping early_stopping_;
  Cluster* const cluster_;  // storage_->cluster(): nullptr for one alignd alone

  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<LiveSession>> sessions_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<LiveSession>> queue_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int threads_in_use_ ABSL_GUARDED_BY(mu_) = 0;  // summed over the running sessions
  // True if the next session in the queue may start now.
  bool HeadCanStart() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Create's request ids (idempotent retries): owner + '/' + id -> session name, the newest
  // kMaxRequestIds.
  static constexpr size_t kMaxRequestIds = 10000;
  std::map<std::string, std::string> requests_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> request_order_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stopping_{false};  // written under mu_
  std::vector<std::thread> workers_;
  // Replicas: announcements since a worker last looked (wakes idle workers), the newest
  // row version read, the heartbeat's thread and its early wake-up.
  int64_t claim_hint_ ABSL_GUARDED_BY(mu_) = 0;
  bool renew_now_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex claim_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // one claim at a time in this process
  absl::Mutex sync_mu_ ABSL_ACQUIRED_BEFORE(mu_);   // one resync at a time
  // One refresh of the local view at a time (Refresh, OnLog, a claim's, a run's end):
  // guards each LiveSession's row_version_.
  absl::Mutex refresh_mu_ ABSL_ACQUIRED_AFTER(claim_mu_, sync_mu_) ABSL_ACQUIRED_BEFORE(mu_);
  int64_t cursor_ ABSL_GUARDED_BY(sync_mu_) = 0;  // Cluster::Changes's, for the next resync
  // The sessions a worker of this process runs now (never claimed again meanwhile).
  std::set<std::string> in_run_ ABSL_GUARDED_BY(mu_);
  std::thread heartbeat_;

  // Networks built for Weights(), keyed by "{session}@{step}"; least recently used out.
  static constexpr size_t kMaxNetworks = 4;
  struct CachedNetwork {
    Served served;
    uint64_t last_use = 0;
  };
  absl::Mutex cache_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::map<std::string, CachedNetwork> networks_ ABSL_GUARDED_BY(cache_mu_);
  uint64_t clock_ ABSL_GUARDED_BY(cache_mu_) = 0;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_SESSIONS_SESSION_MANAGER_H_
