// File: server/api/snapshot_streams.cc
#include "server/api/snapshot_streams.h"

#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/api/resource_names.h"
#include "server/api/stream_reactor.h"

namespace alignd::server {

namespace {

// The tensors of a state in the order SnapshotMetadata lists them.
std::vector<std::pair<std::string, const core::Matrix*>> Tensors(const core::TrainerState& st) {
  std::vector<std::pair<std::string, const core::Matrix*>> out;
  for (size_t i = 0; i < st.weights.size(); ++i) {
    out.emplace_back(absl::StrCat("W", i), &st.weights[i]);
    out.emplace_back(absl::StrCat("b", i), &st.biases[i]);
    out.emplace_back(absl::StrCat("B", i), &st.feedback[i]);
  }
  return out;
}

}  // namespace

v1::Snapshot SnapshotMetadata(const std::string& name, const core::TrainerState& st) {
  v1::Snapshot h;
  h.set_name(name);
  h.set_step(st.step);
  h.set_epoch(st.epoch);
  int64_t total = 0;
  for (const auto& [label, m] : Tensors(st)) {
    auto* shape = h.add_shapes();
    shape->set_label(label);
    shape->set_rows(m->rows());
    shape->set_cols(m->cols());
    total += m->size();
  }
  h.set_total_values(total);
  return h;
}

std::vector<v1::SnapshotChunk> SnapshotChunks(const std::string& name,
                                              const core::TrainerState& st) {
  std::vector<const core::Matrix*> tensors;
  for (const auto& t : Tensors(st)) tensors.push_back(t.second);
  v1::SnapshotChunk head;
  *head.mutable_header() = SnapshotMetadata(name, st);
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
    for (Eigen::Index k = 0; k < m->size();) {
      if (chunk.values().data_size() == 0) chunk.mutable_values()->set_offset(offset);
      const Eigen::Index n =
          std::min<Eigen::Index>(m->size() - k, kValuesPerChunk - chunk.values().data_size());
      chunk.mutable_values()->mutable_data()->Add(m->data() + k, m->data() + k + n);
      k += n;
      offset += n;
      if (chunk.values().data_size() == kValuesPerChunk) flush();
    }
  }
  flush();
  return out;
}

namespace {

// Sends chunks as a fetch produced them; `more` says whether to fetch again when sent.
class ChunkStream : public SessionStream<v1::SnapshotChunk> {
 protected:
  using SessionStream::SessionStream;
  bool SendChunk() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (chunks_.empty()) return false;
    current_ = std::move(chunks_.front());
    chunks_.pop_front();
    Send(&current_);
    return true;
  }
  void Add(const std::string& name, const core::TrainerState& st) {  // from a fetch
    for (auto& c : SnapshotChunks(name, st)) chunks_.push_back(std::move(c));
  }
  std::deque<v1::SnapshotChunk> chunks_;            // filled by a fetch
  v1::SnapshotChunk current_ ABSL_GUARDED_BY(mu_);  // in flight
};

// ReadSnapshot: one state, then OK.
class SnapshotReader final : public ChunkStream {
 public:
  SnapshotReader(SessionManager* sessions, Executor* executor, std::shared_ptr<LiveSession> s,
                 WeightsRef ref)
      : ChunkStream(executor, std::move(s)), sessions_(sessions), ref_(std::move(ref)) {
    Pump();  // not a watcher: the snapshot is there or not
  }

 private:
  void Stopped() override {}
  void Next() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (SendChunk()) return;
    if (loaded_) return End(grpc::Status::OK);
    loaded_ = true;
    Fetch([this]() -> absl::Status {
      ASSIGN_OR_RETURN(core::TrainerState st, sessions_->State(ref_));
      Add(SnapshotName(ref_.session, st.step), st);
      return absl::OkStatus();
    });
  }
  SessionManager* const sessions_;
  const WeightsRef ref_;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
};

// StreamSnapshots: the stored snapshots from start_step, then each as it is written;
// ends when the session is over and every snapshot was sent.
class SnapshotStream final : public ChunkStream {
 public:
  SnapshotStream(SessionManager* sessions, Executor* executor, std::shared_ptr<LiveSession> s,
                 int64_t start_step)
      : ChunkStream(executor, std::move(s)), sessions_(sessions), next_step_(start_step) {
    Begin();
  }

 private:
  void Next() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (SendChunk()) return;
    // The state first: a snapshot written before the session ended is then seen below.
    const v1::SessionState st = session_->state();
    const bool over = session_->deleted() || st == v1::SESSION_STATE_SUCCEEDED ||
                      st == v1::SESSION_STATE_FAILED || st == v1::SESSION_STATE_CANCELLED ||
                      st == v1::SESSION_STATE_PAUSED;
    const int64_t stored = session_->snapshots_stored();
    if (looked_ && !found_ && stored == looked_at_ && !over) {
      if (sessions_->stopping())
        return End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "alignd is shutting down"));
      return;  // nothing new since the last look
    }
    if (looked_ && !found_ && over && stored == looked_at_) return End(grpc::Status::OK);
    looked_ = true;
    looked_at_ = stored;
    Fetch([this]() -> absl::Status {
      found_ = false;
      ASSIGN_OR_RETURN(std::vector<SnapshotInfo> stored,
                       sessions_->storage()->ListSnapshots(session_->name()));
      if (next_step_ < 0)  // from now on: after the last stored one
        next_step_ = stored.empty() ? 0 : stored.back().step + 1;
      for (const SnapshotInfo& info : stored) {
        const int64_t step = info.step;
        if (step < next_step_) continue;
        ASSIGN_OR_RETURN(core::TrainerState st, sessions_->SnapshotState(session_->name(), step));
        Add(SnapshotName(session_->name(), step), st);
        next_step_ = step + 1;
        found_ = true;
        break;
      }
      return absl::OkStatus();
    });
  }

  SessionManager* const sessions_;
  int64_t next_step_;   // fetches
  bool found_ = false;  // fetches: the last look found a snapshot
  bool looked_ ABSL_GUARDED_BY(mu_) = false;
  int64_t looked_at_ ABSL_GUARDED_BY(mu_) = 0;  // snapshots_stored() at the last look
};

}  // namespace

grpc::ServerWriteReactor<v1::SnapshotChunk>* NewSnapshotReader(SessionManager* sessions,
                                                               Executor* executor,
                                                               const v1::ReadSnapshotRequest& req) {
  auto ref = ParseSnapshotName(req.name());
  if (!ref.ok()) return new FailedStream<v1::SnapshotChunk>(ref.status());
  auto s = sessions->Find(ref->session);
  if (!s.ok()) return new FailedStream<v1::SnapshotChunk>(s.status());
  return new SnapshotReader(sessions, executor, *s, *ref);
}

grpc::ServerWriteReactor<v1::SnapshotChunk>* NewSnapshotStream(
    SessionManager* sessions, Executor* executor, const v1::StreamSnapshotsRequest& req) {
  auto s = sessions->Find(req.parent());
  if (!s.ok()) return new FailedStream<v1::SnapshotChunk>(s.status());
  if (req.start_step() < 0)
    return new FailedStream<v1::SnapshotChunk>(
        absl::InvalidArgumentError("start_step must be >= 0"));
  // start_step 0 (unset): the snapshots written from now on.
  return new SnapshotStream(sessions, executor, *s, req.start_step() > 0 ? req.start_step() : -1);
}

}  // namespace alignd::server
