// File: server/sessions/session_workers.cc
// -----------------------------------------------------------------------------
// The worker pool of one alignd: sessions start in queue order while their threads fit in
// --max_threads (no overtaking), and a worker runs one session at a time: its trainer from
// the checkpoint, its recorder, and the state it ends in. (Replicas claim from the database
// instead: session_cluster.cc.)
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/version.h"
#include "core/cpu.h"
#include "core/gemm.h"
#include "core/trainer.h"
#include "server/api/proto_convert.h"
#include "server/net/log.h"
#include "server/sessions/session_manager.h"
#include "server/sessions/session_recorder.h"

namespace alignd::server {

// ---- The workers ------------------------------------------------------------------------

bool SessionManager::HeadCanStart() {
  if (queue_.empty()) return false;
  // Pause and Cancel take a session out of the queue, so the head is QUEUED; options()
  // is immutable (no lock).
  const int threads = queue_.front()->options().threads;
  return threads_in_use_ == 0 || threads_in_use_ + threads <= options_.max_threads;
}

void SessionManager::WorkerLoop() {
  core::EnableFlushToZero();
  if (cluster_ != nullptr) return ClusterWorkerLoop();
  while (true) {
    std::shared_ptr<LiveSession> s;
    int threads = 0;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](SessionManager* m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(m->mu_) {
            return m->stopping_.load() || m->HeadCanStart();
          },
          this));
      if (stopping_) return;
      s = queue_.front();
      queue_.pop_front();
      if (s->state() != v1::SESSION_STATE_QUEUED) continue;  // paused or cancelled while queued
      ++running_;
      threads = s->options().threads;
      threads_in_use_ += threads;
      s->stop_ = LiveSession::StopRequest::kNone;
      SetState(*s, v1::SESSION_STATE_RUNNING);
    }
    s->Notify();
    // Nothing a session does may take the process down: an allocation that fails (or
    // anything else thrown) fails this session, with the reason, and only it. FAILED
    // is terminal, so a restart does not run it again.
    try {
      RunSession(s, storage_);
    } catch (const std::bad_alloc&) {
      SetState(*s, v1::SESSION_STATE_FAILED,
               "out of memory while training (the machine could not provide what "
               "the session needed; lower batch_size or the network's size)");
    } catch (const std::exception& e) {
      SetState(*s, v1::SESSION_STATE_FAILED,
               absl::StrCat("internal error while training: ", e.what()));
    }
    s->Notify();
    absl::MutexLock lock(&mu_);
    --running_;
    threads_in_use_ -= threads;
  }
}

void SessionManager::RecordProvenance(LiveSession& s, Storage* store) {
  v1::Provenance p;
  p.set_alignd_version(ALIGND_VERSION);
  p.set_revision(ALIGND_REVISION);
  const core::ComputeInfo& compute = core::DescribeCompute();
  p.set_compute_library(compute.library);
  p.set_isa(compute.isa);
  p.set_cpu_model(compute.cpu_model);
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) p.set_host(host);
  p.set_threads(std::max(1, s.options().threads));
  const v1::Session r = s.record();
  for (const std::string& d : {r.train_dataset(), r.eval_dataset()}) {
    if (d.empty()) continue;
    if (auto meta = datasets_->Get(d); meta.ok()) (*p.mutable_dataset_sha256())[d] = meta->sha256();
  }
  {
    absl::MutexLock lock(&s.mu_);
    *s.record_.mutable_provenance() = std::move(p);
  }
  store->PutSession(s.record()).IgnoreError();  // as SetState: the next write carries it
}

