// File: server/api/snapshot_streams.cc
#include "server/api/snapshot_streams.h"

#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/api/proto_convert.h"
#include "server/api/resource_names.h"
#include "server/api/stream_reactor.h"
#include "server/sessions/session_rules.h"

namespace alignd::server {

namespace {

struct Tensor {
  std::string label;
  const core::Matrix* m;
  // A conv kernel: [out, in, kh, kw], sent in C order; else empty (column-major m).
  std::vector<int64_t> kernel;
};

// The tensors of a state in the order SnapshotMetadata lists them. A layer's W, and its B
// where B is shaped like W, is a kernel when the layer is a convolution (the network's
// layers say which; a state that does not fit them is sent as matrices).
std::vector<Tensor> Tensors(const core::TrainerState& st, const core::NetworkConfig& net) {
  const std::vector<core::LayerSpec> specs = core::LayerSpecs(net);
  std::vector<Tensor> out;
  int64_t channels = net.input.empty() ? 0 : net.input.channels;
  for (size_t i = 0; i < st.weights.size(); ++i) {
    std::vector<int64_t> kernel;
    if (i < specs.size()) {
      const core::LayerSpec& l = specs[i];
      if (l.kind == core::LayerKind::kConv) {
        const int64_t kh = l.kernel_h, kw = l.kernel_w == 0 ? l.kernel_h : l.kernel_w;
        if (st.weights[i].rows() == l.units && st.weights[i].cols() == channels * kh * kw)
          kernel = {l.units, channels, kh, kw};
        channels = l.units;
      } else if (l.kind == core::LayerKind::kDense || l.kind == core::LayerKind::kFlatten) {
        channels = 0;
      }
    }
    const bool b_like_w = !kernel.empty() && st.feedback[i].rows() == st.weights[i].rows() &&
                          st.feedback[i].cols() == st.weights[i].cols();
    out.push_back({absl::StrCat("W", i), &st.weights[i], kernel});
    out.push_back({absl::StrCat("b", i), &st.biases[i], {}});
    out.push_back(
        {absl::StrCat("B", i), &st.feedback[i], b_like_w ? kernel : std::vector<int64_t>()});
  }
  return out;
}

// t's values in the order its dims say. A kernel's matrix is out x (in * kh * kw),
// column-major: element (o, (i * kh + r) * kw + s) at o + out * ((i * kh + r) * kw + s), i.e.
// C order of [in, kh, kw, out]; the wire's C order of [out, in, kh, kw] is its transpose.
std::vector<float> WireValues(const Tensor& t) {
  const core::Matrix& m = *t.m;
  if (t.kernel.empty()) return std::vector<float>(m.data(), m.data() + m.size());
  std::vector<float> v(m.size());
  core::MatrixMap(v.data(), m.cols(), m.rows()) = m.transpose();
  return v;
}

}  // namespace

v1::Snapshot SnapshotMetadata(const std::string& name, const core::TrainerState& st,
                              const core::NetworkConfig& net) {
  v1::Snapshot h;
  h.set_name(name);
  h.set_step(st.step);
  h.set_epoch(st.epoch);
  int64_t total = 0;
  for (const Tensor& t : Tensors(st, net)) {
    auto* shape = h.add_shapes();
    shape->set_label(t.label);
    shape->set_rows(t.m->rows());
    shape->set_cols(t.m->cols());
    if (t.kernel.empty()) {
      shape->add_dims(t.m->rows());
      shape->add_dims(t.m->cols());
    } else {
      for (int64_t d : t.kernel) shape->add_dims(d);
    }
    total += t.m->size();
  }
  const std::vector<core::LayerSpec> specs = core::LayerSpecs(net);
  for (size_t i = 0; i < st.weights.size(); ++i)
    h.add_layer_kinds(i < specs.size() ? FromLayerKind(specs[i].kind) : v1::LAYER_KIND_DENSE);
  h.set_total_values(total);
  return h;
}

std::vector<v1::SnapshotChunk> SnapshotChunks(const std::string& name, const core::TrainerState& st,
                                              const core::NetworkConfig& net) {
  // Matrices are sent from their memory; kernels reordered (a copy each).
  std::vector<const float*> tensors;
  std::vector<int64_t> sizes;
  std::vector<std::vector<float>> reordered;
  const std::vector<Tensor> all = Tensors(st, net);
  reordered.reserve(all.size());
  for (const Tensor& t : all) {
    if (t.kernel.empty()) {
      tensors.push_back(t.m->data());
    } else {
      reordered.push_back(WireValues(t));
      tensors.push_back(reordered.back().data());
    }
    sizes.push_back(t.m->size());
  }
  v1::SnapshotChunk head;
  *head.mutable_header() = SnapshotMetadata(name, st, net);
  std::vector<v1::SnapshotChunk> out;
  out.push_back(std::move(head));
  v1::SnapshotChunk chunk;
  int64_t offset = 0;
  auto flush = [&] {
    if (chunk.values().data_size() == 0) return;
    out.push_back(std::move(chunk));
    chunk = v1::SnapshotChunk();
  };
  for (size_t t = 0; t < tensors.size(); ++t) {
    const float* data = tensors[t];
    for (int64_t k = 0; k < sizes[t];) {
      if (chunk.values().data_size() == 0) chunk.mutable_values()->set_offset(offset);
      const int64_t n =
          std::min<int64_t>(sizes[t] - k, kValuesPerChunk - chunk.values().data_size());
      chunk.mutable_values()->mutable_data()->Add(data + k, data + k + n);
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
    for (auto& c : SnapshotChunks(name, st, session_->options().network))
      chunks_.push_back(std::move(c));
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
    const bool over = session_->deleted() || IsTerminal(st) || st == v1::SESSION_STATE_PAUSED;
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
