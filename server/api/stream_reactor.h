// File: server/api/stream_reactor.h
// -----------------------------------------------------------------------------
// StreamReactor<T>: the one base of alignd's server streams. It keeps the rules that
// gRPC's callback API asks of a writer in one place:
//   - one write in flight: Next() is called (with mu_ held) only when no write is in
//     flight, no fetch is running and the stream has not finished;
//   - the stream finishes exactly once (End), whatever races to end it (the client
//     cancelling, a write failing, the session ending);
//   - slow work (reading storage, parsing, chunking) goes to an executor through
//     Fetch(); the reactor deletes itself only after OnDone and after its last fetch.
// A subclass implements Next(): Send() a message, End() the stream, Fetch() work, or
// return to wait for the next Pump() (a wake-up from the session it follows).
//
// Fields a fetch fills are touched only by the fetch while it runs and by Next()
// otherwise (Next() never runs during a fetch), so they need no lock of their own.
#ifndef ALIGND_SERVER_API_STREAM_REACTOR_H_
#define ALIGND_SERVER_API_STREAM_REACTOR_H_

#include <functional>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "server/api/executor.h"
#include "server/api/status_convert.h"
#include "server/api/unary.h"
#include "server/sessions/live_session.h"

namespace alignd::server {

template <typename T>
class StreamReactor : public grpc::ServerWriteReactor<T> {
 public:
  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    in_flight_ = false;
    if (!ok) return End(grpc::Status::CANCELLED);  // the client went away
    PumpLocked();
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    End(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    Stopped();
    bool last;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      last = fetches_ == 0;
    }
    if (last) delete this;
  }

  // Runs Next() if the stream can take a message now.
  void Pump() {
    absl::MutexLock lock(&mu_);
    PumpLocked();
  }

 protected:
  explicit StreamReactor(Executor* executor) : executor_(executor) {}
  virtual void Next() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // Called once from OnDone, before the reactor is deleted (stop watching here).
  virtual void Stopped() {}

  void Send(const T* message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    in_flight_ = true;
    this->StartWrite(message);
  }
  void End(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    this->Finish(status);
  }
  void End(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    End(ToGrpcStatus(status));
  }
  // Runs `work` on the executor, without mu_; an error ends the stream, else Next() runs
  // again.
  void Fetch(std::function<absl::Status()> work) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    fetching_ = true;
    ++fetches_;
    executor_->Schedule([this, work = std::move(work)] {
      // Nothing a fetch throws (an allocation that fails for a large export) may take the
      // process down: it ends this stream, as a unary call's exception ends that call.
      absl::Status st;
      try {
        st = work();
      } catch (...) {
        st = FromException(std::current_exception());
      }
      bool last;
      {
        absl::MutexLock lock(&mu_);
        fetching_ = false;
        --fetches_;
        if (!st.ok()) End(st);
        last = done_ && fetches_ == 0;
        if (!done_) PumpLocked();
      }
      if (last) delete this;
    });
  }

  absl::Mutex mu_;

 private:
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (in_flight_ || fetching_ || finished_) return;
    Next();
  }

  Executor* const executor_;
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool fetching_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  int fetches_ ABSL_GUARDED_BY(mu_) = 0;
};

// A stream that follows one session: woken by it, and stops watching when done.
template <typename T>
class SessionStream : public StreamReactor<T>, public SessionWatcher {
 public:
  void OnSessionUpdate() override { this->Pump(); }

 protected:
  SessionStream(Executor* executor, std::shared_ptr<LiveSession> session)
      : StreamReactor<T>(executor), session_(std::move(session)) {}
  // Call once, after construction: watch the session and send what is there.
  void Begin() {
    session_->AddWatcher(this);
    this->Pump();
  }
  void Stopped() override { session_->RemoveWatcher(this); }

  const std::shared_ptr<LiveSession> session_;
};

// A stream that ends at once with an error.
template <typename T>
class FailedStream : public grpc::ServerWriteReactor<T> {
 public:
  explicit FailedStream(const absl::Status& s) { this->Finish(ToGrpcStatus(s)); }
  void OnDone() override { delete this; }
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_STREAM_REACTOR_H_
