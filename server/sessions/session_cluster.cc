// File: server/sessions/session_cluster.cc
// -----------------------------------------------------------------------------
// SessionManager on replicas that share one database (cluster.h): the queue is the
// database's, workers claim from it under leases, a heartbeat renews them (and hears the
// pauses and cancels other replicas ask for), and announcements keep the local view of
// sessions trained elsewhere — their records and their logs' ends — fresh for Get and for
// the streams that follow them.
#include <algorithm>
#include <chrono>
#include <climits>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "core/cpu.h"
#include "server/api/proto_convert.h"
#include "server/net/log.h"
#include "server/sessions/session_manager.h"
#include "server/sessions/session_rules.h"

namespace alignd::server {
namespace {

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::Status SessionManager::StartCluster() {
  {
    absl::MutexLock sync(&sync_mu_);
    ASSIGN_OR_RETURN(std::vector<SessionRow> rows, cluster_->Changes(0, nullptr, &cursor_));
    for (const SessionRow& row : rows) Refresh(row);
  }
  {
    absl::MutexLock lock(&mu_);
    stopping_ = false;
  }
  cluster_->Listen(Cluster::Listener{
      [this](const std::string& name) { RefreshByName(name); },
      [this](const std::string& name, int64_t seq) { OnLog(name, seq); }, [this] { Resync(); }});
  for (int i = 0; i < options_.max_running; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  return absl::OkStatus();
}

std::shared_ptr<LiveSession> SessionManager::Refresh(const SessionRow& row) {
  const std::string& name = row.record.name();
  // One refresh at a time: a row read earlier is never applied over one read later.
  absl::ReleasableMutexLock one(&refresh_mu_);
  std::shared_ptr<LiveSession> s;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(name);
    if (it == sessions_.end()) {
      auto options = ToTrainerOptions(row.record.config());
      s = std::make_shared<LiveSession>(row.record,
                                        options.ok() ? *options : core::TrainerOptions());
      s->metrics().Reset(row.logged_seq);
      s->row_version_ = row.version;
      s->row_epoch_ = row.epoch;
      sessions_[name] = s;
      ++claim_hint_;
      return s;
    }
    s = it->second;
    if (row.record.state() == v1::SESSION_STATE_QUEUED) ++claim_hint_;
  }
  if (s->held_here()) return s;  // this process's view is ahead of the database's
  // A row older than the one applied last (two readers raced: an announcement's read and
  // a Get's, say) would take the record back.
  if (row.version < s->row_version_) return s;
  s->row_version_ = row.version;
  // The log's end as stored first, then the record: a stream that sees the record's new
  // state (SUCCEEDED, say) must find every event up to its end already readable. A stream
  // reads what it has not seen from the database. Under one lease the stored log only
  // grows (a row read before an announced batch must not take the end back); a claim, at a
  // higher epoch, may have cut it back to the checkpoint (the events come again, the same).
  const bool cut = row.epoch > s->row_epoch_;
  s->row_epoch_ = std::max(s->row_epoch_, row.epoch);
  const int64_t end = cut ? row.logged_seq : std::max(row.logged_seq, s->metrics().last_seq());
  bool changed = false;
  if (s->metrics().last_seq() != end || s->metrics().stored_seq() != end) {
    s->metrics().Reset(end);
    changed = true;
  }
  {
    absl::MutexLock lock(&s->mu_);
    if (s->record_.SerializeAsString() != row.record.SerializeAsString()) {
      s->record_ = row.record;
      changed = true;
    }
    s->record_.set_last_seq(std::max(s->record_.last_seq(), row.logged_seq));
  }
  one.Release();
  if (changed) s->Notify();
  return s;
}

void SessionManager::RefreshByName(const std::string& name) {
  std::shared_ptr<LiveSession> s;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = sessions_.find(name); it != sessions_.end()) s = it->second;
    ++claim_hint_;
    // A stop asked of a session trained here: the heartbeat hears what, now.
    if (s != nullptr && s->held_here()) renew_now_ = true;
  }
  if (s != nullptr && s->held_here()) return;
  auto row = cluster_->Read(name);
  if (row.ok()) {
    Refresh(*row);
  } else if (absl::IsNotFound(row.status())) {
    Forget(name);
  }
}

