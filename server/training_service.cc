// File: server/training_service.cc
#include "server/training_service.h"

#include <sys/stat.h>

#include <algorithm>
#include <deque>
#include <mutex>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/trainer.h"
#include "google/protobuf/util/time_util.h"
#include "server/proto_convert.h"
#include "server/resource_names.h"
#include "server/status_convert.h"

namespace alignd::server {
namespace {

template <typename Ctx>
grpc::ServerUnaryReactor* Done(Ctx* ctx, const absl::Status& s) {
  auto* r = ctx->DefaultReactor();
  r->Finish(ToGrpcStatus(s));
  return r;
}

// Answers a unary call with a value or an error.
template <typename T>
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* ctx, absl::StatusOr<T> value,
                                T* response) {
  if (value.ok()) *response = std::move(*value);
  return Done(ctx, value.status());
}

// Runs a unary handler's body. Nothing may escape a handler (gRPC 1.51 answers a throwing
// handler with UNIMPLEMENTED and no message): an allocation that fails becomes
// RESOURCE_EXHAUSTED, anything else INTERNAL, each with a message.
absl::Status FromException(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        "the server ran out of memory answering this request; ask for less at once");
  } catch (const std::exception& x) {
    return absl::InternalError(absl::StrCat("internal error: ", x.what()));
  } catch (...) {
    return absl::InternalError("internal error: unknown exception");
  }
}

template <typename F>
grpc::ServerUnaryReactor* Guard(grpc::CallbackServerContext* ctx, F&& body) {
  try {
    return body();
  } catch (...) {
    return Done(ctx, FromException(std::current_exception()));
  }
}

// A server stream that ends at once with an error.
template <typename T>
class FailedWriter : public grpc::ServerWriteReactor<T> {
 public:
  explicit FailedWriter(const absl::Status& s) { this->Finish(ToGrpcStatus(s)); }
  void OnDone() override { delete this; }
};

int PageSize(int requested, int dflt, int cap) {
  if (requested <= 0) return dflt;
  return std::min(requested, cap);
}

bool IsTerminal(v1::SessionState s) {
  return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED;
}

// ---- Upload ---------------------------------------------------------------------------

class UploadReactor : public grpc::ServerReadReactor<v1::UploadDatasetRequest> {
 public:
  UploadReactor(grpc::CallbackServerContext* ctx, DatasetStore* store, v1::Dataset* response)
      : ctx_(ctx), store_(store), response_(response) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    try {
      Read(ok);
    } catch (...) {
      Finish(ToGrpcStatus(FromException(std::current_exception())));
    }
  }

  void OnDone() override { delete this; }  // an unfinished upload removes its temporary file

 private:
  void Read(bool ok) {
    if (!ok) {
      // The client half-closed, or the call was cancelled (gRPC marks the context
      // before this callback): only a half-close commits. A client that cancels never
      // finds its upload stored.
      if (ctx_->IsCancelled()) return Finish(grpc::Status::CANCELLED);
      if (upload_ == nullptr)
        return Finish(ToGrpcStatus(absl::InvalidArgumentError("no header was sent")));
      auto d = upload_->Finish();
      if (d.ok()) *response_ = *d;
      return Finish(ToGrpcStatus(d.status()));
    }
    absl::Status s;
    if (request_.has_header()) {
      if (upload_ != nullptr) {
        s = absl::InvalidArgumentError("a second header arrived; send one header, then chunks");
      } else {
        auto up = store_->BeginUpload(request_.header());
        if (up.ok()) upload_ = std::move(*up);
        s = up.status();
      }
    } else if (request_.has_chunk()) {
      s = upload_ == nullptr ? absl::InvalidArgumentError("a chunk arrived before the header")
                             : upload_->Append(request_.chunk());
    } else {
      s = absl::InvalidArgumentError("an empty message: set header or chunk");
    }
    if (!s.ok()) return Finish(ToGrpcStatus(s));
    StartRead(&request_);
  }

  grpc::CallbackServerContext* const ctx_;
  DatasetStore* store_;
  v1::Dataset* response_;
  v1::UploadDatasetRequest request_;
  std::unique_ptr<DatasetStore::Upload> upload_;
};

// ---- Metrics stream -------------------------------------------------------------------

