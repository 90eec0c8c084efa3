// File: server/experiments/session_columns.cc
#include "server/experiments/session_columns.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <list>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "server/api/rpc_impl.h"

namespace alignd::server {
namespace {

struct Kept {
  int64_t create_seconds = 0;
  int32_t create_nanos = 0;
  int64_t through_seq = 0;  // the columns hold the log's events up to this seq
  std::shared_ptr<const SessionColumns> columns;
  size_t bytes = 0;
};

class Keeper {
 public:
  std::optional<Kept> Find(const std::string& key) {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }
  void Put(const std::string& key, Kept kept) {
    absl::MutexLock lock(&mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      used_ -= it->second->second.bytes;
      lru_.erase(it->second);
      index_.erase(it);
    }
    if (kept.bytes > budget_) return;
    used_ += kept.bytes;
    lru_.emplace_front(key, std::move(kept));
    index_[key] = lru_.begin();
    Trim();
  }
  size_t budget() {
    absl::MutexLock lock(&mu_);
    return budget_;
  }
  void SetBudget(size_t bytes) {
    absl::MutexLock lock(&mu_);
    budget_ = bytes;
    Trim();
  }

 private:
  void Trim() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (used_ > budget_ && !lru_.empty()) {
      used_ -= lru_.back().second.bytes;
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }
  absl::Mutex mu_;
  size_t budget_ ABSL_GUARDED_BY(mu_) = size_t{512} << 20;
  size_t used_ ABSL_GUARDED_BY(mu_) = 0;
  std::list<std::pair<std::string, Kept>> lru_ ABSL_GUARDED_BY(mu_);  // most recent first
  absl::flat_hash_map<std::string, std::list<std::pair<std::string, Kept>>::iterator> index_
      ABSL_GUARDED_BY(mu_);
};

Keeper& TheKeeper() {
  static Keeper* k = new Keeper();
  return *k;
}

std::atomic<int64_t> reads{0};

}  // namespace

absl::StatusOr<std::shared_ptr<const SessionColumns>> ColumnsOfSession(SessionManager& sessions,
                                                                       const Caller& caller,
                                                                       const std::string& name) {
  ASSIGN_OR_RETURN(const v1::Session s, SessionFor(sessions, caller, name));
  Storage& storage = *sessions.storage();
  // Another storage (a test's, a tool's) is another set of sessions.
  const std::string key = absl::StrCat(reinterpret_cast<uintptr_t>(&storage), "|", name);
  const int64_t last = s.last_seq();
  std::optional<Kept> kept = TheKeeper().Find(key);
  if (kept && (kept->create_seconds != s.create_time().seconds() ||
               kept->create_nanos != s.create_time().nanos() || kept->through_seq > last))
    kept.reset();
  if (kept && kept->through_seq == last) return kept->columns;
  // Read what is not kept: from storage up to the ring's oldest event, then from the ring
  // (both read as ListMetrics does: the ring first, so storage has everything before it).
  ASSIGN_OR_RETURN(const std::shared_ptr<LiveSession> live, sessions.Find(name));
  ColumnsBuilder b(kept ? SessionColumns(*kept->columns) : SessionColumns());
  int64_t start = kept ? kept->through_seq + 1 : 1;
  int64_t through = kept ? kept->through_seq : 0;  // the last event read
  int64_t first = 0;
  const auto recent = live->metrics().Read(start, last, std::numeric_limits<size_t>::max(), &first);
  constexpr int64_t kPage = 10000;
  while (start < first && start <= last) {
    const int64_t end = std::min(first - 1, last);
    ASSIGN_OR_RETURN(
        const std::vector<v1::MetricEvent> page,
        storage.ReadMetrics(name, start, static_cast<int>(std::min(kPage, end - start + 1))));
    if (page.empty()) break;
    for (const v1::MetricEvent& e : page)
      if (e.seq() <= end) {
        b.Add(e);
        through = e.seq();
      }
    start = page.back().seq() + 1;
  }
  for (const auto& e : recent) {
    b.Add(*e);
    through = e->seq();
  }
  reads.fetch_add(1, std::memory_order_relaxed);
  auto columns = std::make_shared<const SessionColumns>(std::move(b).Finish());
  // Kept: an ended session's whole log; a running one's as far as it got (extended next
  // time, from the event after the last one read).
  Kept k;
  k.create_seconds = s.create_time().seconds();
  k.create_nanos = s.create_time().nanos();
  k.through_seq = through;
  k.columns = columns;
  k.bytes = columns->bytes() + key.size();
  TheKeeper().Put(key, std::move(k));
  return columns;
}

void SetSessionColumnsBudget(size_t bytes) { TheKeeper().SetBudget(bytes); }

int WarmSessionColumns(SessionManager& sessions, const std::atomic<bool>& stop) {
  auto all = sessions.storage()->ListExperiments();
  if (!all.ok()) return 0;
  std::sort(all->begin(), all->end(), [](const v1::Experiment& a, const v1::Experiment& b) {
    return std::make_pair(a.create_time().seconds(), a.create_time().nanos()) >
           std::make_pair(b.create_time().seconds(), b.create_time().nanos());
  });
  const size_t budget = TheKeeper().budget();
  size_t used = 0;
  int read = 0;
  for (const v1::Experiment& e : *all)
    for (const auto& g : e.groups())
      for (const std::string& name : g.sessions()) {
        if (stop.load()) return -1;
        auto c = ColumnsOfSession(sessions, Caller::Anonymous(), name);
        if (!c.ok()) continue;
        ++read;
        used += (*c)->bytes();
        if (used >= budget) return read;
      }
  return read;
}

int64_t SessionColumnsReads() { return reads.load(); }

}  // namespace alignd::server