bool SessionManager::LogEndsBefore(LiveSession& s, int64_t seq) {
  if (cluster_ == nullptr || s.held_here()) return false;
  auto row = cluster_->Read(s.name());
  if (!row.ok() || row->logged_seq >= seq) return false;
  Refresh(*row);
  MetricRing::Where where;
  s.metrics().Get(seq, &where);
  return where != MetricRing::Where::kOlder;
}

void SessionManager::OnLog(const std::string& name, int64_t seq) {
  std::shared_ptr<LiveSession> s;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = sessions_.find(name); it != sessions_.end()) s = it->second;
  }
  if (s == nullptr) return RefreshByName(name);
  {
    absl::MutexLock one(&refresh_mu_);
    if (s->held_here() || seq <= s->metrics().last_seq()) return;
    s->metrics().Reset(seq);
    absl::MutexLock lock(&s->mu_);
    s->record_.set_last_seq(std::max(s->record_.last_seq(), seq));
  }
  s->Notify();
}

void SessionManager::Resync() {
  absl::MutexLock sync(&sync_mu_);
  // What this process knew before the read: a session it learns of after the read began
  // (created here a moment ago, say) is no session the read missed.
  std::map<std::string, std::shared_ptr<LiveSession>> known;
  {
    absl::MutexLock lock(&mu_);
    known = sessions_;
  }
  std::vector<std::string> names;
  int64_t next = 0;
  auto rows = cluster_->Changes(cursor_, &names, &next);
  if (!rows.ok()) return;
  for (const SessionRow& row : *rows) Refresh(row);
  cursor_ = next;
  std::sort(names.begin(), names.end());
  for (const auto& [name, s] : known)
    if (!s->held_here() && !std::binary_search(names.begin(), names.end(), name))
      Forget(name, s.get());
}

void SessionManager::Forget(const std::string& name, const LiveSession* only) {
  std::shared_ptr<LiveSession> s;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(name);
    if (it == sessions_.end() || it->second->held_here()) return;
    if (only != nullptr && it->second.get() != only) return;
    s = it->second;
    sessions_.erase(it);
    s->deleted_ = true;
  }
  DropNetworks(name);
  s->Notify();
}

absl::StatusOr<v1::Session> SessionManager::CreateInCluster(const v1::Session& record,
                                                            const core::TrainerOptions& options,
                                                            const std::string& request_key,
                                                            const Requester& by) {
  // The data sets may have been deleted since Create loaded them.
  for (const std::string& d : {record.train_dataset(), record.eval_dataset()})
    if (!d.empty()) RETURN_IF_ERROR(storage_->GetDataset(d).status());
  InsertLimits limits;
  limits.request_key = request_key;
  limits.max_queued = options_.max_queued;
  limits.max_sessions = options_.max_sessions;
  limits.max_active = by.max_active;
  ASSIGN_OR_RETURN(v1::Session stored, cluster_->Insert(record, limits));
  {
    absl::MutexLock lock(&mu_);
    if (sessions_.count(stored.name()) == 0) {
      auto o = stored.name() == record.name() ? absl::StatusOr<core::TrainerOptions>(options)
                                              : ToTrainerOptions(stored.config());
      auto s = std::make_shared<LiveSession>(stored, o.ok() ? *o : core::TrainerOptions());
      s->metrics().Reset(stored.last_seq());
      sessions_[stored.name()] = s;
    }
    ++claim_hint_;
  }
  return stored;
}