// Sends the session's metric log from start_seq, then follows it; one write in flight.
// The log in storage is the queue: each wake-up reads what is new.
class MetricsReactor : public grpc::ServerWriteReactor<v1::MetricEvent>, public SessionListener {
 public:
  MetricsReactor(SessionManager* sessions, std::shared_ptr<Session> s, int64_t start_seq,
                 bool history_only, std::chrono::milliseconds heartbeat)
      : sessions_(sessions),
        session_(std::move(s)),
        next_seq_(std::max<int64_t>(1, start_seq)),
        history_only_(history_only),
        heartbeat_(heartbeat),
        last_write_(std::chrono::steady_clock::now()) {
    session_->AddListener(this);
    Pump();
  }

  void OnSessionUpdate() override { Pump(); }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      in_flight_ = false;
      if (!ok) return FinishOnce(grpc::Status::CANCELLED);  // the client went away
    }
    Pump();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    FinishOnce(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    session_->RemoveListener(this);  // no OnSessionUpdate after this returns
    delete this;
  }

 private:
  void Pump() {
    std::lock_guard<std::mutex> lock(mu_);
    if (in_flight_ || finished_) return;
    if (pending_.empty()) {
      auto batch = sessions_->storage()->ReadMetrics(session_->name(), next_seq_, 256);
      if (!batch.ok()) return FinishOnce(ToGrpcStatus(batch.status()));
      for (auto& e : *batch) pending_.push_back(std::move(e));
    }
    if (!pending_.empty()) {
      current_ = std::move(pending_.front());
      pending_.pop_front();
      next_seq_ = current_.seq() + 1;
      return Write();
    }
    // Caught up with the log.
    const v1::Session record = session_->record();
    const bool deleted = session_->deleted();
    const v1::SessionState st = record.state();
    if (sent_end_) return FinishOnce(grpc::Status::OK);
    if (sessions_->stopping())
      return FinishOnce(grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          absl::StrCat("alignd is shutting down; reconnect and resume from seq ", next_seq_)));
    // Heartbeats and the end event carry the log's last seq, never more (a start_seq past
    // the end must not make one up).
    const int64_t last_seq = std::min(next_seq_ - 1, record.last_seq());
    if (deleted || IsTerminal(st) || st == v1::PAUSED) {
      // The log is complete (events are appended before the state changes): say how it ended.
      current_.Clear();
      current_.set_seq(last_seq);
      *current_.mutable_wall_time() = Now();
      *current_.mutable_end() = record;
      sent_end_ = true;
      return Write();
    }
    // history_only on a session that goes on: the stored log is sent; the stream ends
    // with OK and no `end` event (which means ended, paused or deleted).
    if (history_only_) return FinishOnce(grpc::Status::OK);
    if (std::chrono::steady_clock::now() - last_write_ >= heartbeat_) {
      current_.Clear();
      current_.set_seq(last_seq);
      *current_.mutable_wall_time() = Now();
      current_.set_heartbeat(st);
      return Write();
    }
  }

  // Every path ends here exactly once; OnDone follows when gRPC is done with the call.
  void FinishOnce(const grpc::Status& status) {  // mu_ held
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  void Write() {  // mu_ held
    in_flight_ = true;
    last_write_ = std::chrono::steady_clock::now();
    StartWrite(&current_);
  }

  SessionManager* sessions_;
  std::shared_ptr<Session> session_;
  std::mutex mu_;
  int64_t next_seq_;
  const bool history_only_;
  const std::chrono::milliseconds heartbeat_;
  std::chrono::steady_clock::time_point last_write_;
  std::deque<v1::MetricEvent> pending_;
  v1::MetricEvent current_;
  bool in_flight_ = false;
  bool finished_ = false;
  bool sent_end_ = false;
};

// ---- Snapshots -----------------------------------------------------------------------

constexpr int kValuesPerChunk = 256 * 1024;

