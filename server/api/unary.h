// File: server/api/unary.h
// -----------------------------------------------------------------------------
// How the services answer a unary call: run the RPC's *Impl function (rpc_impl.h)
// inline (Answer) or on an executor (AnswerOn: for work that must not hold one of
// gRPC's callback threads), and finish the call with its status, converted once.
// Nothing may escape a handler (gRPC 1.51 answers a throwing handler with
// UNIMPLEMENTED and no message): an allocation that fails becomes RESOURCE_EXHAUSTED,
// anything else INTERNAL, each with a message.
#ifndef ALIGND_SERVER_API_UNARY_H_
#define ALIGND_SERVER_API_UNARY_H_

#include <exception>
#include <utility>

#include "absl/status/status.h"
#include "base/status_macros.h"
#include "grpcpp/grpcpp.h"
#include "server/api/executor.h"
#include "server/api/status_convert.h"
#include "server/net/auth.h"
#include "server/sessions/session_manager.h"

namespace alignd::server {

absl::Status FromException(std::exception_ptr e);

// Calls `body`, turning anything thrown into a status.
template <typename F>
absl::Status Guarded(F&& body) {
  try {
    return body();
  } catch (...) {
    return FromException(std::current_exception());
  }
}

template <typename F>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, F&& body) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(ToGrpcStatus(Guarded(std::forward<F>(body))));
  return r;
}

// `body` runs later on `executor`; what it captures by pointer (request, response) lives
// until the call is finished, which is what it does last.
template <typename F>
grpc::ServerUnaryReactor* AnswerOn(Executor* executor, grpc::CallbackServerContext* ctx, F body) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  executor->Schedule(
      [r, body = std::move(body)]() mutable { r->Finish(ToGrpcStatus(Guarded(body))); });
  return r;
}

// The body of a unary RPC: who is calling (`identifier`), then the RPC's *Impl function
// (rpc_impl.h) with the caller. For Answer and AnswerOn.
template <typename Impl, typename Request, typename Response>
auto Rpc(SessionManager* sessions, const Identifier* identifier, grpc::CallbackServerContext* ctx,
         Impl impl, const Request* request, Response* response) {
  return [=]() -> absl::Status {
    ASSIGN_OR_RETURN(const Caller caller, identifier->Identify(*ctx));
    return impl(*sessions, caller, *request, response);
  };
}

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_UNARY_H_
