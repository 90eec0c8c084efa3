// File: dashboard/bridge.h
// -----------------------------------------------------------------------------
// alignd-dashboard's HTTP API: a gRPC client of alignd that speaks JSON and Server-Sent
// Events to browsers (docs/ARCHITECTURE.md, "The dashboard"). A separate process, not a
// part of alignd: it scales and deploys apart from the training servers, and alignd's
// surface stays gRPC only. Every call forwards the browser's `Authorization: Bearer` header
// as the call's metadata, so a user sees through the dashboard what alignctl shows them.
//
//   GET    /api/sessions                    ListSessions, every page: {"sessions": [...]}, each
//                                           with "latest": {"step": ..., "eval": ...}, its
//                                           newest figures (for the session list)
//   GET    /api/sessions/{id}               GetSession, with "latest"
//   POST   /api/sessions                    CreateSession (body: a CreateSessionRequest as JSON)
//   POST   /api/sessions/{id}:pause         PauseSession (also :resume, :cancel)
//   DELETE /api/sessions/{id}               DeleteSession
//   GET    /api/sessions/{id}/metrics       ListMetrics, every page (?max_points=N&start_seq=S)
//   GET    /api/sessions/{id}/events        StreamMetrics as SSE from ?start_seq= or the
//                                           Last-Event-ID header (+1): `id: {seq}`, `data:
//                                           {event}`, heartbeats as comments; ends after the end
//                                           event
//   GET    /api/events?s=id:seq,id:seq      several sessions' StreamMetrics in one SSE
//                                           response (a browser has six connections per
//                                           host): `event: metric` {"session", "event"},
//                                           `event: end` {"session", "end"}, `event: error`
//                                           {"session", "code", "message"}
//   GET    /api/sessions/{id}/snapshots     ListSnapshots, every page
//   GET    /api/sessions/{id}/snapshots/{step|latest}           GetSnapshot (shapes)
//   GET    /api/sessions/{id}/snapshots/{step|latest}/{W0}.npy  one tensor as a .npy file
//   GET    /api/datasets                    ListDatasets, every page
//   GET    /healthz                         200 once alignd answers its health check
//
// JSON is the proto JSON mapping with the proto's field names. gRPC errors become HTTP
// statuses (NOT_FOUND 404, INVALID_ARGUMENT 400, UNAUTHENTICATED 401, PERMISSION_DENIED
// 403, RESOURCE_EXHAUSTED 429, FAILED_PRECONDITION 409, UNAVAILABLE 503, else 500) with
// {"code": "NOT_FOUND", "message": ...}.
#ifndef ALIGND_DASHBOARD_BRIDGE_H_
#define ALIGND_DASHBOARD_BRIDGE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace httplib {
class Server;
}

namespace alignd::dashboard {

// The HTTP status for a gRPC code.
int HttpStatus(grpc::StatusCode code);

// Registers the API's routes on `http`; calls go to alignd over `channel`.
void AddApiRoutes(httplib::Server& http, std::shared_ptr<grpc::Channel> channel);

}  // namespace alignd::dashboard

#endif  // ALIGND_DASHBOARD_BRIDGE_H_
