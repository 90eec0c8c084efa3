// File: server/session_recorder.cc
#include "server/session_recorder.h"

#include <utility>

#include "server/proto_convert.h"

namespace alignd::server {
namespace {

int64_t StateBytes(const core::TrainerState& st) {
  int64_t n = 0;
  for (const auto* v : {&st.weights, &st.biases, &st.feedback, &st.weight_masks, &st.feedback_masks,
                        &st.moments1, &st.moments2})
    for (const core::Matrix& m : *v) n += 4 * static_cast<int64_t>(m.size());
  return n + 4 * static_cast<int64_t>(st.permutation.size());
}

}  // namespace

SessionRecorder::SessionRecorder(LiveSession* session, Storage* storage, core::Trainer* trainer)
    : s_(session),
      storage_(storage),
      trainer_(trainer),
      checkpoint_every_(session->record().checkpoint_every()),
      snapshot_every_(session->record().snapshot_every()),
      last_seq_(session->metrics().last_seq()) {
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
    {
      absl::MutexLock lock(&s_->mu_);
      LiveSession::Latest& l = s_->latest_;
      l.loss = m.loss;
      l.accuracy = m.accuracy;
      l.nse = m.nse;
      l.update_angle.clear();
      for (const auto& a : m.alignment) l.update_angle.push_back(a.update_angle_mean);
    }
    news = true;
  }
  SetProgress(m.step, m.epoch);
  s_->steps_trained_.fetch_add(1, std::memory_order_relaxed);
  if (checkpoint_every_ > 0 && m.step % checkpoint_every_ == 0) Checkpoint();
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
  {
    absl::MutexLock lock(&s_->mu_);
    s_->latest_.eval_loss = m.loss;
    s_->latest_.eval_error = m.error_rate;
    s_->latest_.eval_nse = m.nse;
  }
  SetProgress(-1, -1);
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
  s_->metrics().Push(std::make_shared<const v1::MetricEvent>(std::move(e)));
  Enqueue(std::move(t));
}

void SessionRecorder::Checkpoint() {
  SetProgress(trainer_->step(), trainer_->epoch());
  Task t;
  t.kind = Task::Kind::kCheckpoint;
  t.state = trainer_->ExportState();
  t.bytes = StateBytes(t.state);
  Enqueue(std::move(t));
}

void SessionRecorder::Snapshot() {
  Task t;
  t.kind = Task::Kind::kSnapshot;
  t.state = trainer_->ExportState();
  t.bytes = StateBytes(t.state);
  Enqueue(std::move(t));
}

void SessionRecorder::Enqueue(Task task) {
  absl::MutexLock lock(&mu_);
  // Back-pressure: wait while the writer is far behind (never with an empty queue, so a
  // single state larger than the bound still goes).
  mu_.Await(absl::Condition(
      +[](SessionRecorder* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
        return r->queue_.empty() || r->queued_bytes_ < kMaxQueuedBytes;
      },
      this));
  queued_bytes_ += task.bytes;
  queue_.push_back(std::move(task));
}

absl::Status SessionRecorder::Flush() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](SessionRecorder* r)
           ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) { return r->queue_.empty() && !r->writing_; },
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
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](SessionRecorder* r)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) { return r->stop_ || !r->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // stop_, nothing left
      // Every event queued, up to and including the first checkpoint or snapshot.
      while (!queue_.empty()) {
        const bool state = queue_.front().kind != Task::Kind::kMetric;
        queued_bytes_ -= queue_.front().bytes;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
        if (state) break;
      }
      writing_ = true;
    }
    const absl::Status st = status().ok() ? Write(batch) : absl::OkStatus();
    absl::MutexLock lock(&mu_);
    status_.Update(st);
    writing_ = false;
  }
}

absl::Status SessionRecorder::Write(std::vector<Task>& batch) {
  std::vector<StoredMetric> events;
  for (Task& t : batch)
    if (t.kind == Task::Kind::kMetric) events.push_back(std::move(t.metric));
  if (!events.empty()) {
    if (absl::Status st = storage_->AppendMetrics(s_->name(), events); !st.ok()) return st;
    s_->metrics().MarkStored(events.back().event.seq());
  }
  const Task& last = batch.back();
  if (last.kind == Task::Kind::kCheckpoint) {
    // The checkpoint first, then the record that points past it.
    StoredState stored{last.state.step, core::SerializeState(last.state)};
    if (absl::Status st = storage_->PutCheckpoint(s_->name(), stored); !st.ok()) return st;
    v1::Session record = s_->record();
    // The stored record describes the checkpoint; the live one may be ahead.
    record.set_step(last.state.step);
    record.set_epoch(last.state.epoch);
    return storage_->PutSession(record);
  }
  if (last.kind == Task::Kind::kSnapshot) {
    StoredState stored{last.state.step, core::SerializeState(last.state)};
    if (absl::Status st = storage_->PutSnapshot(s_->name(), stored); !st.ok()) return st;
    s_->snapshots_stored_.fetch_add(1);
    s_->Notify();  // snapshot streams
  }
  return absl::OkStatus();
}

}  // namespace alignd::server
