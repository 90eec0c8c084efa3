// File: server/sessions/session_recorder.h
// -----------------------------------------------------------------------------
// SessionRecorder: what the engine reports during a run, kept. A core::TrainingObserver
// on the worker thread that turns steps and evaluations into metric events (pushed into
// the session's MetricRing and the watchers woken at once), and takes checkpoints and
// snapshots — and hands every write to its own writer thread, so the training thread
// does no I/O while it trains.
//
// The writer stores in the order things happened: a checkpoint is stored after every
// event before it, so a restart from it finds the log complete up to its step. Events
// are appended in batches (one transaction per batch); snapshots are stored in order,
// after the events before them.
//
// Checkpoints are kept by count, not queued: at most one waits (besides the one being
// written), and a newer one replaces it. A fast session takes checkpoints faster than
// they can be stored (two fsyncs each); what a restart needs is the newest, so the
// writer stores the newest one there is whenever it is free, and the training thread
// never waits for a checkpoint. The state is exported into a buffer the writer hands
// back (three in all: filling, waiting, writing), so a checkpoint allocates nothing.
// Once the session is asked to stop (pause, cancel, shutdown) a waiting checkpoint is
// not started: the run's final checkpoint (Checkpoint(), for pause and shutdown)
// replaces it, or nothing does (DiscardCheckpoint(), for cancel and failure).
//
// Memory is bounded by count: three states for checkpoints, kMaxQueuedSnapshots waiting
// snapshots, and kMaxQueuedEventBytes of waiting events. The worker waits only when
// events or snapshots are that far behind, and at the end of a run (Flush).
//
// A failed write stops the run: the next OnStep returns false and status() says why.
#ifndef ALIGND_SERVER_SESSIONS_SESSION_RECORDER_H_
#define ALIGND_SERVER_SESSIONS_SESSION_RECORDER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/trainer.h"
#include "server/sessions/live_session.h"
#include "server/storage/storage.h"

namespace alignd::server {

class SessionRecorder : public core::TrainingObserver {
 public:
  // Back-pressure bounds: events waiting to be appended (their encoded size), snapshots
  // waiting to be stored. Checkpoints need none (one waits at most).
  static constexpr int64_t kMaxQueuedEventBytes = int64_t{8} << 20;
  static constexpr int kMaxQueuedSnapshots = 2;

  // `session`, `storage` and `trainer` must outlive the recorder. Checkpoints every
  // checkpoint_every steps and snapshots every snapshot_every (0: never), from the record.
  // batch_every: the writer gathers events for this long between writes (replicas on a
  // shared database: a transaction per batch; 0: writes as soon as it is free).
  SessionRecorder(LiveSession* session, Storage* storage, core::Trainer* trainer,
                  absl::Duration batch_every = absl::ZeroDuration());
  ~SessionRecorder() override;  // Flush()

  bool OnStep(const core::StepMetrics& m) override;
  bool OnEvaluation(const core::EvalMetrics& m) override;

  // Asked after each validation evaluation is logged (on the worker's thread): a reason
  // stops the run (StopRequest::kStopEarly) unless another stop was asked first.
  using EarlyStop =
      std::function<std::optional<std::string>(const v1::Session&, const core::EvalMetrics&)>;
  void SetEarlyStop(EarlyStop early_stop) { early_stop_ = std::move(early_stop); }
  // Why the early stop asked for it ("" if it did not).
  const std::string& stop_reason() const { return stop_reason_; }

  // The run's final checkpoint (with the session record after it): the trainer's state
  // now replaces a waiting checkpoint, and is stored even though a stop was asked for.
  // Nothing new if the newest checkpoint taken is of this step already.
  void Checkpoint();
  // A waiting checkpoint is not needed (the run was cancelled or failed): dropped.
  void DiscardCheckpoint();
  // Queue a snapshot of the trainer's state now.
  void Snapshot();
  // Waits until everything queued and the final checkpoint are stored; the first error
  // of any write.
  absl::Status Flush();
  absl::Status status();

 private:
  struct Task {
    enum class Kind { kMetric, kSnapshot } kind;
    StoredMetric metric;
    core::TrainerState state;  // kSnapshot
    int64_t bytes = 0;         // kMetric: the event's encoded size
  };
  void TakeCheckpoint(bool final);
  // Whether the waiting checkpoint is one to store now.
  bool CheckpointDue() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Enqueue(Task task);
  void Append(v1::MetricEvent& e, int64_t step);
  void WriterLoop();
  absl::Status Write(std::vector<Task>& batch, bool checkpoint);
  void SetProgress(int64_t step, int64_t epoch);

  const absl::Duration batch_every_;
  LiveSession* const s_;
  Storage* const storage_;
  core::Trainer* const trainer_;
  const int64_t checkpoint_every_, snapshot_every_;
  int64_t last_seq_;                   // worker thread only
  EarlyStop early_stop_;               // worker thread only
  std::string stop_reason_;            // worker thread only
  int64_t last_checkpoint_step_ = -1;  // worker thread only: the newest taken
  core::TrainerState filling_;         // worker thread only: exported into, then swapped
  core::TrainerState writing_state_;   // writer thread only: the checkpoint being stored

  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_event_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int queued_snapshots_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t taken_seq_ ABSL_GUARDED_BY(mu_);  // the newest event the writer has taken
  // The waiting checkpoint: its state, the last event before it, and whether it is the
  // run's final one. The state's buffers stay for reuse when nothing waits.
  core::TrainerState pending_ ABSL_GUARDED_BY(mu_);
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool pending_final_ ABSL_GUARDED_BY(mu_) = false;
  int64_t pending_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool flushing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_write_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::thread writer_;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_SESSIONS_SESSION_RECORDER_H_