// Weights, biases and feedback of a stored state, as SnapshotChunks (header, then values).
std::vector<v1::SnapshotChunk> SnapshotChunks(const std::string& name,
                                              const core::TrainerState& st) {
  std::vector<const core::Matrix*> tensors;
  v1::SnapshotChunk head;
  auto* h = head.mutable_header();
  h->set_name(name);
  h->set_step(st.step);
  h->set_epoch(st.epoch);
  int64_t total = 0;
  for (size_t i = 0; i < st.weights.size(); ++i) {
    for (auto [label, m] :
         {std::pair<std::string, const core::Matrix*>{absl::StrCat("W", i), &st.weights[i]},
          {absl::StrCat("b", i), &st.biases[i]},
          {absl::StrCat("B", i), &st.feedback[i]}}) {
      auto* shape = h->add_shapes();
      shape->set_label(label);
      shape->set_rows(m->rows());
      shape->set_cols(m->cols());
      total += m->size();
      tensors.push_back(m);
    }
  }
  h->set_total_values(total);
  std::vector<v1::SnapshotChunk> out;
  out.push_back(std::move(head));
  v1::SnapshotChunk chunk;
  int64_t offset = 0;
  auto flush = [&] {
    if (chunk.values().data_size() == 0) return;
    out.push_back(std::move(chunk));
    chunk = v1::SnapshotChunk();
  };
  for (const core::Matrix* m : tensors) {
    for (Eigen::Index k = 0; k < m->size(); ++k) {
      if (chunk.values().data_size() == 0) chunk.mutable_values()->set_offset(offset);
      chunk.mutable_values()->add_data(m->data()[k]);
      ++offset;
      if (chunk.values().data_size() == kValuesPerChunk) flush();
    }
  }
  flush();
  return out;
}

class ChunkWriter : public grpc::ServerWriteReactor<v1::SnapshotChunk> {
 public:
  explicit ChunkWriter(absl::StatusOr<std::vector<v1::SnapshotChunk>> chunks) {
    if (!chunks.ok()) {
      Finish(ToGrpcStatus(chunks.status()));
      return;
    }
    chunks_ = std::move(*chunks);
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::CANCELLED);
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    if (next_ == chunks_.size()) return Finish(grpc::Status::OK);
    StartWrite(&chunks_[next_++]);
  }
  std::vector<v1::SnapshotChunk> chunks_;
  size_t next_ = 0;
};

// Streams a session's snapshots as they are written (each as a header chunk and value
// chunks), stored ones first from start_step; ends after the session ends.
class SnapshotStreamReactor : public grpc::ServerWriteReactor<v1::SnapshotChunk>,
                              public SessionListener {
 public:
  SnapshotStreamReactor(SessionManager* sessions, std::shared_ptr<Session> s, int64_t start_step)
      : sessions_(sessions), session_(std::move(s)) {
    if (start_step > 0) {
      next_step_ = start_step;
    } else {
      auto steps = sessions_->storage()->ListSnapshots(session_->name());
      next_step_ = steps.ok() && !steps->empty() ? steps->back() + 1 : 0;
    }
    session_->AddListener(this);
    Pump();
  }
  void OnSessionUpdate() override { Pump(); }
  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      in_flight_ = false;
      if (!ok) return FinishOnce(grpc::Status::CANCELLED);
    }
    Pump();
  }
  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    FinishOnce(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    session_->RemoveListener(this);
    delete this;
  }

 private:
  void Pump() {
    std::lock_guard<std::mutex> lock(mu_);
    if (in_flight_ || finished_) return;
    if (pending_.empty()) {
      // Read the state first: a snapshot written before the session ended is then seen below.
      const v1::SessionState st = session_->state();
      const bool over = session_->deleted() || st == v1::SUCCEEDED || st == v1::FAILED ||
                        st == v1::CANCELLED || st == v1::PAUSED;
      auto steps = sessions_->storage()->ListSnapshots(session_->name());
      if (!steps.ok()) return FinishOnce(ToGrpcStatus(steps.status()));
      for (int64_t step : *steps) {
        if (step < next_step_) continue;
        auto bytes = ReadFile(sessions_->storage()->SnapshotPath(session_->name().substr(9), step));
        auto state = bytes.ok() ? core::ParseState(*bytes)
                                : absl::StatusOr<core::TrainerState>(bytes.status());
        if (!state.ok()) return FinishOnce(ToGrpcStatus(state.status()));
        for (auto& c : SnapshotChunks(absl::StrCat(session_->name(), "/snapshots/", step), *state))
          pending_.push_back(std::move(c));
        next_step_ = step + 1;
        break;
      }
      if (pending_.empty()) {
        if (over) return FinishOnce(grpc::Status::OK);
        if (sessions_->stopping())
          return FinishOnce(grpc::Status(grpc::StatusCode::UNAVAILABLE, "alignd is shutting down"));
        return;
      }
    }
    current_ = std::move(pending_.front());
    pending_.pop_front();
    in_flight_ = true;
    StartWrite(&current_);
  }
  void FinishOnce(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  SessionManager* sessions_;
  std::shared_ptr<Session> session_;
  std::mutex mu_;
  int64_t next_step_ = 0;
  std::deque<v1::SnapshotChunk> pending_;
  v1::SnapshotChunk current_;
  bool in_flight_ = false;
  bool finished_ = false;
};

