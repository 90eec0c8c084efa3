// File: server/sessions/session_manager.cc
#include "server/sessions/session_manager.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "core/trainer.h"
#include "google/protobuf/util/time_util.h"
#include "server/api/proto_convert.h"
#include "server/api/resource_names.h"
#include "server/sessions/session_rules.h"

namespace alignd::server {
namespace {

absl::Status Illegal(const LiveSession& s, v1::SessionState from, const char* op) {
  return IllegalTransition(s.name(), from, op);
}

}  // namespace

SessionManager::SessionManager(Storage* storage, DatasetStore* datasets,
                               SessionManagerOptions options)
    : storage_(storage), datasets_(datasets), options_(options), cluster_(storage->cluster()) {}

SessionManager::~SessionManager() { Shutdown(); }

absl::Status SessionManager::Start() {
  if (cluster_ != nullptr) return StartCluster();
  ASSIGN_OR_RETURN(std::vector<v1::Session> stored, storage_->ListSessions());
  absl::MutexLock lock(&mu_);
  for (v1::Session& record : stored) {
    auto options = ToTrainerOptions(record.config());
    if (!options.ok()) {
      record.set_state(v1::SESSION_STATE_FAILED);
      record.set_failure_reason(
          absl::StrCat("stored config no longer valid: ", options.status().message()));
      RETURN_IF_ERROR(storage_->PutSession(record));
      options = core::TrainerOptions();
    }
    const bool resume =
        record.state() == v1::SESSION_STATE_RUNNING || record.state() == v1::SESSION_STATE_QUEUED;
    // The step a restart resumes from is the one the checkpoint's bytes hold (the storage's
    // step is an index, and an index can lag its blob after a crash); the log is cut back
    // to that same step. A checkpoint whose step the storage does not know (a data
    // directory from before it did) is indexed here, once.
    int64_t step = 0;
    if (auto checkpoint = storage_->GetCheckpoint(record.name()); checkpoint.ok()) {
      if (auto state = core::ParseState(checkpoint->bytes); state.ok()) {
        step = state->step;
        if (checkpoint->step < 0) {
          checkpoint->step = step;
          RETURN_IF_ERROR(storage_->PutCheckpoint(record.name(), *checkpoint));
        }
      }
    }
    // The newest figures are those of the log as it now stands: cut back with it on a
    // resume, and found once for a record from before records kept them.
    const bool figures =
        resume || (record.last_seq() > 0 && !record.has_latest_step() && !record.has_latest_eval());
    if (resume) {
      ASSIGN_OR_RETURN(int64_t last_seq, storage_->TruncateMetricsAfterStep(record.name(), step));
      record.set_last_seq(last_seq);
      record.set_step(step);
      record.set_state(v1::SESSION_STATE_QUEUED);
    }
    if (figures) {
      ASSIGN_OR_RETURN(Storage::NewestMetrics newest, storage_->ReadNewestMetrics(record.name()));
      record.clear_latest_step();
      record.clear_latest_eval();
      if (newest.step) *record.mutable_latest_step() = newest.step->step();
      if (newest.eval) *record.mutable_latest_eval() = newest.eval->eval();
    }
    if (resume || figures) RETURN_IF_ERROR(storage_->PutSession(record));
    auto s = std::make_shared<LiveSession>(record, *options);
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
    for (auto& [name, s] : sessions_) s->stop_ = LiveSession::StopRequest::kShutdown;
  }
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  if (heartbeat_.joinable()) heartbeat_.join();
  if (cluster_ != nullptr) cluster_->StopListening();
  // Wake every open stream so that it sees the shutdown and ends.
  std::vector<std::shared_ptr<LiveSession>> all;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [name, s] : sessions_) all.push_back(s);
  }
  for (auto& s : all) s->Notify();
}

