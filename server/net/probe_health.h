// File: server/net/probe_health.h
// -----------------------------------------------------------------------------
// The grpc.health.v1 service of the probe port (--health_listen): plaintext, no token,
// and nothing else on it. gRPC's built-in health service cannot stand alone there: it is
// registered only when the server starts, after the builder has refused a server without a
// synchronous method ("At least one of the completion queues must be frequently polled"),
// and until now the server reflection plugin was that method, which told anyone who asked
// what the TLS port serves. So the probe port serves this one, and reflection is dropped.
//
// Check answers SERVING or NOT_SERVING for the whole server ("") and for
// alignd.v1.TrainingService, NOT_FOUND for any other service. Watch sends the status and
// each change until the caller goes or Shutdown().
#ifndef ALIGND_SERVER_NET_PROBE_HEALTH_H_
#define ALIGND_SERVER_NET_PROBE_HEALTH_H_

#include "absl/synchronization/mutex.h"
#include "alignd/health/v1/health.grpc.pb.h"

namespace alignd::server {

class ProbeHealth final : public grpc::health::v1::Health::Service {
 public:
  void SetServing(bool serving);
  // Ends every Watch (before the server's Shutdown, which would otherwise wait for them).
  void Shutdown();

  grpc::Status Check(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req,
                     grpc::health::v1::HealthCheckResponse* resp) override;
  grpc::Status Watch(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

 private:
  absl::Mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_NET_PROBE_HEALTH_H_
