// File: server/sessions/session_weights.cc
// -----------------------------------------------------------------------------
// The weights Predict, Evaluate and GetSnapshot serve: a session's snapshot or checkpoint
// resolved to a step, read and parsed, and built once per (session, step) into an immutable
// network shared by every caller (the newest few kept).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "core/trainer.h"
#include "server/sessions/session_manager.h"

namespace alignd::server {

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
