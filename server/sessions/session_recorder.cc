// File: server/sessions/session_recorder.cc
#include "server/sessions/session_recorder.h"

#include <utility>

#include "server/api/proto_convert.h"

namespace alignd::server {

SessionRecorder::SessionRecorder(LiveSession* session, Storage* storage, core::Trainer* trainer,
                                 absl::Duration batch_every)
    : batch_every_(batch_every),
      s_(session),
      storage_(storage),
      trainer_(trainer),
      checkpoint_every_(session->record().checkpoint_every()),
      snapshot_every_(session->record().snapshot_every()),
      last_seq_(session->metrics().last_seq()),
      taken_seq_(last_seq_) {
  writer_ = std::thread([this] { WriterLoop(); });
}

SessionRecorder::~SessionRecorder() {
  Flush().IgnoreError();
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  writer_.join();
}

void SessionRecorder::SetProgress(int64_t step, int64_t epoch) {
  absl::MutexLock lock(&s_->mu_);
  if (step >= 0) s_->record_.set_step(step);
  if (epoch >= 0) s_->record_.set_epoch(epoch);
  s_->record_.set_last_seq(last_seq_);
}

bool SessionRecorder::OnStep(const core::StepMetrics& m) {
  bool news = false;
  if (m.has_details) {
    v1::MetricEvent e;
    ToProto(m, e.mutable_step());
    Append(e, m.step);
    news = true;
  }
  SetProgress(m.step, m.epoch);
  s_->steps_trained_.fetch_add(1, std::memory_order_relaxed);
  if (checkpoint_every_ > 0 && m.step % checkpoint_every_ == 0) TakeCheckpoint(/*final=*/false);
  if (snapshot_every_ > 0 && m.step % snapshot_every_ == 0) {
    Snapshot();
    news = true;  // watchers of snapshots look once it is stored; the writer wakes them
  }
  if (news) s_->Notify();
  return status().ok() && s_->stop_.load() == LiveSession::StopRequest::kNone;
}

bool SessionRecorder::OnEvaluation(const core::EvalMetrics& m) {
  v1::MetricEvent e;
  ToProto(m, e.mutable_eval());
  Append(e, m.step);
  SetProgress(-1, -1);
  if (m.validation && early_stop_ && s_->stop_.load() == LiveSession::StopRequest::kNone) {
    if (std::optional<std::string> why = early_stop_(s_->record(), m)) {
      stop_reason_ = *std::move(why);
      s_->AskStop(LiveSession::StopRequest::kStopEarly);
    }
  }
  s_->Notify();
  return status().ok() && s_->stop_.load() == LiveSession::StopRequest::kNone;
}

void SessionRecorder::Append(v1::MetricEvent& e, int64_t step) {
  e.set_seq(++last_seq_);
  *e.mutable_wall_time() = Now();
  Task t;
  t.kind = Task::Kind::kMetric;
  t.metric.step = step;
  t.metric.event = e;
  t.bytes = static_cast<int64_t>(e.ByteSizeLong());
  auto pushed = std::make_shared<const v1::MetricEvent>(std::move(e));
  s_->metrics().Push(pushed);
  {
    // The record's newest figures and last_seq move together, after the event is in the
    // ring: a ListMetrics up to last_seq finds the figures' event.
    absl::MutexLock lock(&s_->mu_);
    s_->record_.set_last_seq(last_seq_);
    if (pushed->has_step()) *s_->record_.mutable_latest_step() = pushed->step();
    if (pushed->has_eval()) *s_->record_.mutable_latest_eval() = pushed->eval();
  }
  Enqueue(std::move(t));
}

void SessionRecorder::Checkpoint() { TakeCheckpoint(/*final=*/true); }

void SessionRecorder::TakeCheckpoint(bool final) {
  SetProgress(trainer_->step(), trainer_->epoch());
  if (trainer_->step() == last_checkpoint_step_) {
    // The same state again (the run's final checkpoint at a checkpoint step): the one
    // taken stands, waiting or stored; waiting, it is now the final one.
    absl::MutexLock lock(&mu_);
    if (has_pending_) pending_final_ = pending_final_ || final;
    return;
  }
  last_checkpoint_step_ = trainer_->step();
  // Exported outside the lock, into the buffer the last swap handed back.
  trainer_->ExportState(&filling_);
  absl::MutexLock lock(&mu_);
  // A checkpoint still waiting is replaced (its buffer is the next one filled).
  std::swap(filling_, pending_);
  has_pending_ = true;
  pending_final_ = final;
  pending_seq_ = last_seq_;
}

void SessionRecorder::DiscardCheckpoint() {
  absl::MutexLock lock(&mu_);
  has_pending_ = false;
}

bool SessionRecorder::CheckpointDue() const {
  // Once a stop is asked for, only the final checkpoint is worth storing.
  return has_pending_ && (pending_final_ || s_->stop_.load() == LiveSession::StopRequest::kNone);
}

void SessionRecorder::Snapshot() {
  Task t;
  t.kind = Task::Kind::kSnapshot;
  t.state = trainer_->ExportState();
  Enqueue(std::move(t));
}

void SessionRecorder::Enqueue(Task task) {
  absl::MutexLock lock(&mu_);
  // Back-pressure: wait while the writer is far behind (never with no event queued, so a
  // single event larger than the bound still goes).
  if (task.kind == Task::Kind::kMetric) {
    mu_.Await(absl::Condition(
        +[](SessionRecorder* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
          return r->queued_event_bytes_ == 0 || r->queued_event_bytes_ < kMaxQueuedEventBytes;
        },
        this));
    queued_event_bytes_ += task.bytes;
  } else {
    mu_.Await(absl::Condition(
        +[](SessionRecorder* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
          return r->queued_snapshots_ < kMaxQueuedSnapshots;
        },
        this));
    ++queued_snapshots_;
  }
  queue_.push_back(std::move(task));
}

absl::Status SessionRecorder::Flush() {
  absl::MutexLock lock(&mu_);
  flushing_ = true;  // the writer stops gathering: what is queued goes now
  mu_.Await(absl::Condition(
      +[](SessionRecorder* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
        return r->queue_.empty() && !r->writing_ && !r->CheckpointDue();
      },
      this));
  return status_;
}

absl::Status SessionRecorder::status() {
  absl::MutexLock lock(&mu_);
  return status_;
}

void SessionRecorder::WriterLoop() {
  while (true) {
    std::vector<Task> batch;
    bool checkpoint = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](SessionRecorder* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
            return r->stop_ || !r->queue_.empty() || r->CheckpointDue();
          },
          this));
      if (queue_.empty() && !CheckpointDue()) return;  // stop_, nothing left
      // Gathering: one write per batch_every_ at most (a transaction on a shared database
      // per batch, not per event), unless a flush or the end wants it now.
      if (batch_every_ > absl::ZeroDuration()) {
        mu_.AwaitWithDeadline(absl::Condition(
                                  +[](SessionRecorder* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
                                    return r->stop_ || r->flushing_;
                                  },
                                  this),
                              last_write_ + batch_every_);
      }
      // Every event queued, up to and including the first snapshot.
      while (!queue_.empty()) {
        Task& t = queue_.front();
        const bool snapshot = t.kind == Task::Kind::kSnapshot;
        if (snapshot) {
          --queued_snapshots_;
        } else {
          queued_event_bytes_ -= t.bytes;
          taken_seq_ = t.metric.event.seq();
        }
        batch.push_back(std::move(t));
        queue_.pop_front();
        if (snapshot) break;
      }
      // The newest checkpoint, once every event before it is in this batch or stored. Its
      // buffer is swapped for the one last written, which the worker fills next.
      if (CheckpointDue() && pending_seq_ <= taken_seq_) {
        std::swap(pending_, writing_state_);
        has_pending_ = false;
        checkpoint = true;
      }
      writing_ = true;
    }
    const absl::Status st = status().ok() ? Write(batch, checkpoint) : absl::OkStatus();
    absl::MutexLock lock(&mu_);
    last_write_ = absl::Now();
    status_.Update(st);
    writing_ = false;
  }
}