void SessionManager::RunSession(const std::shared_ptr<LiveSession>& s, Storage* store) {
  RecordProvenance(*s, store);
  const v1::Session r = s->record();
  auto fail = [&](const absl::Status& st) {
    // Replicas: a lost lease (ABORTED) or a database away (UNAVAILABLE) is no failure of the
    // session: this process stops it and writes nothing; the database's state stands, and a
    // replica resumes it from its checkpoint once the lease has run out.
    if (cluster_ != nullptr && (absl::IsAborted(st) || absl::IsUnavailable(st) ||
                                s->stop_.load() == LiveSession::StopRequest::kLeaseLost)) {
      LogWarn(
          "training stopped: this replica may not write the session now; its lease runs "
          "out and a replica resumes it from its checkpoint",
          {{"session", s->name()}, {"error", std::string(st.message())}});
      return;
    }
    SetState(*s, v1::SESSION_STATE_FAILED, std::string(st.message()), store);
  };
  auto train = datasets_->Load(r.train_dataset());
  if (!train.ok()) return fail(train.status());
  std::shared_ptr<const core::Dataset> eval;
  if (!r.eval_dataset().empty()) {
    auto e = datasets_->Load(r.eval_dataset());
    if (!e.ok()) return fail(e.status());
    eval = *e;
  }
  auto trainer = core::Trainer::Create(s->options(), *train, eval);
  if (!trainer.ok()) return fail(trainer.status());
  // No checkpoint: from step 0. One that cannot be read now (the database away, a file
  // gone) is no "none": starting over would put steps from 0 after a log cut back to it.
  auto checkpoint = storage_->GetCheckpoint(s->name());
  if (!checkpoint.ok() && !absl::IsNotFound(checkpoint.status())) return fail(checkpoint.status());
  if (checkpoint.ok()) {
    auto state = core::ParseState(checkpoint->bytes);
    if (!state.ok())
      return fail(absl::DataLossError(absl::StrCat("checkpoint: ", state.status().message())));
    if (absl::Status st = (*trainer)->ImportState(*state); !st.ok()) return fail(st);
    // The log is cut back to the checkpoint on restart; if its last event is the
    // evaluation at the checkpoint's step, that evaluation was made: not again.
    if (r.last_seq() > 0) {
      MetricRing::Where where;
      std::shared_ptr<const v1::MetricEvent> last = s->metrics().Get(r.last_seq(), &where);
      if (last == nullptr) {
        auto read = storage_->ReadMetrics(r.name(), r.last_seq(), 1);
        if (read.ok() && !read->empty())
          last = std::make_shared<const v1::MetricEvent>(std::move(read->back()));
      }
      if (last != nullptr && last->has_eval() && last->eval().step() == (*trainer)->step()) {
        // Validation comes first: a last event on it leaves the eval set's to make.
        if (last->eval().validation() && eval != nullptr && eval->size() > 0)
          (*trainer)->MarkValidated();
        else
          (*trainer)->MarkEvaluated();
      }
    }
  }
  absl::Status st;
  bool done = false;
  std::string stop_reason;
  LiveSession::StopRequest stop = LiveSession::StopRequest::kNone;  // as the run ended
  {
    // Replicas: a metric batch is a transaction on the shared database, so the writer
    // gathers 20 ms of events (streams on this replica read the ring at once; elsewhere
    // they see each batch as it commits).
    SessionRecorder recorder(s.get(), store, trainer->get(),
                             cluster_ != nullptr ? absl::Milliseconds(20) : absl::ZeroDuration());
    if (early_stopping_ && !r.experiment().empty()) recorder.SetEarlyStop(early_stopping_);
    if (s->stop_.load() == LiveSession::StopRequest::kNone) st = (*trainer)->Run(&recorder);
    done = st.ok() && (*trainer)->done();
    stop = s->stop_.load();
    // Finished: a checkpoint and a final snapshot. Paused or shut down: a checkpoint to
    // resume from (it replaces one still waiting). Cancelled or failed: nothing more, and
    // a checkpoint still waiting is not needed either (only the events are flushed).
    if (stop == LiveSession::StopRequest::kLeaseLost) {
      recorder.DiscardCheckpoint();  // its writes would be refused: nothing more is tried
    } else if (st.ok() && (done || stop == LiveSession::StopRequest::kPause ||
                           stop == LiveSession::StopRequest::kShutdown ||
                           stop == LiveSession::StopRequest::kStopEarly)) {
      // Stopped early, it keeps its weights as a finished session does (exports, Predict).
      recorder.Checkpoint();
      if (done || stop == LiveSession::StopRequest::kStopEarly) recorder.Snapshot();
    } else {
      recorder.DiscardCheckpoint();
    }
    const absl::Status written = recorder.Flush();
    if (st.ok()) st = written;
    stop_reason = recorder.stop_reason();
  }
  if (s->stop_.load() == LiveSession::StopRequest::kLeaseLost) return;
  if (!st.ok()) return fail(st);
  if (done) return SetState(*s, v1::SESSION_STATE_SUCCEEDED, "", store);
  // Stopped early, it ends STOPPED: a pause, cancel or shutdown asked while it was checkpointing
  // does not undo the decision (which would not be made again at that rung).
  if (stop == LiveSession::StopRequest::kStopEarly)
    return SetState(*s, v1::SESSION_STATE_STOPPED, stop_reason, store);
  switch (s->stop_.load()) {
    case LiveSession::StopRequest::kCancel:
      return SetState(*s, v1::SESSION_STATE_CANCELLED, "", store);
    case LiveSession::StopRequest::kPause:
      return SetState(*s, v1::SESSION_STATE_PAUSED, "", store);
    case LiveSession::StopRequest::kStopEarly:
      return SetState(*s, v1::SESSION_STATE_STOPPED, stop_reason, store);
    default:
      // Shutdown: stored as QUEUED, so that the next start (or another replica, at once)
      // resumes from this checkpoint.
      return SetState(*s, v1::SESSION_STATE_QUEUED, "", store);
  }
}

}  // namespace alignd::server
