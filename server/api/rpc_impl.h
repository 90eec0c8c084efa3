// File: server/api/rpc_impl.h
// -----------------------------------------------------------------------------
// What each unary RPC does, as a plain function of the manager, the request and the
// response (tensorflow/serving's *_impl pattern): no gRPC in sight, so each is unit
// tested directly (tests/server/rpc_impl_test.cc), and the services
// (dataset_service.h, training_service.h) only wire them to gRPC and choose the thread
// they run on. Every function validates its request (InvalidArgument names the field)
// and returns the status the client gets.
//
// Page tokens are opaque to clients (page_token.h): what the server put in
// next_page_token, given back unchanged with the same other fields; anything else is
// InvalidArgument.
#ifndef ALIGND_SERVER_API_RPC_IMPL_H_
#define ALIGND_SERVER_API_RPC_IMPL_H_

#include "absl/status/status.h"
#include "alignd/v1/datasets.pb.h"
#include "alignd/v1/sessions.pb.h"
#include "google/protobuf/empty.pb.h"
#include "server/net/auth.h"
#include "server/sessions/session_manager.h"

namespace alignd::server {

// ---- Access (access.cc): each RPC and stream asks here before it touches a resource.
// A resource `caller` may not see is NotFound with the same words as one that does not
// exist; a change by a read-only caller is PermissionDenied (auth.h).
// The session `name` as `caller` may see it.
absl::StatusOr<v1::Session> SessionFor(SessionManager& sessions, const Caller& caller,
                                       const std::string& name);
// As SessionFor, then PermissionDenied unless `caller` may change it (`action` says how).
absl::StatusOr<v1::Session> SessionToChange(SessionManager& sessions, const Caller& caller,
                                            const std::string& name, absl::string_view action);
// The data set `name` as `caller` may see it (VisibleTo).
absl::StatusOr<v1::Dataset> DatasetFor(SessionManager& sessions, const Caller& caller,
                                       const std::string& name);
// What Create and Resume queue on behalf of `caller`: its quota applies to role user.
Requester RequesterOf(const SessionManager& sessions, const Caller& caller);
DatasetOwner DatasetOwnerOf(const Caller& caller);

// ---- DatasetService (dataset_impl.cc). UploadDataset is a stream: dataset_service.cc.
absl::Status CreateGeneratedDatasetImpl(SessionManager& sessions, const Caller& caller,
                                        const v1::CreateGeneratedDatasetRequest& request,
                                        v1::Dataset* response);
absl::Status GetDatasetImpl(SessionManager& sessions, const Caller& caller,
                            const v1::GetDatasetRequest& request, v1::Dataset* response);
absl::Status ListDatasetsImpl(SessionManager& sessions, const Caller& caller,
                              const v1::ListDatasetsRequest& request,
                              v1::ListDatasetsResponse* response);
absl::Status DeleteDatasetImpl(SessionManager& sessions, const Caller& caller,
                               const v1::DeleteDatasetRequest& request,
                               google::protobuf::Empty* response);

// ---- TrainingService (session_impl.cc). The streams: metrics_stream.h, snapshot_streams.h.
absl::Status CreateSessionImpl(SessionManager& sessions, const Caller& caller,
                               const v1::CreateSessionRequest& request, v1::Session* response);
absl::Status GetSessionImpl(SessionManager& sessions, const Caller& caller,
                            const v1::GetSessionRequest& request, v1::Session* response);
absl::Status ListSessionsImpl(SessionManager& sessions, const Caller& caller,
                              const v1::ListSessionsRequest& request,
                              v1::ListSessionsResponse* response);
absl::Status PauseSessionImpl(SessionManager& sessions, const Caller& caller,
                              const v1::PauseSessionRequest& request, v1::Session* response);
absl::Status ResumeSessionImpl(SessionManager& sessions, const Caller& caller,
                               const v1::ResumeSessionRequest& request, v1::Session* response);
absl::Status CancelSessionImpl(SessionManager& sessions, const Caller& caller,
                               const v1::CancelSessionRequest& request, v1::Session* response);
absl::Status DeleteSessionImpl(SessionManager& sessions, const Caller& caller,
                               const v1::DeleteSessionRequest& request,
                               google::protobuf::Empty* response);
absl::Status ListMetricsImpl(SessionManager& sessions, const Caller& caller,
                             const v1::ListMetricsRequest& request,
                             v1::ListMetricsResponse* response);
absl::Status GetSnapshotImpl(SessionManager& sessions, const Caller& caller,
                             const v1::GetSnapshotRequest& request, v1::Snapshot* response);
absl::Status ListSnapshotsImpl(SessionManager& sessions, const Caller& caller,
                               const v1::ListSnapshotsRequest& request,
                               v1::ListSnapshotsResponse* response);
absl::Status PredictImpl(SessionManager& sessions, const Caller& caller,
                         const v1::PredictRequest& request, v1::PredictResponse* response);
absl::Status EvaluateImpl(SessionManager& sessions, const Caller& caller,
                          const v1::EvaluateRequest& request, v1::EvaluateResponse* response);
// The engine's rule table (core/learning_rule.h), row by row.
absl::Status ListRulesImpl(SessionManager& sessions, const Caller& caller,
                           const v1::ListRulesRequest& request, v1::ListRulesResponse* response);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_RPC_IMPL_H_
