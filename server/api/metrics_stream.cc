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

// The bytes of one message as a ByteBuffer that holds `bytes` (no copy): the buffer, and
// every copy gRPC makes of it, keeps the string alive until the write is done.
grpc::ByteBuffer Share(std::shared_ptr<const std::string> bytes) {
  if (bytes->empty()) {  // a valid buffer of no bytes (a default ByteBuffer sends nothing)
    grpc::Slice none;
    return grpc::ByteBuffer(&none, 1);
  }
  auto* keep = new std::shared_ptr<const std::string>(std::move(bytes));
  grpc::Slice slice(
      const_cast<char*>((*keep)->data()), (*keep)->size(),
      [](void* p) { delete static_cast<std::shared_ptr<const std::string>*>(p); }, keep);
  return grpc::ByteBuffer(&slice, 1);
}

// Sends encoded MetricEvents (the raw method): an event from the ring is sent as the bytes
// the ring keeps for it (MetricRing::GetEncoded), so 32 subscribers of one session cost one
// serialisation of each event, not 32. What only this stream sends (events read back from
// storage, heartbeats, `end`) it encodes itself.
class MetricsStream final : public SessionStream<grpc::ByteBuffer> {
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
      Fetched e = std::move(fetched_.front());
      fetched_.pop_front();
      return Write(std::move(e.bytes), e.seq);
    }
    // The state before the ring: events are pushed before the state changes, so a session
    // seen over here has every event in the ring or in storage. Only its state is read
    // (not the whole record, a copy per write); the record is taken, after it, when an
    // `end` may be sent, and then decides.
    const v1::SessionState state = session_->state();
    const bool deleted = session_->deleted();
    std::optional<v1::Session> record;
    if (deleted || IsOver(state)) record = session_->record();
    const bool over = record.has_value() && (deleted || IsOver(record->state()));
    MetricRing::Where where;
    if (MetricRing::Encoded e = session_->metrics().GetEncoded(next_seq_, &where); e.event) {
      return Write(std::move(e.bytes), e.event->seq());
    }
    if (where == MetricRing::Where::kOlder) {
      if (read_again_later_) {  // the last read found nothing: wait for the next wake-up
        read_again_later_ = false;
        return;
      }
      // Behind the ring: read the next events from storage, and encode them, off this
      // thread.
      return Fetch([this]() -> absl::Status {
        auto batch = sessions_->storage()->ReadMetrics(session_->name(), next_seq_, 256);
        if (!batch.ok()) return batch.status();
        for (const auto& e : *batch)
          fetched_.push_back({e.seq(), std::make_shared<const std::string>(e.SerializeAsString())});
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
      v1::MetricEvent end;
      end.set_seq(last_seq);
      *end.mutable_wall_time() = Now();
      *end.mutable_end() = *record;
      sent_end_ = true;
      return Write(std::make_shared<const std::string>(end.SerializeAsString()), kNoEvent);
    }
    // history_only on a session that goes on: the log so far, then OK and no `end`.
    if (history_only_) return End(grpc::Status::OK);
    if (std::chrono::steady_clock::now() - last_write_ >= heartbeat_) {
      v1::MetricEvent beat;
      beat.set_seq(last_seq);
      *beat.mutable_wall_time() = Now();
      beat.set_heartbeat(record.has_value() ? record->state() : state);
      return Write(std::make_shared<const std::string>(beat.SerializeAsString()), kNoEvent);
    }
  }

  // Sends `bytes`, the encoding of the event `seq` (kNoEvent: a heartbeat or `end`, which
  // move the stream's place in the log nowhere).
  static constexpr int64_t kNoEvent = -1;
  void Write(std::shared_ptr<const std::string> bytes, int64_t seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (seq != kNoEvent) next_seq_ = seq + 1;
    last_write_ = std::chrono::steady_clock::now();
    current_ = Share(std::move(bytes));
    Send(&current_);
  }

  struct Fetched {
    int64_t seq;
    std::shared_ptr<const std::string> bytes;
  };

  SessionManager* const sessions_;
  int64_t next_seq_;  // Next() and fetches (never at once)
  const bool history_only_;
  const std::chrono::milliseconds heartbeat_;
  std::chrono::steady_clock::time_point last_write_ ABSL_GUARDED_BY(mu_);
  std::deque<Fetched> fetched_;  // filled by a fetch
  // Replicas: a read that found nothing is tried again at the next wake-up, for this long.
  static constexpr std::chrono::seconds kGiveUpAfter{30};
  std::optional<std::chrono::steady_clock::time_point> empty_since_;  // a fetch's
  bool read_again_later_ = false;                                     // a fetch's
  grpc::ByteBuffer current_ ABSL_GUARDED_BY(mu_);                     // in flight
  bool sent_end_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* NewMetricsStream(SessionManager* sessions,
                                                             Executor* executor,
                                                             const v1::StreamMetricsRequest& req,
                                                             std::chrono::milliseconds heartbeat) {
  auto s = sessions->Find(req.parent());
  if (!s.ok()) return new FailedStream<grpc::ByteBuffer>(s.status());
  if (req.start_seq() < 0)
    return new FailedStream<grpc::ByteBuffer>(absl::InvalidArgumentError("start_seq must be >= 0"));
  return new MetricsStream(sessions, executor, *s, req.start_seq(), req.history_only(), heartbeat);
}

}  // namespace alignd::server
