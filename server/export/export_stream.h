// File: server/export/export_stream.h
// -----------------------------------------------------------------------------
// ExportSession: ExportSessionImpl makes the file (exports.h) from what a caller may read —
// the session, its whole metric log (as ListMetrics pages it), or one stored state — and
// NewExportStream sends it in chunks, made on the executor.
#ifndef ALIGND_SERVER_EXPORT_EXPORT_STREAM_H_
#define ALIGND_SERVER_EXPORT_EXPORT_STREAM_H_

#include "absl/status/statusor.h"
#include "alignd/v1/sessions.grpc.pb.h"
#include "server/api/executor.h"
#include "server/export/exports.h"
#include "server/net/auth.h"
#include "server/sessions/session_manager.h"

namespace alignd::server {

absl::StatusOr<ExportFile> ExportSessionImpl(SessionManager& sessions, const Caller& caller,
                                             const v1::ExportSessionRequest& request);

grpc::ServerWriteReactor<v1::ExportChunk>* NewExportStream(SessionManager* sessions,
                                                           Executor* executor, Caller caller,
                                                           const v1::ExportSessionRequest& request);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_EXPORT_EXPORT_STREAM_H_