// "sessions/{id}/snapshots/{step|latest}" -> (session name, step); step -1 = latest.
absl::StatusOr<std::pair<std::string, int64_t>> ParseSnapshotName(const std::string& name) {
  RETURN_IF_ERROR(CheckNameLength(name));
  const size_t pos = name.find("/snapshots/");
  if (name.rfind("sessions/", 0) != 0 || pos == std::string::npos)
    return absl::InvalidArgumentError(
        absl::StrCat("name '", Excerpt(name), "' is not sessions/{id}/snapshots/{step}"));
  const std::string step_text = name.substr(pos + 11);
  int64_t step = -1;
  if (step_text != "latest" && (!absl::SimpleAtoi(step_text, &step) || step < 0))
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot step '", Excerpt(step_text), "' is not a number or 'latest'"));
  return std::make_pair(name.substr(0, pos), step);
}

// A weights file's identity without reading it: path, inode, size, modification time.
// Files are replaced by rename (AtomicWriteFile), so new weights are a new identity.
absl::StatusOr<std::string> FileKey(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return absl::NotFoundError(path);
  return absl::StrCat(path, "|", st.st_ino, "|", st.st_size, "|", st.st_mtim.tv_sec, ".",
                      st.st_mtim.tv_nsec);
}

absl::Status NoWeights(const std::string& session, int64_t step) {
  return absl::NotFoundError(step < 0 ? absl::StrCat(session, " has no weights stored yet")
                                      : absl::StrCat(session, "/snapshots/", step, " not found"));
}

// The file holding a session's weights at `step` (< 0: the newest of its last snapshot and
// its checkpoint). A checkpoint's step is parsed once per checkpoint file (`cache`).
// NotFound if there are none.
absl::StatusOr<std::string> WeightsPath(SessionManager* sessions, NetworkCache* cache,
                                        const std::string& session, int64_t step) {
  const std::string id = session.substr(9);
  if (step >= 0) return sessions->storage()->SnapshotPath(id, step);
  ASSIGN_OR_RETURN(std::vector<int64_t> steps, sessions->storage()->ListSnapshots(session));
  const std::string checkpoint = sessions->storage()->CheckpointPath(id);
  if (steps.empty()) return checkpoint;
  int64_t ck_step = -1;
  if (auto ck_key = FileKey(checkpoint); ck_key.ok()) {
    if (auto known = cache->Step(*ck_key)) {
      ck_step = *known;
    } else if (auto ck = ReadFile(checkpoint); ck.ok()) {
      if (auto st = core::ParseState(*ck); st.ok()) ck_step = st->step;
      cache->PutStep(*ck_key, ck_step);
    }
  }
  return steps.back() >= ck_step ? sessions->storage()->SnapshotPath(id, steps.back()) : checkpoint;
}

// The state in a weights file (see WeightsPath); NotFound if it is not there.
absl::StatusOr<core::TrainerState> ReadWeights(const std::string& path, const std::string& session,
                                               int64_t step) {
  auto bytes = ReadFile(path);
  if (!bytes.ok()) return NoWeights(session, step);
  return core::ParseState(*bytes);
}

absl::StatusOr<core::TrainerState> LoadSnapshot(SessionManager* sessions, NetworkCache* cache,
                                                const std::string& session, int64_t step,
                                                std::string* resolved_name) {
  RETURN_IF_ERROR(sessions->Find(session).status());
  ASSIGN_OR_RETURN(std::string path, WeightsPath(sessions, cache, session, step));
  ASSIGN_OR_RETURN(core::TrainerState st, ReadWeights(path, session, step));
  *resolved_name = absl::StrCat(session, "/snapshots/", st.step);
  return st;
}

}  // namespace