absl::Status SessionRecorder::Write(std::vector<Task>& batch, bool checkpoint) {
  std::vector<StoredMetric> events;
  for (Task& t : batch)
    if (t.kind == Task::Kind::kMetric) events.push_back(std::move(t.metric));
  if (!events.empty()) {
    if (absl::Status st = storage_->AppendMetrics(s_->name(), events); !st.ok()) return st;
    s_->metrics().MarkStored(events.back().event.seq());
  }
  if (checkpoint) {
    // The checkpoint first, then the record that points past it.
    const core::TrainerState& state = writing_state_;
    StoredState stored{state.step, core::SerializeState(state)};
    if (absl::Status st = storage_->PutCheckpoint(s_->name(), stored); !st.ok()) return st;
    v1::Session record = s_->record();
    // The stored record describes the checkpoint; the live one may be ahead.
    record.set_step(state.step);
    record.set_epoch(state.epoch);
    if (absl::Status st = storage_->PutSession(record); !st.ok()) return st;
  }
  if (!batch.empty() && batch.back().kind == Task::Kind::kSnapshot) {
    const core::TrainerState& state = batch.back().state;
    StoredState stored{state.step, core::SerializeState(state)};
    if (absl::Status st = storage_->PutSnapshot(s_->name(), stored); !st.ok()) return st;
    s_->snapshots_stored_.fetch_add(1);
    s_->Notify();  // snapshot streams
  }
  return absl::OkStatus();
}

}  // namespace alignd::server
