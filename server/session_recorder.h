// File: server/session_recorder.h
// -----------------------------------------------------------------------------
// SessionRecorder: what the engine reports during a run, kept. A core::TrainingObserver
// on the worker thread that turns steps and evaluations into metric events (pushed into
// the session's MetricRing and the watchers woken at once), and takes checkpoints and
// snapshots — and hands every write to its own writer thread, so the training thread
// does no I/O while it trains.
//
// The writer stores in the order things happened: a checkpoint is stored after every
// event before it, so a restart from it finds the log complete up to its step. Events
// are appended in batches (one transaction per batch). The worker waits only when the
// writer is far behind (kMaxQueuedBytes) and at the end of a run (Flush).
//
// A failed write stops the run: the next OnStep returns false and status() says why.
#ifndef ALIGND_SERVER_SESSION_RECORDER_H_
#define ALIGND_SERVER_SESSION_RECORDER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "core/trainer.h"
#include "server/live_session.h"
#include "server/storage.h"

namespace alignd::server {

class SessionRecorder : public core::TrainingObserver {
 public:
  static constexpr int64_t kMaxQueuedBytes = int64_t{256} << 20;

  // `session`, `storage` and `trainer` must outlive the recorder. Checkpoints every
  // checkpoint_every steps and snapshots every snapshot_every (0: never), from the record.
  SessionRecorder(LiveSession* session, Storage* storage, core::Trainer* trainer);
  ~SessionRecorder() override;  // Flush()

  bool OnStep(const core::StepMetrics& m) override;
  bool OnEvaluation(const core::EvalMetrics& m) override;

  // Queue a checkpoint (with the session record after it) or a snapshot of the trainer's
  // state now.
  void Checkpoint();
  void Snapshot();
  // Waits until everything queued is stored; the first error of any write.
  absl::Status Flush();
  absl::Status status();

 private:
  struct Task {
    enum class Kind { kMetric, kCheckpoint, kSnapshot } kind;
    StoredMetric metric;
    core::TrainerState state;
    int64_t bytes = 0;
  };
  void Enqueue(Task task);
  void Append(v1::MetricEvent& e, int64_t step);
  void WriterLoop();
  absl::Status Write(std::vector<Task>& batch);
  void SetProgress(int64_t step, int64_t epoch);

  LiveSession* const s_;
  Storage* const storage_;
  core::Trainer* const trainer_;
  const int64_t checkpoint_every_, snapshot_every_;
  int64_t last_seq_;  // worker thread only

  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::thread writer_;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_SESSION_RECORDER_H_