void SessionManager::NotifyAll() {
  std::vector<std::shared_ptr<LiveSession>> all;
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

absl::Status SessionManager::Enqueue(const std::shared_ptr<LiveSession>& s) {
  if (static_cast<int>(queue_.size()) >= options_.max_queued) return QueueFull(options_.max_queued);
  queue_.push_back(s);
  return absl::OkStatus();
}

void SessionManager::SetState(LiveSession& s, v1::SessionState state, const std::string& reason,
                              Storage* store) {
  {
    absl::MutexLock lock(&s.mu_);
    s.record_.set_state(state);
    if (!reason.empty() && state == v1::SESSION_STATE_STOPPED)
      s.record_.set_stop_reason(reason);
    else if (!reason.empty())
      s.record_.set_failure_reason(reason);
    if (IsTerminal(state)) *s.record_.mutable_end_time() = Now();
    if (state == v1::SESSION_STATE_RUNNING && !s.record_.has_start_time())
      *s.record_.mutable_start_time() = Now();
  }
  // The next successful write carries it; on replicas a fenced write that fails means the
  // session is another's now (the database's record is the truth).
  (store != nullptr ? store : storage_)->PutSession(s.record()).IgnoreError();
}

absl::Status SessionManager::CheckQuota(const Requester& by) {
  if (by.max_active <= 0) return absl::OkStatus();
  int active = 0;
  for (const auto& [name, s] : sessions_) {
    const v1::SessionState st = s->state();
    active += s->owner() == by.owner &&
              (st == v1::SESSION_STATE_QUEUED || st == v1::SESSION_STATE_RUNNING);
  }
  if (active < by.max_active) return absl::OkStatus();
  return QuotaExceeded(by.owner, active, by.max_active);
}

absl::Status SessionManager::CheckCreate(const v1::CreateSessionRequest& create) {
  return Validate(create).status();
}

absl::Status SessionManager::CheckRoom(int n, const Requester& by) {
  absl::MutexLock lock(&mu_);
  const int held = static_cast<int>(sessions_.size());
  if (held + n > options_.max_sessions)
    return absl::ResourceExhaustedError(
        absl::StrCat(n, " more sessions do not fit: the server holds ", held, " of at most ",
                     options_.max_sessions, " (--max_sessions); delete some first"));
  const int queued = static_cast<int>(queue_.size());
  if (cluster_ == nullptr && queued + n > options_.max_queued)
    return absl::ResourceExhaustedError(
        absl::StrCat(n, " more queued sessions do not fit: ", queued, " are queued, at most ",
                     options_.max_queued, " may be (--max_queued)"));
  if (by.max_active > 0) {
    int active = 0;
    for (const auto& [name, s] : sessions_) {
      const v1::SessionState st = s->state();
      active += s->owner() == by.owner &&
                (st == v1::SESSION_STATE_QUEUED || st == v1::SESSION_STATE_RUNNING);
    }
    if (active + n > by.max_active)
      return absl::ResourceExhaustedError(absl::StrCat(
          "quota active_sessions: '", by.owner, "' has ", active, " sessions queued or running; ",
          n, " more would pass the most it may have (--quota_active_sessions ", by.max_active,
          ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Session> SessionManager::Create(const v1::CreateSessionRequest& create,
                                                   const Requester& by) {
  return CreateMember(create, by, "", "");
}

absl::StatusOr<v1::Session> SessionManager::CreateMember(const v1::CreateSessionRequest& create,
                                                         const Requester& by,
                                                         const std::string& experiment,
                                                         const std::string& group) {
  if (create.request_id().size() > 64)
    return absl::InvalidArgumentError("request_id is longer than 64 characters");
  const std::string request_key =
      create.request_id().empty() ? "" : absl::StrCat(by.owner, "/", create.request_id());
  if (!request_key.empty()) {
    absl::MutexLock lock(&mu_);
    if (auto it = requests_.find(request_key); it != requests_.end())
      if (auto found = sessions_.find(it->second); found != sessions_.end())
        return found->second->record();
  }
  ASSIGN_OR_RETURN(NewSession created, Validate(create));
  v1::Session& record = created.record;
  const core::TrainerOptions& options = created.options;
  record.set_owner(by.owner);
  record.set_experiment(experiment);
  record.set_experiment_group(group);
  if (create.initial_weights().empty()) return Register(record, options, request_key, by);
  // Initial weights: their state is stored as the session's checkpoint at step 0 before the
  // session exists, so no worker (here or on a replica) can start it without them, and it is
  // queued as any other. Never over an existing session's: a name that is taken goes
  // straight to Register (a retry's answer, or ALREADY_EXISTS).
  ASSIGN_OR_RETURN(std::string state, InitialState(create.initial_weights(), options, record));
  if (auto existing = storage_->GetSession(record.name());
      existing.ok() || !absl::IsNotFound(existing.status()))
    return existing.ok() ? Register(record, options, request_key, by) : existing.status();
  RETURN_IF_ERROR(storage_->PutCheckpoint(record.name(), StoredState{0, std::move(state)}));
  absl::StatusOr<v1::Session> made = Register(record, options, request_key, by);
  const bool ours = made.ok() && made->name() == record.name() &&
                    made->create_time().seconds() == record.create_time().seconds() &&
                    made->create_time().nanos() == record.create_time().nanos();
  // Not registered (refused, or a retry answered with the first attempt's session): the
  // checkpoint under this request's own name goes again.
  if (!ours && (!made.ok() ? !absl::IsAlreadyExists(made.status()) : made->name() != record.name()))
    storage_->DeleteSession(record.name()).IgnoreError();
  return made;
}

absl::StatusOr<v1::Session> SessionManager::Register(const v1::Session& record,
                                                     const core::TrainerOptions& options,
                                                     const std::string& request_key,
                                                     const Requester& by) {
  const v1::Session& req = record;  // its data set names, as checked
  if (cluster_ != nullptr) return CreateInCluster(record, options, request_key, by);

  const bool queued = record.state() == v1::SESSION_STATE_QUEUED;
  auto s = std::make_shared<LiveSession>(record, options);
  absl::MutexLock lock(&mu_);
  // The data sets may have been deleted since they were loaded above (DeleteDataset
  // holds mu_ too): checked again where a delete cannot slip in.
  for (const std::string& d : {req.train_dataset(), req.eval_dataset()})
    if (!d.empty()) RETURN_IF_ERROR(storage_->GetDataset(d).status());
  // A retry that raced its first attempt here gets the first attempt's session.
  if (!request_key.empty())
    if (auto it = requests_.find(request_key); it != requests_.end())
      if (auto found = sessions_.find(it->second); found != sessions_.end())
        return found->second->record();
  if (sessions_.count(record.name()) != 0)
    return absl::AlreadyExistsError(absl::StrCat(record.name(), " already exists"));
  if (static_cast<int>(sessions_.size()) >= options_.max_sessions)
    return TooManySessions(static_cast<int>(sessions_.size()));
  RETURN_IF_ERROR(CheckQuota(by));
  if (queued) RETURN_IF_ERROR(Enqueue(s));
  if (absl::Status st = storage_->PutSession(record); !st.ok()) {
    if (queued) queue_.pop_back();
    return st;
  }
  sessions_[record.name()] = s;
  if (!request_key.empty()) {
    requests_[request_key] = record.name();
    request_order_.push_back(request_key);
    if (request_order_.size() > kMaxRequestIds) {
      requests_.erase(request_order_.front());
      request_order_.pop_front();
    }
  }
  return record;
}

absl::StatusOr<std::shared_ptr<LiveSession>> SessionManager::Find(const std::string& name) {
  RETURN_IF_ERROR(ParseSessionName(name).status());
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(name);
    if (it != sessions_.end()) return it->second;
    if (cluster_ == nullptr) return absl::NotFoundError(absl::StrCat(name, " not found"));
  }
  // Replicas: created by another one a moment ago, perhaps.
  ASSIGN_OR_RETURN(SessionRow row, cluster_->Read(name));
  return Refresh(row);
}

absl::StatusOr<v1::Session> SessionManager::Get(const std::string& name) {
  ASSIGN_OR_RETURN(auto s, Find(name));
  if (cluster_ == nullptr || s->held_here()) return s->record();
  // Another replica's (or nobody's): the database's record, as fresh as its last write.
  ASSIGN_OR_RETURN(SessionRow row, cluster_->Read(name));
  return Refresh(row)->record();
}

std::vector<v1::Session> SessionManager::List(v1::SessionState state) {
  std::vector<std::shared_ptr<LiveSession>> all;
  if (cluster_ != nullptr) {
    // Replicas: every session in the database, the ones trained here as they are now.
    if (auto rows = cluster_->Changes(0, nullptr, nullptr); rows.ok())
      for (const SessionRow& row : *rows) all.push_back(Refresh(row));
  } else {
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
  if (cluster_ != nullptr) return ChangeInCluster(name, Cluster::Op::kPause, {});
  v1::Session out;  // the state this call left it in
  {
    absl::MutexLock lock(&mu_);
    const v1::SessionState st = s->state();
    if (st == v1::SESSION_STATE_QUEUED) {
      queue_.erase(std::remove(queue_.begin(), queue_.end(), s), queue_.end());
      SetState(*s, v1::SESSION_STATE_PAUSED);
    } else if (st == v1::SESSION_STATE_RUNNING) {
      s->stop_ = LiveSession::StopRequest::kPause;  // the worker checkpoints and sets PAUSED
      // Wait for the worker to leave the session, so that the answer is the new state.
      mu_.Await(absl::Condition(
          +[](LiveSession* x) { return x->state() != v1::SESSION_STATE_RUNNING; }, s.get()));
    } else {
      return Illegal(*s, st, "pause");
    }
    out = s->record();
  }
  s->Notify();
  return out;
}

absl::StatusOr<v1::Session> SessionManager::Resume(const std::string& name, const Requester& by) {
  ASSIGN_OR_RETURN(auto s, Find(name));
  if (cluster_ != nullptr) return ChangeInCluster(name, Cluster::Op::kResume, by);
  v1::Session out;  // the state this call left it in
  {
    absl::MutexLock lock(&mu_);
    const v1::SessionState st = s->state();
    if (st != v1::SESSION_STATE_PAUSED) return Illegal(*s, st, "resume");
    RETURN_IF_ERROR(CheckQuota(by));
    RETURN_IF_ERROR(Enqueue(s));
    s->stop_ = LiveSession::StopRequest::kNone;
    SetState(*s, v1::SESSION_STATE_QUEUED);
    out = s->record();
  }
  s->Notify();
  return out;
}

absl::StatusOr<v1::Session> SessionManager::Cancel(const std::string& name) {
  ASSIGN_OR_RETURN(auto s, Find(name));
  if (cluster_ != nullptr) return ChangeInCluster(name, Cluster::Op::kCancel, {});
  v1::Session out;  // the state this call left it in
  {
    absl::MutexLock lock(&mu_);
    const v1::SessionState st = s->state();
    if (IsTerminal(st)) return Illegal(*s, st, "cancel");
    if (st == v1::SESSION_STATE_RUNNING) {
      s->stop_ = LiveSession::StopRequest::kCancel;
      mu_.Await(absl::Condition(
          +[](LiveSession* x) { return x->state() != v1::SESSION_STATE_RUNNING; }, s.get()));
    } else {
      queue_.erase(std::remove(queue_.begin(), queue_.end(), s), queue_.end());
      SetState(*s, v1::SESSION_STATE_CANCELLED);
    }
    out = s->record();
  }
  s->Notify();
  return out;
}

absl::Status SessionManager::Delete(const std::string& name) {
  ASSIGN_OR_RETURN(auto s, Find(name));
  if (cluster_ != nullptr) {
    RETURN_IF_ERROR(DeleteInCluster(s));
  } else {
    absl::MutexLock lock(&mu_);
    const v1::SessionState st = s->state();
    if (st == v1::SESSION_STATE_QUEUED || st == v1::SESSION_STATE_RUNNING)
      return CannotDeleteActive(name, st);
    RETURN_IF_ERROR(storage_->DeleteSession(name));
    sessions_.erase(name);
    s->deleted_ = true;
  }
  DropNetworks(name);
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

absl::Status SessionManager::DeleteDataset(const std::string& name, const std::string& owner) {
  // Replicas: the database serialises it against every replica's Create (PostgresStorage::
  // DeleteDataset, under the lock Insert takes), not mu_, which the heartbeat needs meanwhile.
  if (cluster_ != nullptr)
    return datasets_->Delete(
        name, [this](const std::string& d) { return UsesDataset(d); }, owner);
  // Under mu_, as Create's final check: a session created at the same time either is
  // registered first (then this is FailedPrecondition) or finds the data set gone
  // (NotFound). Never both OK.
  absl::MutexLock lock(&mu_);
  return datasets_->Delete(
      name,
      [this](const std::string& d) ABSL_NO_THREAD_SAFETY_ANALYSIS { return UsesDatasetLocked(d); },
      owner);
}

}  // namespace alignd::server
