// File: server/session_manager.cc
#include "server/session_manager.h"

#include <algorithm>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/cpu.h"
#include "core/status_macros.h"
#include "core/trainer.h"
#include "google/protobuf/util/time_util.h"
#include "server/proto_convert.h"
#include "server/resource_names.h"

namespace alignd::server {
namespace {

bool IsTerminal(v1::SessionState s) {
  return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED;
}

std::string NewSessionId() {
  static std::mt19937_64 rng(std::random_device{}());
  static absl::Mutex mu;
  absl::MutexLock lock(&mu);
  return absl::StrFormat("%012x", rng() & 0xffffffffffffULL);
}

std::string IdOf(const std::string& name) { return name.substr(name.find('/') + 1); }

absl::Status Illegal(const Session& s, v1::SessionState from, const char* op) {
  return absl::FailedPreconditionError(
      absl::StrCat("cannot ", op, " ", s.name(), ": it is ", v1::SessionState_Name(from)));
}

}  // namespace

void Session::AddListener(SessionListener* l) {
  absl::MutexLock lock(&notify_mu_);
  listeners_.push_back(l);
}

void Session::RemoveListener(SessionListener* l) {
  absl::MutexLock lock(&notify_mu_);
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), l), listeners_.end());
}

void Session::Notify() {
  absl::MutexLock lock(&notify_mu_);
  for (SessionListener* l : listeners_) l->OnSessionUpdate();
}

SessionManager::SessionManager(Storage* storage, DatasetStore* datasets,
                               SessionManagerOptions options)
    : storage_(storage), datasets_(datasets), options_(options) {}

SessionManager::~SessionManager() { Shutdown(); }

absl::Status SessionManager::Start() {
  ASSIGN_OR_RETURN(std::vector<v1::Session> stored, storage_->ListSessions());
  absl::MutexLock lock(&mu_);
  for (v1::Session& record : stored) {
    auto options = ToTrainerOptions(record.config());
    if (!options.ok()) {
      record.set_state(v1::FAILED);
      record.set_failure_reason(
          absl::StrCat("stored config no longer valid: ", options.status().message()));
      RETURN_IF_ERROR(storage_->PutSession(record));
      options = core::TrainerOptions();
    }
    const bool resume = record.state() == v1::RUNNING || record.state() == v1::QUEUED;
    if (resume) {
      // Cut the metric log back to the checkpoint this run will resume from.
      int64_t step = 0;
      if (auto bytes = ReadFile(storage_->CheckpointPath(IdOf(record.name()))); bytes.ok()) {
        auto state = core::ParseState(*bytes);
        if (state.ok()) step = state->step;
      }
      ASSIGN_OR_RETURN(int64_t last_seq, storage_->TruncateMetricsAfterStep(record.name(), step));
      record.set_last_seq(last_seq);
      record.set_step(step);
      record.set_state(v1::QUEUED);
      RETURN_IF_ERROR(storage_->PutSession(record));
    }
    auto s = std::make_shared<Session>(record, *options);
    sessions_[record.name()] = s;
    if (resume) queue_.push_back(s);
  }
  stopping_ = false;
  for (int i = 0; i < options_.max_running; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  return absl::OkStatus();
}

void SessionManager::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
    for (auto& [name, s] : sessions_) s->stop_ = Session::StopRequest::kShutdown;
  }
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  // Wake every open stream so that it sees the shutdown and ends.
  std::vector<std::shared_ptr<Session>> all;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [name, s] : sessions_) all.push_back(s);
  }
  for (auto& s : all) s->Notify();
}

void SessionManager::WaitIdle() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](SessionManager* m)
           ABSL_EXCLUSIVE_LOCKS_REQUIRED(m->mu_) { return m->queue_.empty() && m->running_ == 0; },
      this));
}

absl::Status SessionManager::Enqueue(const std::shared_ptr<Session>& s) {
  if (static_cast<int>(queue_.size()) >= options_.max_queued)
    return absl::ResourceExhaustedError(absl::StrCat("the queue is full (", options_.max_queued,
                                                     " sessions, --max_queued); try again later"));
  queue_.push_back(s);
  return absl::OkStatus();
}

absl::Status SessionManager::Persist(const Session& s) { return storage_->PutSession(s.record()); }