std::shared_ptr<const core::Trainer> NetworkCache::Get(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = networks_.find(key);
  if (it == networks_.end()) return nullptr;
  it->second.last_use = ++clock_;
  return it->second.trainer;
}

void NetworkCache::Put(const std::string& key, std::shared_ptr<const core::Trainer> trainer) {
  absl::MutexLock lock(&mu_);
  networks_[key] = Entry{std::move(trainer), ++clock_};
  while (networks_.size() > kMaxNetworks) {
    auto oldest = networks_.begin();
    for (auto it = networks_.begin(); it != networks_.end(); ++it)
      if (it->second.last_use < oldest->second.last_use) oldest = it;
    networks_.erase(oldest);  // requests still using it keep their reference
  }
}

std::optional<int64_t> NetworkCache::Step(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = steps_.find(key);
  if (it == steps_.end()) return std::nullopt;
  return it->second;
}

void NetworkCache::PutStep(const std::string& key, int64_t step) {
  absl::MutexLock lock(&mu_);
  if (steps_.size() >= 4096) steps_.clear();
  steps_[key] = step;
}

namespace {

// The network of the session holding the given weights ("sessions/{id}": the newest of its
// last snapshot and its checkpoint; ".../snapshots/{step}"), for Predict and Evaluate.
// Served from `cache` when that weights file was loaded before: a request then costs a
// few stat() calls and the forward pass, not a parse, a data set load and a Trainer.
absl::StatusOr<std::shared_ptr<const core::Trainer>> TrainerWith(SessionManager* sessions,
                                                                 NetworkCache* cache,
                                                                 const std::string& name) {
  std::string session = name;
  int64_t step = -1;
  if (name.find("/snapshots/") != std::string::npos) {
    ASSIGN_OR_RETURN(auto parsed, ParseSnapshotName(name));
    session = parsed.first;
    step = parsed.second;
  }
  ASSIGN_OR_RETURN(auto s, sessions->Find(session));
  ASSIGN_OR_RETURN(std::string path, WeightsPath(sessions, cache, session, step));
  auto key = FileKey(path);
  if (!key.ok()) return NoWeights(session, step);
  if (auto cached = cache->Get(*key)) return cached;
  ASSIGN_OR_RETURN(core::TrainerState st, ReadWeights(path, session, step));
  const v1::Session r = s->record();
  ASSIGN_OR_RETURN(auto train, sessions->datasets()->Load(r.train_dataset()));
  ASSIGN_OR_RETURN(auto trainer, core::Trainer::Create(s->options(), train));
  RETURN_IF_ERROR(trainer->ImportState(st));
  std::shared_ptr<const core::Trainer> shared = std::move(trainer);
  cache->Put(*key, shared);
  return shared;
}

}  // namespace

// ---- DatasetService -------------------------------------------------------------------

grpc::ServerReadReactor<v1::UploadDatasetRequest>* DatasetServiceImpl::UploadDataset(
    grpc::CallbackServerContext* ctx, v1::Dataset* response) {
  return new UploadReactor(ctx, store_, response);
}

grpc::ServerUnaryReactor* DatasetServiceImpl::CreateGeneratedDataset(
    grpc::CallbackServerContext* ctx, const v1::CreateGeneratedDatasetRequest* req,
    v1::Dataset* resp) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    return Reply(ctx, store_->Generate(req->spec(), req->display_name()), resp);
  });
}

grpc::ServerUnaryReactor* DatasetServiceImpl::GetDataset(grpc::CallbackServerContext* ctx,
                                                         const v1::GetDatasetRequest* req,
                                                         v1::Dataset* resp) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    if (req->name().rfind("datasets/", 0) != 0)
      return Done(ctx, absl::InvalidArgumentError(
                           absl::StrCat("name '", Excerpt(req->name()), "' is not datasets/{id}")));
    return Reply(ctx, store_->Get(req->name()), resp);
  });
}