absl::StatusOr<v1::Session> SessionManager::ChangeInCluster(const std::string& name, Cluster::Op op,
                                                            const Requester& by) {
  ASSIGN_OR_RETURN(Cluster::OpResult r,
                   cluster_->Transition(name, op, options_.max_queued, by.max_active));
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(2 * options_.lease_ms + 30000);
  auto retry_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.lease_ms);
  while (r.asked) {
    // The holder stops at its next step and writes the new state; if it is here, it hears
    // it now rather than from the announcement.
    if (auto s = Find(name); s.ok() && (*s)->held_here())
      (*s)->AskStop(op == Cluster::Op::kPause ? LiveSession::StopRequest::kPause
                                              : LiveSession::StopRequest::kCancel);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSIGN_OR_RETURN(SessionRow row, cluster_->Read(name));
    if (row.record.state() != v1::SESSION_STATE_RUNNING) {
      r.record = row.record;
      break;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      return absl::DeadlineExceededError(
          absl::StrCat("the replica that trains ", name, " did not stop in time; the ",
                       op == Cluster::Op::kPause ? "pause" : "cancel", " stays asked of it"));
    // A holder that died after it was asked: its lease runs out, and the change is made here.
    if (now >= retry_at) {
      ASSIGN_OR_RETURN(r, cluster_->Transition(name, op, options_.max_queued, by.max_active));
      retry_at = now + std::chrono::milliseconds(options_.lease_ms);
    }
  }
  if (auto row = cluster_->Read(name); row.ok()) Refresh(*row);
  {
    absl::MutexLock lock(&mu_);
    ++claim_hint_;
  }
  return r.record;
}

absl::Status SessionManager::DeleteInCluster(const std::shared_ptr<LiveSession>& s) {
  RETURN_IF_ERROR(cluster_->Delete(s->name()));
  absl::MutexLock lock(&mu_);
  sessions_.erase(s->name());
  s->deleted_ = true;
  return absl::OkStatus();
}

void SessionManager::ClusterWorkerLoop() {
  while (true) {
    int64_t hint = 0;
    std::shared_ptr<LiveSession> s;
    int threads = 0;
    int64_t epoch = 0;  // of this run's lease
    {
      absl::MutexLock claim(&claim_mu_);
      int free_threads = 0;
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        hint = claim_hint_;
        // As one alignd: a session wider than --max_threads (stored by a server that
        // allowed it) runs alone.
        free_threads = threads_in_use_ == 0 ? INT_MAX : options_.max_threads - threads_in_use_;
      }
      std::vector<std::string> busy;
      if (free_threads > 0) {
        {
          absl::MutexLock lock(&mu_);
          busy.assign(in_run_.begin(), in_run_.end());
        }
        auto claimed = cluster_->Claim(free_threads, options_.lease_ms, busy);
        if (claimed.ok() && claimed->has_value()) {
          ClaimedSession& c = **claimed;
          s = Refresh(
              SessionRow{c.record, c.record.last_seq(), c.version, cluster_->replica(), c.epoch});
          {
            absl::MutexLock one(&refresh_mu_);
            s->metrics().Reset(c.record.last_seq());
            {
              absl::MutexLock lock(&s->mu_);
              s->record_ = c.record;
            }
            s->row_version_ = std::max(s->row_version_, c.version);
            s->row_epoch_ = std::max(s->row_epoch_, c.epoch);
            s->stop_ = LiveSession::StopRequest::kNone;
            s->renewed_ms_ = SteadyMs();
            s->epoch_ = c.epoch;
          }
          epoch = c.epoch;
          LogInfo("claimed", {{"session", s->name()},
                              {"epoch", c.epoch},
                              {"step", c.record.step()},
                              {"replica", cluster_->replica()}});
          threads = s->options().threads;
          absl::MutexLock lock(&mu_);
          in_run_.insert(s->name());
          ++running_;
          threads_in_use_ += threads;
          // Shut down since the claim: the run stores its checkpoint and gives it back.
          if (stopping_) s->stop_ = LiveSession::StopRequest::kShutdown;
        }
      }
    }
    if (s == nullptr) {
      // Nothing to claim (or no room, or the database away): wait for an announcement or
      // the next look.
      absl::MutexLock lock(&mu_);
      struct Wait {
        SessionManager* m;
        int64_t hint;
      } w{this, hint};
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](Wait* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                 return w->m->stopping_.load() || w->m->claim_hint_ != w->hint;
                               },
                               &w),
                           absl::Milliseconds(options_.claim_poll_ms));
      continue;
    }
    s->Notify();
    std::unique_ptr<Storage> fenced =
        cluster_->Fenced(s->name(), epoch, [p = s.get()] { return p->record(); });
    try {
      RunSession(s, fenced.get());
    } catch (const std::bad_alloc&) {
      SetState(*s, v1::SESSION_STATE_FAILED,
               "out of memory while training (the machine could not provide what "
               "the session needed; lower batch_size or the network's size)",
               fenced.get());
    } catch (const std::exception& e) {
      SetState(*s, v1::SESSION_STATE_FAILED,
               absl::StrCat("internal error while training: ", e.what()), fenced.get());
    }
    {
      // This run's lease only (held_here() ends with it).
      absl::MutexLock one(&refresh_mu_);
      int64_t mine = epoch;
      s->epoch_.compare_exchange_strong(mine, 0);
    }
    // The database's word on how it ended (or who has it now).
    if (auto row = cluster_->Read(s->name()); row.ok()) {
      Refresh(*row);
    } else if (absl::IsNotFound(row.status())) {
      Forget(s->name());
    }
    s->Notify();
    absl::MutexLock lock(&mu_);
    in_run_.erase(s->name());
    --running_;
    threads_in_use_ -= threads;
    ++claim_hint_;  // room again: look at once
  }
}

