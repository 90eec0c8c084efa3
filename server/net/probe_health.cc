// File: server/net/probe_health.cc
#include "server/net/probe_health.h"

namespace alignd::server {
namespace {

using grpc::health::v1::HealthCheckResponse;

bool Known(const std::string& service) {
  return service.empty() || service == "alignd.v1.TrainingService";
}

}  // namespace

void ProbeHealth::SetServing(bool serving) {
  absl::MutexLock lock(&mu_);
  serving_ = serving;
}

void ProbeHealth::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
  serving_ = false;
}

grpc::Status ProbeHealth::Check(grpc::ServerContext*,
                                const grpc::health::v1::HealthCheckRequest* req,
                                HealthCheckResponse* resp) {
  if (!Known(req->service()))
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such service: " + req->service());
  absl::MutexLock lock(&mu_);
  resp->set_status(serving_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
  return grpc::Status::OK;
}

grpc::Status ProbeHealth::Watch(grpc::ServerContext* ctx,
                                const grpc::health::v1::HealthCheckRequest* req,
                                grpc::ServerWriter<HealthCheckResponse>* writer) {
  // As the protocol says: an unknown service is SERVICE_UNKNOWN, watched like the others.
  const bool known = Known(req->service());
  int sent = -1;
  for (;;) {
    HealthCheckResponse r;
    {
      absl::MutexLock lock(&mu_);
      const int now = !known     ? HealthCheckResponse::SERVICE_UNKNOWN
                      : serving_ ? HealthCheckResponse::SERVING
                                 : HealthCheckResponse::NOT_SERVING;
      // A change, shutdown or 200 ms, whichever first (a cancelled call is seen on waking).
      if (now == sent)
        mu_.AwaitWithTimeout(absl::Condition(
                                 +[](ProbeHealth* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
                                   return self->shutdown_;
                                 },
                                 this),
                             absl::Milliseconds(200));
      if (shutdown_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "alignd is shutting down");
      const int status = !known     ? HealthCheckResponse::SERVICE_UNKNOWN
                         : serving_ ? HealthCheckResponse::SERVING
                                    : HealthCheckResponse::NOT_SERVING;
      if (status == sent) {
        if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
        continue;
      }
      sent = status;
      r.set_status(static_cast<HealthCheckResponse::ServingStatus>(status));
    }
    if (!writer->Write(r)) return grpc::Status::CANCELLED;
  }
}

}  // namespace alignd::server