grpc::ServerUnaryReactor* DatasetServiceImpl::ListDatasets(grpc::CallbackServerContext* ctx,
                                                           const v1::ListDatasetsRequest* req,
                                                           v1::ListDatasetsResponse* resp) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    const int size = PageSize(req->page_size(), 50, 1000);
    // Tokens are names this server gave (the last of the previous page).
    if (!req->page_token().empty() &&
        (req->page_token().rfind("datasets/", 0) != 0 || req->page_token().size() > kMaxNameBytes))
      return Done(ctx, absl::InvalidArgumentError("page_token is not one this server gave"));
    auto list = sessions_->storage()->ListDatasets(req->page_token(), size + 1);
    if (!list.ok()) return Done(ctx, list.status());
    for (int i = 0; i < static_cast<int>(list->size()) && i < size; ++i)
      *resp->add_datasets() = (*list)[i];
    if (static_cast<int>(list->size()) > size) resp->set_next_page_token((*list)[size - 1].name());
    return Done(ctx, absl::OkStatus());
  });
}

grpc::ServerUnaryReactor* DatasetServiceImpl::DeleteDataset(grpc::CallbackServerContext* ctx,
                                                            const v1::DeleteDatasetRequest* req,
                                                            google::protobuf::Empty*) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    return Done(ctx, sessions_->DeleteDataset(req->name()));
  });
}

// ---- TrainingService ------------------------------------------------------------------

TrainingServiceImpl::TrainingServiceImpl(SessionManager* sessions,
                                         std::chrono::milliseconds heartbeat)
    : sessions_(sessions), heartbeat_(heartbeat) {
  ticker_ = std::thread([this] {
    auto last = std::chrono::steady_clock::now();
    while (!stop_.load()) {
      std::this_thread::sleep_for(std::min(heartbeat_, std::chrono::milliseconds(100)));
      if (std::chrono::steady_clock::now() - last < heartbeat_) continue;
      last = std::chrono::steady_clock::now();
      for (const v1::Session& r : sessions_->List(v1::SESSION_STATE_UNSPECIFIED))
        if (auto s = sessions_->Find(r.name()); s.ok()) (*s)->Notify();
    }
  });
}

TrainingServiceImpl::~TrainingServiceImpl() {
  stop_ = true;
  ticker_.join();
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CreateSession(grpc::CallbackServerContext* ctx,
                                                             const v1::CreateSessionRequest* req,
                                                             v1::Session* resp) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    return Reply(ctx, sessions_->Create(*req), resp);
  });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetSession(grpc::CallbackServerContext* ctx,
                                                          const v1::GetSessionRequest* req,
                                                          v1::Session* resp) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    return Reply(ctx, sessions_->Get(req->name()), resp);
  });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListSessions(grpc::CallbackServerContext* ctx,
                                                            const v1::ListSessionsRequest* req,
                                                            v1::ListSessionsResponse* resp) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    if (!v1::SessionState_IsValid(req->state()))
      return Done(ctx,
                  absl::InvalidArgumentError(absl::StrCat("state: unknown value ", req->state())));
    if (!req->page_token().empty() &&
        (req->page_token().rfind("sessions/", 0) != 0 || req->page_token().size() > kMaxNameBytes))
      return Done(ctx, absl::InvalidArgumentError("page_token is not one this server gave"));
    const int size = PageSize(req->page_size(), 50, 1000);
    int n = 0;
    for (const v1::Session& s : sessions_->List(req->state())) {
      if (s.name() <= req->page_token()) continue;
      if (n == size) {
        resp->set_next_page_token(resp->sessions(size - 1).name());
        break;
      }
      *resp->add_sessions() = s;
      ++n;
    }
    return Done(ctx, absl::OkStatus());
  });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::PauseSession(grpc::CallbackServerContext* ctx,
                                                            const v1::PauseSessionRequest* req,
                                                            v1::Session* resp) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    return Reply(ctx, sessions_->Pause(req->name()), resp);
  });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ResumeSession(grpc::CallbackServerContext* ctx,
                                                             const v1::ResumeSessionRequest* req,
                                                             v1::Session* resp) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    return Reply(ctx, sessions_->Resume(req->name()), resp);
  });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CancelSession(grpc::CallbackServerContext* ctx,
                                                             const v1::CancelSessionRequest* req,
                                                             v1::Session* resp) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    return Reply(ctx, sessions_->Cancel(req->name()), resp);
  });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::DeleteSession(grpc::CallbackServerContext* ctx,
                                                             const v1::DeleteSessionRequest* req,
                                                             google::protobuf::Empty*) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    return Done(ctx, sessions_->Delete(req->name()));
  });
}

