// File: server/api/executor.h
// -----------------------------------------------------------------------------
// Executor: a fixed pool of threads running queued work in order of arrival. The
// services hand it what must not run on gRPC's callback threads (anything that
// reads or writes storage at length, waits for a worker, or computes over a data set).
// Thread-safe. The destructor runs what is queued, then joins.
#ifndef ALIGND_SERVER_API_EXECUTOR_H_
#define ALIGND_SERVER_API_EXECUTOR_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace alignd::server {

class Executor {
 public:
  explicit Executor(int threads);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Schedule(std::function<void()> work);

 private:
  void Loop();
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_EXECUTOR_H_
