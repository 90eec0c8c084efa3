// File: server/sessions/live_session.cc
#include "server/sessions/live_session.h"

#include <algorithm>

namespace alignd::server {

void MetricRing::Reset(int64_t last_seq) {
  absl::MutexLock lock(&mu_);
  events_.clear();
  encoded_.clear();
  first_seq_ = last_seq + 1;
  stored_seq_ = last_seq;
}

void MetricRing::Push(std::shared_ptr<const v1::MetricEvent> event) {
  absl::MutexLock lock(&mu_);
  events_.push_back(std::move(event));
  encoded_.emplace_back();
  Trim();
}

void MetricRing::MarkStored(int64_t seq) {
  absl::MutexLock lock(&mu_);
  stored_seq_ = std::max(stored_seq_, seq);
  Trim();
}

void MetricRing::Trim() {
  while (events_.size() > kKeep && first_seq_ <= stored_seq_) {
    events_.pop_front();
    encoded_.pop_front();
    ++first_seq_;
  }
}

std::shared_ptr<const v1::MetricEvent> MetricRing::Get(int64_t seq, Where* where) const {
  absl::MutexLock lock(&mu_);
  if (seq < first_seq_) {
    *where = Where::kOlder;
    return nullptr;
  }
  if (seq >= first_seq_ + static_cast<int64_t>(events_.size())) {
    *where = Where::kNotYet;
    return nullptr;
  }
  *where = Where::kHere;
  return events_[static_cast<size_t>(seq - first_seq_)];
}

MetricRing::Encoded MetricRing::GetEncoded(int64_t seq, Where* where) const {
  absl::MutexLock lock(&mu_);
  if (seq < first_seq_) {
    *where = Where::kOlder;
    return {};
  }
  if (seq >= first_seq_ + static_cast<int64_t>(events_.size())) {
    *where = Where::kNotYet;
    return {};
  }
  *where = Where::kHere;
  const auto k = static_cast<size_t>(seq - first_seq_);
  // Under the lock, so that it is made once: an event of a few hundred bytes takes ~1 us.
  if (encoded_[k] == nullptr)
    encoded_[k] = std::make_shared<const std::string>(events_[k]->SerializeAsString());
  return {events_[k], encoded_[k]};
}

std::vector<std::shared_ptr<const v1::MetricEvent>> MetricRing::Read(
    int64_t from, int64_t to, size_t limit, int64_t* first,
    const std::function<bool(const v1::MetricEvent&)>& keep) const {
  absl::MutexLock lock(&mu_);
  *first = first_seq_;
  std::vector<std::shared_ptr<const v1::MetricEvent>> out;
  const int64_t end = std::min(to, first_seq_ + static_cast<int64_t>(events_.size()) - 1);
  for (int64_t seq = std::max(from, first_seq_); seq <= end && out.size() < limit; ++seq) {
    const auto& e = events_[static_cast<size_t>(seq - first_seq_)];
    if (!keep || keep(*e)) out.push_back(e);
  }
  return out;
}

int64_t MetricRing::last_seq() const {
  absl::MutexLock lock(&mu_);
  return first_seq_ + static_cast<int64_t>(events_.size()) - 1;
}

int64_t MetricRing::stored_seq() const {
  absl::MutexLock lock(&mu_);
  return stored_seq_;
}

void LiveSession::AddWatcher(SessionWatcher* w) {
  absl::MutexLock lock(&watchers_mu_);
  watchers_.push_back(w);
}

void LiveSession::RemoveWatcher(SessionWatcher* w) {
  absl::MutexLock lock(&watchers_mu_);
  watchers_.erase(std::remove(watchers_.begin(), watchers_.end(), w), watchers_.end());
}

void LiveSession::Notify() {
  absl::MutexLock lock(&watchers_mu_);
  for (SessionWatcher* w : watchers_) w->OnSessionUpdate();
}

}  // namespace alignd::server
