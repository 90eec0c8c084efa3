// File: server/api/metrics_stream.cc
#include "server/api/metrics_stream.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/api/proto_convert.h"
#include "server/api/stream_reactor.h"
#include "server/sessions/session_rules.h"

namespace alignd::server {
namespace {

bool IsOver(v1::SessionState s) { return IsTerminal(s) || s == v1::SESSION_STATE_PAUSED; }

class MetricsStream final : public SessionStream<v1::MetricEvent> {
 public:
  MetricsStream(SessionManager* sessions, Executor* executor, std::shared_ptr<LiveSession> s,
                int64_t start_seq, bool history_only, std::chrono::milliseconds heartbeat)
      : SessionStream(executor, std::move(s)),
        sessions_(sessions),
        next_seq_(std::max<int64_t>(1, start_seq)),
        history_only_(history_only),
        heartbeat_(heartbeat),
        last_write_(std::chrono::steady_clock::now()) {
    Begin();
  }

 private:
  void Next() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!fetched_.empty()) {
      current_ = std::move(fetched_.front());
      fetched_.pop_front();
      return Write();
    }
    // The state before the ring: events are pushed before the state changes, so a session
    // seen over here has every event in the ring or in storage.
    const v1::Session record = session_->record();
    const bool over = session_->deleted() || IsOver(record.state());
    MetricRing::Where where;
    if (auto e = session_->metrics().Get(next_seq_, &where)) {
      current_ = std::move(e);
      return Write();
    }
    if (where == MetricRing::Where::kOlder) {
      if (read_again_later_) {  // the last read found nothing: wait for the next wake-up
        read_again_later_ = false;
        return;
      }
      // Behind the ring: read the next events from storage, off this thread.
      return Fetch([this]() -> absl::Status {
        auto batch = sessions_->storage()->ReadMetrics(session_->name(), next_seq_, 256);
        if (!batch.ok()) return batch.status();
        for (auto& e : *batch)
          fetched_.push_back(std::make_shared<const v1::MetricEvent>(std::move(e)));
        if (!fetched_.empty()) {
          empty_since_.reset();
          return absl::OkStatus();
        }
        // Replicas: a failover cut the log back to the checkpoint under this read (the
        // events come again, the same): not lost; the stream waits for them.
        if (sessions_->LogEndsBefore(*session_, next_seq_)) return absl::OkStatus();
        // The cut may be one this process made or the new holder may have written past it
        // already: read again at the next wake-up, and call it lost only if it stays so.
        const auto now = std::chrono::steady_clock::now();
        if (sessions_->storage()->cluster() != nullptr &&
            (!empty_since_ || now - *empty_since_ < kGiveUpAfter)) {
          if (!empty_since_) empty_since_ = now;
          read_again_later_ = true;
          return absl::OkStatus();
        }
        return absl::DataLossError(absl::StrCat(session_->name(), ": metric event ", next_seq_,
                                                " is missing from storage"));
      });
    }
    // Caught up.
    if (sent_end_) return End(grpc::Status::OK);
    if (sessions_->stopping())
      return End(grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          absl::StrCat("alignd is shutting down; reconnect and resume from seq ", next_seq_)));
    // Heartbeats and the end event carry the log's last seq, never more (a start_seq past
    // the end must not make one up).
    const int64_t last_seq = std::min(next_seq_ - 1, session_->metrics().last_seq());
    if (over) {
      auto end = std::make_shared<v1::MetricEvent>();
      end->set_seq(last_seq);
      *end->mutable_wall_time() = Now();
      *end->mutable_end() = record;
      current_ = std::move(end);
      sent_end_ = true;
      return Write();
    }
    // history_only on a session that goes on: the log so far, then OK and no `end`.
    if (history_only_) return End(grpc::Status::OK);
    if (std::chrono::steady_clock::now() - last_write_ >= heartbeat_) {
      auto beat = std::make_shared<v1::MetricEvent>();
      beat->set_seq(last_seq);
      *beat->mutable_wall_time() = Now();
      beat->set_heartbeat(record.state());
      current_ = std::move(beat);
      return Write();
    }
  }

  void Write() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!current_->has_end() && !current_->has_heartbeat()) next_seq_ = current_->seq() + 1;
    last_write_ = std::chrono::steady_clock::now();
    Send(current_.get());
  }

  SessionManager* const sessions_;
  int64_t next_seq_;  // Next() and fetches (never at once)
  const bool history_only_;
  const std::chrono::milliseconds heartbeat_;
  std::chrono::steady_clock::time_point last_write_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<const v1::MetricEvent>> fetched_;  // filled by a fetch
  // Replicas: a read that found nothing is tried again at the next wake-up, for this long.
  static constexpr std::chrono::seconds kGiveUpAfter{30};
  std::optional<std::chrono::steady_clock::time_point> empty_since_;     // a fetch's
  bool read_again_later_ = false;                                        // a fetch's
  std::shared_ptr<const v1::MetricEvent> current_ ABSL_GUARDED_BY(mu_);  // in flight
  bool sent_end_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerWriteReactor<v1::MetricEvent>* NewMetricsStream(SessionManager* sessions,
                                                            Executor* executor,
                                                            const v1::StreamMetricsRequest& req,
                                                            std::chrono::milliseconds heartbeat) {
  auto s = sessions->Find(req.parent());
  if (!s.ok()) return new FailedStream<v1::MetricEvent>(s.status());
  if (req.start_seq() < 0)
    return new FailedStream<v1::MetricEvent>(absl::InvalidArgumentError("start_seq must be >= 0"));
  return new MetricsStream(sessions, executor, *s, req.start_seq(), req.history_only(), heartbeat);
}

}  // namespace alignd::server