void SessionManager::SetState(Session& s, v1::SessionState state, const std::string& reason) {
  {
    absl::MutexLock lock(&s.mu_);
    s.record_.set_state(state);
    if (!reason.empty()) s.record_.set_failure_reason(reason);
    if (IsTerminal(state)) *s.record_.mutable_end_time() = Now();
    if (state == v1::RUNNING && !s.record_.has_start_time())
      *s.record_.mutable_start_time() = Now();
  }
  Persist(s).IgnoreError();  // the next successful write carries it
}

absl::StatusOr<v1::Session> SessionManager::Create(const v1::CreateSessionRequest& req) {
  ASSIGN_OR_RETURN(core::TrainerOptions options, ToTrainerOptions(req.config()));
  for (size_t i = 0; i < options.network.sizes.size(); ++i)
    if (options.network.sizes[i] > options_.max_layer_width)
      return absl::InvalidArgumentError(absl::StrCat(
          "config.network.sizes[", i, "] is ", options.network.sizes[i],
          "; the server allows at most ", options_.max_layer_width, " (--max_layer_width)"));
  int64_t params = 0;
  for (size_t i = 1; i < options.network.sizes.size(); ++i)
    params += int64_t{options.network.sizes[i]} * options.network.sizes[i - 1];
  if (params > options_.max_parameters)
    return absl::InvalidArgumentError(absl::StrCat("the network has ", params,
                                                   " weights; the server allows ",
                                                   options_.max_parameters, " (--max_parameters)"));
  if (req.train_dataset().empty()) return absl::InvalidArgumentError("train_dataset is required");
  RETURN_IF_ERROR(CheckNameLength(req.train_dataset(), "train_dataset"));
  RETURN_IF_ERROR(CheckNameLength(req.eval_dataset(), "eval_dataset"));
  if (req.snapshot_every() < 0 || req.checkpoint_every() < 0)
    return absl::InvalidArgumentError("snapshot_every and checkpoint_every must be >= 0");
  if (req.display_name().size() > 256)
    return absl::InvalidArgumentError("display_name is longer than 256 bytes");
  // Shapes against the data: a trial trainer validates everything the engine checks.
  ASSIGN_OR_RETURN(auto train, datasets_->Load(req.train_dataset()));
  std::shared_ptr<const core::Dataset> eval;
  if (!req.eval_dataset().empty()) {
    auto e = datasets_->Load(req.eval_dataset());
    if (!e.ok())
      return absl::Status(e.status().code(), absl::StrCat("eval_dataset: ", e.status().message()));
    eval = *e;
  }
  // Memory, before anything of the session's size is allocated: the weights are bounded
  // above, but the workspaces grow with the batch (a 1-100000-1 net at batch 200000
  // needs 80 GB) and the data sets with their size.
  {
    auto data_bytes = [](const core::Dataset& d) {
      return 4 * (static_cast<int64_t>(d.features.size()) + static_cast<int64_t>(d.targets.size()) +
                  static_cast<int64_t>(d.labels.size()));
    };
    const int64_t engine = core::EstimateTrainingBytes(options, train->size());
    const int64_t data = data_bytes(*train) + (eval ? data_bytes(*eval) : 0);
    const int64_t total =
        engine > options_.max_session_bytes - data ? options_.max_session_bytes + 1 : engine + data;
    if (total > options_.max_session_bytes)
      return absl::ResourceExhaustedError(
          absl::StrCat("the session would need about ", engine >> 20, " MiB for training (network ",
                       absl::StrJoin(options.network.sizes, "-"), " at batch_size ",
                       options.batch_size, ") and ", data >> 20, " MiB of data; the server allows ",
                       options_.max_session_bytes >> 20, " MiB per session (--max_session_bytes)"));
  }
  auto trial = core::Trainer::Create(options, train, eval);
  if (!trial.ok())
    return absl::InvalidArgumentError(absl::StrCat("config.", trial.status().message()));

  v1::Session record;
  record.set_name("sessions/" + NewSessionId());
  record.set_display_name(req.display_name());
  *record.mutable_config() = ToProto(options);
  record.set_train_dataset(req.train_dataset());
  record.set_eval_dataset(req.eval_dataset());
  record.set_state(v1::QUEUED);
  record.set_total_steps((*trial)->total_steps());
  record.set_snapshot_every(req.snapshot_every());
  record.set_checkpoint_every(req.checkpoint_every() > 0 ? req.checkpoint_every()
                                                         : options_.checkpoint_every);
  *record.mutable_create_time() = Now();

  auto s = std::make_shared<Session>(record, options);
  absl::MutexLock lock(&mu_);
  // The data sets may have been deleted since they were loaded above (DeleteDataset
  // holds mu_ too): checked again where a delete cannot slip in.
  for (const std::string& d : {req.train_dataset(), req.eval_dataset()})
    if (!d.empty()) RETURN_IF_ERROR(storage_->GetDataset(d).status());
  if (static_cast<int>(sessions_.size()) >= options_.max_sessions)
    return absl::ResourceExhaustedError(absl::StrCat(
        "the server holds ", sessions_.size(), " sessions (--max_sessions); delete some first"));
  RETURN_IF_ERROR(Enqueue(s));
  if (absl::Status st = storage_->PutSession(record); !st.ok()) {
    queue_.pop_back();
    return st;
  }
  sessions_[record.name()] = s;
  return record;
}