void SessionManager::HeartbeatLoop() {
  const int64_t every = std::max<int64_t>(10, options_.lease_ms / 4);
  while (true) {
    std::vector<std::shared_ptr<LiveSession>> held;
    {
      absl::MutexLock lock(&mu_);
      // Through shutdown it goes on at its pace (the runs still write under their leases)
      // and ends once they have.
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](SessionManager* m) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                 return m->renew_now_ || (m->stopping_.load() && m->running_ == 0);
                               },
                               this),
                           absl::Milliseconds(every));
      renew_now_ = false;
      // Renewed until the workers have left them, through shutdown too: the last
      // checkpoint and the record are written under a live lease.
      for (auto& [name, s] : sessions_)
        if (s->held_here()) held.push_back(s);
      if (stopping_ && running_ == 0) return;
    }
    for (auto& s : held) {
      const int64_t epoch = s->epoch_.load();
      if (epoch == 0) continue;
      auto ask = cluster_->Renew(s->name(), epoch, options_.lease_ms);
      if (ask.ok()) {
        s->renewed_ms_ = SteadyMs();
        if (*ask == StopAsk::kPause) s->AskStop(LiveSession::StopRequest::kPause);
        if (*ask == StopAsk::kCancel) s->AskStop(LiveSession::StopRequest::kCancel);
      } else if (s->epoch_.load() != epoch) {
        // The run ended (or a new one began) meanwhile: nothing to say of that lease.
      } else if (absl::IsAborted(ask.status()) ||
                 SteadyMs() - s->renewed_ms_.load() > options_.lease_ms * 3 / 4) {
        // Taken over, or not renewed for most of the lease (another replica may take it any
        // moment): this process stops training it and writes nothing more.
        if (s->stop_.exchange(LiveSession::StopRequest::kLeaseLost) !=
            LiveSession::StopRequest::kLeaseLost)
          LogWarn("lease lost: stopping the session, writing nothing more",
                  {{"session", s->name()},
                   {"epoch", epoch},
                   {"replica", cluster_->replica()},
                   {"why", std::string(ask.status().message())}});
      }
    }
  }
}

}  // namespace alignd::server