grpc::ServerWriteReactor<v1::MetricEvent>* TrainingServiceImpl::StreamMetrics(
    grpc::CallbackServerContext*, const v1::StreamMetricsRequest* req) {
  try {
    auto s = sessions_->Find(req->name());
    if (!s.ok()) return new FailedWriter<v1::MetricEvent>(s.status());
    if (req->start_seq() < 0)
      return new FailedWriter<v1::MetricEvent>(
          absl::InvalidArgumentError("start_seq must be >= 0"));
    return new MetricsReactor(sessions_, *s, req->start_seq(), req->history_only(), heartbeat_);
  } catch (...) {
    return new FailedWriter<v1::MetricEvent>(FromException(std::current_exception()));
  }
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListMetrics(grpc::CallbackServerContext* ctx,
                                                           const v1::ListMetricsRequest* req,
                                                           v1::ListMetricsResponse* resp) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    auto s = sessions_->Find(req->name());
    if (!s.ok()) return Done(ctx, s.status());
    int64_t start = std::max<int64_t>(1, req->start_seq());
    if (!req->page_token().empty() && (!absl::SimpleAtoi(req->page_token(), &start) || start < 1))
      return Done(ctx, absl::InvalidArgumentError("page_token is not one this server gave"));
    const int size = PageSize(req->page_size(), 500, 10000);
    if (req->max_points() < 0)
      return Done(ctx, absl::InvalidArgumentError("max_points must be >= 0"));
    if (req->max_points() == 0) {
      auto events = sessions_->storage()->ReadMetrics(req->name(), start, size + 1);
      if (!events.ok()) return Done(ctx, events.status());
      for (int i = 0; i < static_cast<int>(events->size()) && i < size; ++i)
        *resp->add_events() = (*events)[i];
      if (static_cast<int>(events->size()) > size)
        resp->set_next_page_token(std::to_string((*events)[size].seq()));
      return Done(ctx, absl::OkStatus());
    }
    // Downsampled: every k-th step event over the whole log from `start`; evaluations kept.
    std::vector<v1::MetricEvent> all;
    for (int64_t from = start;;) {
      auto events = sessions_->storage()->ReadMetrics(req->name(), from, 10000);
      if (!events.ok()) return Done(ctx, events.status());
      if (events->empty()) break;
      from = events->back().seq() + 1;
      for (auto& e : *events) all.push_back(std::move(e));
    }
    int64_t steps = 0;
    for (const auto& e : all) steps += e.has_step();
    const int64_t every = std::max<int64_t>(1, (steps + req->max_points() - 1) / req->max_points());
    int64_t k = 0;
    for (auto& e : all) {
      if (e.has_step() && (k++ % every) != 0) continue;
      *resp->add_events() = std::move(e);
    }
    return Done(ctx, absl::OkStatus());
  });
}

grpc::ServerWriteReactor<v1::SnapshotChunk>* TrainingServiceImpl::StreamSnapshots(
    grpc::CallbackServerContext*, const v1::StreamSnapshotsRequest* req) {
  try {
    auto s = sessions_->Find(req->name());
    if (!s.ok() || req->start_step() < 0)
      return new ChunkWriter(s.ok() ? absl::InvalidArgumentError("start_step must be >= 0")
                                    : s.status());
    return new SnapshotStreamReactor(sessions_, *s, req->start_step());
  } catch (...) {
    return new ChunkWriter(FromException(std::current_exception()));
  }
}