absl::StatusOr<std::shared_ptr<Session>> SessionManager::Find(const std::string& name) {
  RETURN_IF_ERROR(CheckNameLength(name));
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(name);
  if (it == sessions_.end()) {
    if (name.rfind("sessions/", 0) != 0)
      return absl::InvalidArgumentError(
          absl::StrCat("name '", name, "' is not a session name (sessions/{id})"));
    return absl::NotFoundError(absl::StrCat(name, " not found"));
  }
  return it->second;
}

absl::StatusOr<v1::Session> SessionManager::Get(const std::string& name) {
  ASSIGN_OR_RETURN(auto s, Find(name));
  return s->record();
}

std::vector<v1::Session> SessionManager::List(v1::SessionState state) {
  std::vector<std::shared_ptr<Session>> all;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [name, s] : sessions_) all.push_back(s);
  }
  std::vector<v1::Session> out;
  for (auto& s : all) {
    v1::Session r = s->record();
    if (state == v1::SESSION_STATE_UNSPECIFIED || r.state() == state) out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<v1::Session> SessionManager::Pause(const std::string& name) {
  ASSIGN_OR_RETURN(auto s, Find(name));
  v1::Session out;  // the state this call left it in
  {
    absl::MutexLock lock(&mu_);
    const v1::SessionState st = s->state();
    if (st == v1::QUEUED) {
      queue_.erase(std::remove(queue_.begin(), queue_.end(), s), queue_.end());
      SetState(*s, v1::PAUSED);
    } else if (st == v1::RUNNING) {
      s->stop_ = Session::StopRequest::kPause;  // the worker checkpoints and sets PAUSED
      // Wait for the worker to leave the session, so that the answer is the new state.
      mu_.Await(absl::Condition(
          +[](Session* x) { return x->state() != v1::RUNNING; }, s.get()));
    } else {
      return Illegal(*s, st, "pause");
    }
    out = s->record();
  }
  s->Notify();
  return out;
}

absl::StatusOr<v1::Session> SessionManager::Resume(const std::string& name) {
  ASSIGN_OR_RETURN(auto s, Find(name));
  v1::Session out;  // the state this call left it in
  {
    absl::MutexLock lock(&mu_);
    const v1::SessionState st = s->state();
    if (st != v1::PAUSED) return Illegal(*s, st, "resume");
    RETURN_IF_ERROR(Enqueue(s));
    s->stop_ = Session::StopRequest::kNone;
    SetState(*s, v1::QUEUED);
    out = s->record();
  }
  s->Notify();
  return out;
}

absl::StatusOr<v1::Session> SessionManager::Cancel(const std::string& name) {
  ASSIGN_OR_RETURN(auto s, Find(name));
  v1::Session out;  // the state this call left it in
  {
    absl::MutexLock lock(&mu_);
    const v1::SessionState st = s->state();
    if (IsTerminal(st)) return Illegal(*s, st, "cancel");
    if (st == v1::RUNNING) {
      s->stop_ = Session::StopRequest::kCancel;
      mu_.Await(absl::Condition(
          +[](Session* x) { return x->state() != v1::RUNNING; }, s.get()));
    } else {
      queue_.erase(std::remove(queue_.begin(), queue_.end(), s), queue_.end());
      SetState(*s, v1::CANCELLED);
    }
    out = s->record();
  }
  s->Notify();
  return out;
}

absl::Status SessionManager::Delete(const std::string& name) {
  ASSIGN_OR_RETURN(auto s, Find(name));
  {
    absl::MutexLock lock(&mu_);
    const v1::SessionState st = s->state();
    if (st == v1::QUEUED || st == v1::RUNNING)
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot delete ", name, ": it is ", v1::SessionState_Name(st), "; cancel it first"));
    RETURN_IF_ERROR(storage_->DeleteSession(name));
    sessions_.erase(name);
    s->deleted_ = true;
  }
  s->Notify();  // open streams see that it is gone and end
  return absl::OkStatus();
}

bool SessionManager::UsesDataset(const std::string& dataset) {
  absl::MutexLock lock(&mu_);
  return UsesDatasetLocked(dataset);
}

bool SessionManager::UsesDatasetLocked(const std::string& dataset) {
  for (auto& [name, s] : sessions_) {
    const v1::Session r = s->record();
    if (!IsTerminal(r.state()) && (r.train_dataset() == dataset || r.eval_dataset() == dataset))
      return true;
  }
  return false;
}

absl::Status SessionManager::DeleteDataset(const std::string& name) {
  // Under mu_, as Create's final check: a session created at the same time either is
  // registered first (then this is FailedPrecondition) or finds the data set gone
  // (NotFound). Never both OK.
  absl::MutexLock lock(&mu_);
  return datasets_->Delete(name, [this](const std::string& d) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return UsesDatasetLocked(d);
  });
}

