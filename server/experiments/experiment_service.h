// File: server/experiments/experiment_service.h
// -----------------------------------------------------------------------------
// ExperimentService on gRPC's callback API: wiring only, each
// RPC its experiment_impl.h function, all on an executor (they read many sessions' records
// and logs).
#ifndef ALIGND_SERVER_EXPERIMENTS_EXPERIMENT_SERVICE_H_
#define ALIGND_SERVER_EXPERIMENTS_EXPERIMENT_SERVICE_H_

#include "alignd/v1/experiments.grpc.pb.h"
#include "server/api/executor.h"
#include "server/net/auth.h"
#include "server/sessions/session_manager.h"

namespace alignd::server {

class ExperimentServiceImpl final : public v1::ExperimentService::CallbackService {
 public:
  explicit ExperimentServiceImpl(SessionManager* sessions, Identifier identifier = Identifier())
      : sessions_(sessions), identifier_(identifier), blocking_(4) {}

  grpc::ServerUnaryReactor* CreateExperiment(grpc::CallbackServerContext* ctx,
                                             const v1::CreateExperimentRequest* request,
                                             v1::Experiment* response) override;
  grpc::ServerUnaryReactor* GetExperiment(grpc::CallbackServerContext* ctx,
                                          const v1::GetExperimentRequest* request,
                                          v1::Experiment* response) override;
  grpc::ServerUnaryReactor* ListExperiments(grpc::CallbackServerContext* ctx,
                                            const v1::ListExperimentsRequest* request,
                                            v1::ListExperimentsResponse* response) override;
  grpc::ServerUnaryReactor* CancelExperiment(grpc::CallbackServerContext* ctx,
                                             const v1::CancelExperimentRequest* request,
                                             v1::Experiment* response) override;
  grpc::ServerUnaryReactor* DeleteExperiment(grpc::CallbackServerContext* ctx,
                                             const v1::DeleteExperimentRequest* request,
                                             google::protobuf::Empty* response) override;
  grpc::ServerUnaryReactor* GetExperimentStatistics(
      grpc::CallbackServerContext* ctx, const v1::GetExperimentStatisticsRequest* request,
      v1::ExperimentStatistics* response) override;
  grpc::ServerUnaryReactor* CompareGroups(grpc::CallbackServerContext* ctx,
                                          const v1::CompareGroupsRequest* request,
                                          v1::GroupComparison* response) override;

 private:
  SessionManager* const sessions_;
  const Identifier identifier_;
  Executor blocking_;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_EXPERIMENTS_EXPERIMENT_SERVICE_H_
