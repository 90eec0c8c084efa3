// File: server/api/metrics_stream.h
// -----------------------------------------------------------------------------
// StreamMetrics: a session's metric log from start_seq, then the events as they come.
//
// Events come from the session's MetricRing in memory; only events older than the ring
// are read from storage, 256 at a time, on the executor. When the stream has caught up
// it sends, on a session that goes on, a heartbeat after `heartbeat` without a write;
// on one that has ended, paused or been deleted, one `end` event with the final record,
// and then finishes. history_only: the events stored so far, then OK (an `end` event
// only if the session is over). Shutting down ends streams with UNAVAILABLE and the seq
// to resume from.
//
// The stream is the method's raw form (TrainingServiceImpl marks it so): it writes each
// event's encoded bytes, and an event from the session's ring is encoded once and the
// same bytes shared by every stream that sends it.
#ifndef ALIGND_SERVER_API_METRICS_STREAM_H_
#define ALIGND_SERVER_API_METRICS_STREAM_H_

#include <chrono>
#include <memory>

#include "alignd/v1/sessions.grpc.pb.h"
#include "server/api/executor.h"
#include "server/sessions/session_manager.h"

namespace alignd::server {

grpc::ServerWriteReactor<grpc::ByteBuffer>* NewMetricsStream(
    SessionManager* sessions, Executor* executor, const v1::StreamMetricsRequest& request,
    std::chrono::milliseconds heartbeat);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_METRICS_STREAM_H_