// ---- The workers ------------------------------------------------------------------------

void SessionManager::WorkerLoop() {
  core::EnableFlushToZero();
  while (true) {
    std::shared_ptr<Session> s;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](SessionManager* m)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(m->mu_) { return m->stopping_ || !m->queue_.empty(); },
          this));
      if (stopping_) return;
      s = queue_.front();
      queue_.pop_front();
      if (s->state() != v1::QUEUED) continue;  // paused or cancelled while queued
      ++running_;
      s->stop_ = Session::StopRequest::kNone;
      SetState(*s, v1::RUNNING);
    }
    s->Notify();
    // Nothing a session does may take the process down: an allocation that fails (or
    // anything else thrown) fails this session, with the reason, and only it. FAILED
    // is terminal, so a restart does not run it again.
    try {
      RunSession(s);
    } catch (const std::bad_alloc&) {
      SetState(*s, v1::FAILED,
               "out of memory while training (the machine could not provide what "
               "the session needed; lower batch_size or the network's size)");
    } catch (const std::exception& e) {
      SetState(*s, v1::FAILED, absl::StrCat("internal error while training: ", e.what()));
    }
    s->Notify();
    absl::MutexLock lock(&mu_);
    --running_;
  }
}

// Appends metric events, checkpoints and snapshots as the engine reports. Runs on the
// worker thread; touches the session record only through `progress`.
class SessionObserver : public core::TrainingObserver {
 public:
  using Progress = std::function<void(int64_t step, int64_t epoch, int64_t last_seq)>;
  SessionObserver(Session* s, Storage* storage, core::Trainer* trainer, const v1::Session& r,
                  Progress progress, std::function<bool()> stop_requested)
      : s_(s),
        id_(IdOf(s->name())),
        storage_(storage),
        trainer_(trainer),
        checkpoint_every_(r.checkpoint_every()),
        snapshot_every_(r.snapshot_every()),
        last_seq_(r.last_seq()),
        progress_(std::move(progress)),
        stop_requested_(std::move(stop_requested)) {}

  bool OnStep(const core::StepMetrics& m) override {
    bool news = false;
    if (m.has_details) {
      v1::MetricEvent e;
      ToProto(m, e.mutable_step());
      Append(e, m.step);
      Remember(m);
      news = true;
    }
    progress_(m.step, m.epoch, last_seq_);
    if (checkpoint_every_ > 0 && m.step % checkpoint_every_ == 0) status_.Update(Checkpoint());
    if (snapshot_every_ > 0 && m.step % snapshot_every_ == 0) {
      status_.Update(Snapshot());
      news = true;
    }
    if (news) s_->Notify();
    return status_.ok() && !stop_requested_();
  }

  bool OnEvaluation(const core::EvalMetrics& m) override {
    v1::MetricEvent e;
    ToProto(m, e.mutable_eval());
    Append(e, m.step);
    Remember(m);
    progress_(-1, -1, last_seq_);
    s_->Notify();
    return status_.ok() && !stop_requested_();
  }