grpc::ServerWriteReactor<v1::SnapshotChunk>* TrainingServiceImpl::GetSnapshot(
    grpc::CallbackServerContext*, const v1::GetSnapshotRequest* req) {
  auto chunks = [&]() -> absl::StatusOr<std::vector<v1::SnapshotChunk>> {
    try {
      ASSIGN_OR_RETURN(auto parsed, ParseSnapshotName(req->name()));
      std::string resolved;
      ASSIGN_OR_RETURN(core::TrainerState st,
                       LoadSnapshot(sessions_, &networks_, parsed.first, parsed.second, &resolved));
      return SnapshotChunks(resolved, st);
    } catch (...) {
      return FromException(std::current_exception());
    }
  }();
  return new ChunkWriter(std::move(chunks));
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListSnapshots(grpc::CallbackServerContext* ctx,
                                                             const v1::ListSnapshotsRequest* req,
                                                             v1::ListSnapshotsResponse* resp) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    auto s = sessions_->Find(req->name());
    if (!s.ok()) return Done(ctx, s.status());
    auto steps = sessions_->storage()->ListSnapshots(req->name());
    if (!steps.ok()) return Done(ctx, steps.status());
    int64_t after = -1;
    if (!req->page_token().empty() && !absl::SimpleAtoi(req->page_token(), &after))
      return Done(ctx, absl::InvalidArgumentError("page_token is not one this server gave"));
    const int size = PageSize(req->page_size(), 50, 1000);
    for (int64_t step : *steps) {
      if (step <= after) continue;
      if (resp->snapshots_size() == size) {
        resp->set_next_page_token(std::to_string(resp->snapshots(size - 1).step()));
        break;
      }
      auto* e = resp->add_snapshots();
      e->set_name(absl::StrCat(req->name(), "/snapshots/", step));
      e->set_step(step);
    }
    return Done(ctx, absl::OkStatus());
  });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::Predict(grpc::CallbackServerContext* ctx,
                                                       const v1::PredictRequest* req,
                                                       v1::PredictResponse* resp) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    auto trainer = TrainerWith(sessions_, &networks_, req->name());
    if (!trainer.ok()) return Done(ctx, trainer.status());
    auto x = FromProto(req->inputs(), "inputs");
    if (!x.ok()) return Done(ctx, x.status());
    // The answer must fit a message: outputs (out x examples) of at most 2^24 floats.
    const int64_t outputs = int64_t{(*trainer)->options().network.sizes.back()} * x->cols();
    if (outputs > (int64_t{1} << 24))
      return Done(ctx,
                  absl::ResourceExhaustedError(absl::StrCat(
                      "the outputs would be ", outputs, " values (", x->cols(),
                      " examples); at most 16777216 per request: send fewer examples at once")));
    auto y = (*trainer)->Predict(*x);
    if (!y.ok()) return Done(ctx, y.status());
    ToProto(*y, resp->mutable_outputs());
    // Classes for networks trained on labels.
    const std::string session = req->name().substr(0, req->name().find("/snapshots/"));
    if (auto r = sessions_->Get(session); r.ok()) {
      if (auto d = sessions_->storage()->GetDataset(r->train_dataset());
          d.ok() && d->target_kind() == v1::TARGET_KIND_CLASS_LABELS) {
        for (Eigen::Index j = 0; j < y->cols(); ++j) {
          Eigen::Index k;
          y->col(j).maxCoeff(&k);
          resp->add_classes(static_cast<int32_t>(k));
        }
      }
    }
    return Done(ctx, absl::OkStatus());
  });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::Evaluate(grpc::CallbackServerContext* ctx,
                                                        const v1::EvaluateRequest* req,
                                                        v1::EvaluateResponse* resp) {
  return Guard(ctx, [&]() -> grpc::ServerUnaryReactor* {
    auto trainer = TrainerWith(sessions_, &networks_, req->name());
    if (!trainer.ok()) return Done(ctx, trainer.status());
    std::string dataset = req->dataset();
    if (dataset.empty()) {
      const std::string session = req->name().substr(0, req->name().find("/snapshots/"));
      auto r = sessions_->Get(session);
      if (!r.ok()) return Done(ctx, r.status());
      dataset = r->eval_dataset().empty() ? r->train_dataset() : r->eval_dataset();
    }
    auto data = sessions_->datasets()->Load(dataset);
    if (!data.ok()) return Done(ctx, data.status());
    auto m = (*trainer)->Evaluate(**data);
    if (!m.ok()) return Done(ctx, m.status());
    ToProto(*m, resp->mutable_metrics());
    return Done(ctx, absl::OkStatus());
  });
}

}  // namespace alignd::server
