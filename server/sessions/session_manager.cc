// File: server/sessions/session_manager.cc
#include "server/sessions/session_manager.h"

#include <algorithm>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "core/cpu.h"
#include "core/trainer.h"
#include "google/protobuf/util/time_util.h"
#include "server/api/proto_convert.h"
#include "server/api/resource_names.h"
#include "server/net/log.h"
#include "server/sessions/session_recorder.h"
#include "server/sessions/session_rules.h"

namespace alignd::server {
namespace {

std::string NewSessionId() {
  static std::mt19937_64 rng(std::random_device{}());
  static absl::Mutex mu;
  absl::MutexLock lock(&mu);
  return absl::StrFormat("%012x", rng() & 0xffffffffffffULL);
}

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
    if (!reason.empty()) s.record_.set_failure_reason(reason);
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

absl::StatusOr<v1::Session> SessionManager::Create(const v1::CreateSessionRequest& create,
                                                   const Requester& by) {
  const v1::Session& req = create.session();
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
  const std::string id = create.session_id().empty() ? NewSessionId() : create.session_id();
  if (!create.session_id().empty()) {
    const std::string& sid = create.session_id();
    bool ok = sid.size() <= 63 && sid[0] >= 'a' && sid[0] <= 'z';
    for (char c : sid) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
    if (!ok)
      return absl::InvalidArgumentError(
          absl::StrCat("session_id '", Excerpt(sid),
                       "' must be 1-63 characters of [a-z0-9-] starting with a letter"));
  }
  auto prefixed = [](const absl::Status& st) {
    return absl::Status(st.code(), absl::StrCat("session.", st.message()));
  };
  auto options_or = ToTrainerOptions(req.config());
  if (!options_or.ok()) return prefixed(options_or.status());
  core::TrainerOptions options = std::move(*options_or);
  for (size_t i = 0; i < options.network.sizes.size(); ++i)
    if (options.network.sizes[i] > options_.max_layer_width)
      return absl::InvalidArgumentError(absl::StrCat(
          "session.config.network.sizes[", i, "] is ", options.network.sizes[i],
          "; the server allows at most ", options_.max_layer_width, " (--max_layer_width)"));
  int64_t params = 0;
  for (size_t i = 1; i < options.network.sizes.size(); ++i)
    params += int64_t{options.network.sizes[i]} * options.network.sizes[i - 1];
  if (params > options_.max_parameters)
    return absl::InvalidArgumentError(absl::StrCat("the network has ", params,
                                                   " weights; the server allows ",
                                                   options_.max_parameters, " (--max_parameters)"));
  if (options.threads > options_.max_threads)
    return absl::InvalidArgumentError(
        absl::StrCat("session.config.threads is ", options.threads, "; the server runs at most ",
                     options_.max_threads, " training threads (--max_threads)"));
  if (req.train_dataset().empty())
    return absl::InvalidArgumentError("session.train_dataset is required");
  RETURN_IF_ERROR(ParseDatasetName(req.train_dataset(), "session.train_dataset").status());
  if (!req.eval_dataset().empty())
    RETURN_IF_ERROR(ParseDatasetName(req.eval_dataset(), "session.eval_dataset").status());
  if (req.snapshot_every() < 0 || (req.has_checkpoint_every() && req.checkpoint_every() < 1))
    return absl::InvalidArgumentError(
        "session.snapshot_every must be >= 0 and session.checkpoint_every >= 1");
  if (req.display_name().size() > 256)
    return absl::InvalidArgumentError("session.display_name is longer than 256 bytes");
  // Shapes against the data (core::ValidateTraining below; no network is built).
  auto train_or = datasets_->Load(req.train_dataset());
  if (!train_or.ok())
    return absl::Status(train_or.status().code(),
                        absl::StrCat("session.train_dataset: ", train_or.status().message()));
  std::shared_ptr<const core::Dataset> train = *train_or;
  std::shared_ptr<const core::Dataset> eval;
  if (!req.eval_dataset().empty()) {
    auto e = datasets_->Load(req.eval_dataset());
    if (!e.ok())
      return absl::Status(e.status().code(),
                          absl::StrCat("session.eval_dataset: ", e.status().message()));
    eval = *e;
  }
  // The config against the data first: a batch larger than the data set is the caller's
  // mistake to name (session.config.batch_size), not a matter of memory.
  if (absl::Status st = core::ValidateTraining(options, *train, eval.get()); !st.ok())
    return absl::InvalidArgumentError(absl::StrCat("session.config.", st.message()));
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

  v1::Session record;
  record.set_name(SessionName(id));
  record.set_display_name(req.display_name());
  *record.mutable_config() = ToProto(options);
  record.set_train_dataset(req.train_dataset());
  record.set_eval_dataset(req.eval_dataset());
  record.set_state(v1::SESSION_STATE_QUEUED);
  record.set_total_steps(core::TotalSteps(options, train->size()));
  record.set_snapshot_every(req.snapshot_every());
  record.set_checkpoint_every(req.has_checkpoint_every() ? req.checkpoint_every()
                                                         : options_.checkpoint_every);
  *record.mutable_create_time() = Now();
  record.set_owner(by.owner);
  if (cluster_ != nullptr) return CreateInCluster(record, options, request_key, by);

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
  RETURN_IF_ERROR(Enqueue(s));
  if (absl::Status st = storage_->PutSession(record); !st.ok()) {
    queue_.pop_back();
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
  // Under mu_, as Create's final check: a session created at the same time either is
  // registered first (then this is FailedPrecondition) or finds the data set gone
  // (NotFound). Never both OK.
  absl::MutexLock lock(&mu_);
  return datasets_->Delete(
      name,
      [this](const std::string& d) ABSL_NO_THREAD_SAFETY_ANALYSIS { return UsesDatasetLocked(d); },
      owner);
}

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

void SessionManager::RunSession(const std::shared_ptr<LiveSession>& s, Storage* store) {
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
  {
    // Replicas: a metric batch is a transaction on the shared database, so the writer
    // gathers 20 ms of events (streams on this replica read the ring at once; elsewhere
    // they see each batch as it commits).
    SessionRecorder recorder(s.get(), store, trainer->get(),
                             cluster_ != nullptr ? absl::Milliseconds(20) : absl::ZeroDuration());
    if (s->stop_.load() == LiveSession::StopRequest::kNone) st = (*trainer)->Run(&recorder);
    done = st.ok() && (*trainer)->done();
    const LiveSession::StopRequest stop = s->stop_.load();
    // Finished: a checkpoint and a final snapshot. Paused or shut down: a checkpoint to
    // resume from (it replaces one still waiting). Cancelled or failed: nothing more, and
    // a checkpoint still waiting is not needed either (only the events are flushed).
    if (stop == LiveSession::StopRequest::kLeaseLost) {
      recorder.DiscardCheckpoint();  // its writes would be refused: nothing more is tried
    } else if (st.ok() && (done || stop == LiveSession::StopRequest::kPause ||
                           stop == LiveSession::StopRequest::kShutdown)) {
      recorder.Checkpoint();
      if (done) recorder.Snapshot();
    } else {
      recorder.DiscardCheckpoint();
    }
    const absl::Status written = recorder.Flush();
    if (st.ok()) st = written;
  }
  if (s->stop_.load() == LiveSession::StopRequest::kLeaseLost) return;
  if (!st.ok()) return fail(st);
  if (done) return SetState(*s, v1::SESSION_STATE_SUCCEEDED, "", store);
  switch (s->stop_.load()) {
    case LiveSession::StopRequest::kCancel:
      return SetState(*s, v1::SESSION_STATE_CANCELLED, "", store);
    case LiveSession::StopRequest::kPause:
      return SetState(*s, v1::SESSION_STATE_PAUSED, "", store);
    default:
      // Shutdown: stored as QUEUED, so that the next start (or another replica, at once)
      // resumes from this checkpoint.
      return SetState(*s, v1::SESSION_STATE_QUEUED, "", store);
  }
}

// ---- Weights for Predict, Evaluate and GetSnapshot --------------------------------------

void SessionManager::DropNetworks(const std::string& session) {
  absl::MutexLock lock(&cache_mu_);
  const std::string prefix = session + "@";
  for (auto it = networks_.lower_bound(prefix);
       it != networks_.end() && it->first.compare(0, prefix.size(), prefix) == 0;)
    it = networks_.erase(it);
}

absl::StatusOr<std::pair<int64_t, bool>> SessionManager::Resolve(const WeightsRef& ref) {
  ASSIGN_OR_RETURN(std::vector<SnapshotInfo> snapshots, storage_->ListSnapshots(ref.session));
  std::vector<int64_t> steps;
  for (const SnapshotInfo& s : snapshots) steps.push_back(s.step);
  if (ref.step != WeightsRef::kLatest) {
    if (std::binary_search(steps.begin(), steps.end(), ref.step))
      return std::make_pair(ref.step, false);
    return absl::NotFoundError(absl::StrCat(SnapshotName(ref.session, ref.step), " not found"));
  }
  auto checkpoint = storage_->CheckpointStep(ref.session);
  if (!checkpoint.ok() && steps.empty())
    return absl::NotFoundError(absl::StrCat(ref.session, " has no weights stored yet"));
  if (checkpoint.ok() && (steps.empty() || *checkpoint > steps.back()))
    return std::make_pair(*checkpoint, true);
  return std::make_pair(steps.back(), false);
}

absl::StatusOr<core::TrainerState> SessionManager::ReadState(const std::string& session,
                                                             int64_t step, bool checkpoint) {
  std::string bytes;
  if (checkpoint) {
    ASSIGN_OR_RETURN(StoredState st, storage_->GetCheckpoint(session));
    bytes = std::move(st.bytes);
  } else {
    ASSIGN_OR_RETURN(bytes, storage_->GetSnapshot(session, step));
  }
  auto state = core::ParseState(bytes);
  if (!state.ok())
    return absl::DataLossError(absl::StrCat(
        SnapshotName(session, step), ": stored state is corrupt: ", state.status().message()));
  return state;
}

absl::StatusOr<core::TrainerState> SessionManager::State(const WeightsRef& ref) {
  RETURN_IF_ERROR(Find(ref.session).status());
  ASSIGN_OR_RETURN(auto where, Resolve(ref));
  return ReadState(ref.session, where.first, where.second);
}

absl::StatusOr<SessionManager::Served> SessionManager::Weights(const WeightsRef& ref) {
  ASSIGN_OR_RETURN(std::shared_ptr<LiveSession> s, Find(ref.session));
  ASSIGN_OR_RETURN(auto where, Resolve(ref));
  // The same step has the same weights, from a snapshot or a checkpoint (restarts are
  // bit-identical): one network per (session, step).
  const std::string key = absl::StrCat(ref.session, "@", where.first);
  {
    absl::MutexLock lock(&cache_mu_);
    if (auto it = networks_.find(key); it != networks_.end()) {
      it->second.last_use = ++clock_;
      return it->second.served;
    }
  }
  ASSIGN_OR_RETURN(core::TrainerState state, ReadState(ref.session, where.first, where.second));
  // A checkpoint may have been replaced since it was resolved: key by what was read.
  const std::string read_key = absl::StrCat(ref.session, "@", state.step);
  // The kind of targets it was trained on, from the data set's record (its values are
  // not needed: the network is built from the stored weights alone).
  ASSIGN_OR_RETURN(v1::Dataset train, storage_->GetDataset(s->record().train_dataset()));
  const bool class_labels = train.target_kind() == v1::TARGET_KIND_CLASS_LABELS;
  auto network = core::Network::Create(s->options().network, std::move(state.weights), state.biases,
                                       class_labels);
  if (!network.ok())
    return absl::DataLossError(absl::StrCat(
        SnapshotName(ref.session, state.step),
        ": stored weights do not fit the session's network: ", network.status().message()));
  Served served;
  served.network = std::make_shared<const core::Network>(std::move(*network));
  served.step = state.step;
  served.epoch = state.epoch;
  served.class_labels = class_labels;
  absl::MutexLock lock(&cache_mu_);
  networks_[read_key] = CachedNetwork{served, ++clock_};
  while (networks_.size() > kMaxNetworks) {
    auto oldest = networks_.begin();
    for (auto it = networks_.begin(); it != networks_.end(); ++it)
      if (it->second.last_use < oldest->second.last_use) oldest = it;
    networks_.erase(oldest);  // requests still using it keep their reference
  }
  return served;
}

}  // namespace alignd::server