  // The checkpoint file first, then the record that points past it.
  absl::Status Checkpoint() {
    RETURN_IF_ERROR(AtomicWriteFile(storage_->CheckpointPath(id_),
                                    core::SerializeState(trainer_->ExportState())));
    progress_(trainer_->step(), trainer_->epoch(), last_seq_);
    return storage_->PutSession(s_->record());
  }

  absl::Status Snapshot() {
    return storage_->AddSnapshot(s_->name(), trainer_->step(),
                                 core::SerializeState(trainer_->ExportState()));
  }

  const absl::Status& status() const { return status_; }

 private:
  void Remember(const core::StepMetrics& m) {
    absl::MutexLock lock(&s_->mu_);
    Session::Latest& l = s_->latest_;
    l.loss = m.loss;
    l.accuracy = m.accuracy;
    l.nse = m.nse;
    l.update_angle.clear();
    for (const auto& a : m.alignment) l.update_angle.push_back(a.update_angle_mean);
  }
  void Remember(const core::EvalMetrics& m) {
    absl::MutexLock lock(&s_->mu_);
    s_->latest_.eval_loss = m.loss;
    s_->latest_.eval_error = m.error_rate;
    s_->latest_.eval_nse = m.nse;
  }

  void Append(v1::MetricEvent& e, int64_t step) {
    e.set_seq(last_seq_ + 1);
    *e.mutable_wall_time() = Now();
    const absl::Status st = storage_->AppendMetric(s_->name(), e, step);
    if (st.ok()) ++last_seq_;
    status_.Update(st);
  }

  Session* s_;
  const std::string id_;
  Storage* storage_;
  core::Trainer* trainer_;
  const int64_t checkpoint_every_, snapshot_every_;
  int64_t last_seq_;
  Progress progress_;
  std::function<bool()> stop_requested_;
  absl::Status status_;
};

void SessionManager::RunSession(const std::shared_ptr<Session>& s) {
  const v1::Session r = s->record();
  auto fail = [&](const absl::Status& st) { SetState(*s, v1::FAILED, std::string(st.message())); };
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
  if (auto bytes = ReadFile(storage_->CheckpointPath(IdOf(s->name()))); bytes.ok()) {
    auto state = core::ParseState(*bytes);
    if (!state.ok())
      return fail(absl::DataLossError(absl::StrCat("checkpoint: ", state.status().message())));
    if (absl::Status st = (*trainer)->ImportState(*state); !st.ok()) return fail(st);
    // The log is cut back to the checkpoint on restart; if its last event is the
    // evaluation at the checkpoint's step, that evaluation was made: not again.
    if (r.last_seq() > 0) {
      auto last = storage_->ReadMetrics(r.name(), r.last_seq(), 1);
      if (last.ok() && !last->empty() && last->back().has_eval() &&
          last->back().eval().step() == (*trainer)->step())
        (*trainer)->MarkEvaluated();
    }
  }
  auto progress = [&](int64_t step, int64_t epoch, int64_t seq) {
    absl::MutexLock lock(&s->mu_);
    if (step >= 0) s->record_.set_step(step);
    if (epoch >= 0) s->record_.set_epoch(epoch);
    if (seq >= 0) s->record_.set_last_seq(seq);
  };
  auto stop_requested = [&] { return s->stop_.load() != Session::StopRequest::kNone; };
  SessionObserver observer(s.get(), storage_, trainer->get(), r, progress, stop_requested);
  absl::Status st = stop_requested() ? absl::OkStatus() : (*trainer)->Run(&observer);
  if (st.ok()) st = observer.status();
  if (!st.ok()) return fail(st);
  if ((*trainer)->done()) {
    if (absl::Status c = observer.Checkpoint(); !c.ok()) return fail(c);
    if (absl::Status c = observer.Snapshot(); !c.ok()) return fail(c);
    return SetState(*s, v1::SUCCEEDED);
  }
  switch (s->stop_.load()) {
    case Session::StopRequest::kCancel:
      return SetState(*s, v1::CANCELLED);
    case Session::StopRequest::kPause:
      if (absl::Status c = observer.Checkpoint(); !c.ok()) return fail(c);
      return SetState(*s, v1::PAUSED);
    default:
      // Shutdown: stored as QUEUED, so that the next start resumes from this checkpoint.
      if (absl::Status c = observer.Checkpoint(); !c.ok()) return fail(c);
      SetState(*s, v1::QUEUED);
      return;
  }
}

}  // namespace alignd::server
