// File: server/experiments/experiment_impl.h
// -----------------------------------------------------------------------------
// What each ExperimentService RPC does, as
// plain functions of the manager, the caller, the request and the response, as rpc_impl.h's.
// An experiment's record is stored (Storage::PutExperiment); its sessions are sessions
// "sessions/{experiment id}-{k}" (k = 0, 1, ... in PlanSessions' order), so a retried or
// half-made create finds what exists and makes the rest; its state and counts are read from
// them.
#ifndef ALIGND_SERVER_EXPERIMENTS_EXPERIMENT_IMPL_H_
#define ALIGND_SERVER_EXPERIMENTS_EXPERIMENT_IMPL_H_

#include "absl/status/status.h"
#include "alignd/v1/experiments.pb.h"
#include "google/protobuf/empty.pb.h"
#include "server/net/auth.h"
#include "server/sessions/session_manager.h"

namespace alignd::server {

constexpr int kMaxExperimentSessions = 1000;

absl::Status CreateExperimentImpl(SessionManager& sessions, const Caller& caller,
                                  const v1::CreateExperimentRequest& request,
                                  v1::Experiment* response);
absl::Status GetExperimentImpl(SessionManager& sessions, const Caller& caller,
                               const v1::GetExperimentRequest& request, v1::Experiment* response);
absl::Status ListExperimentsImpl(SessionManager& sessions, const Caller& caller,
                                 const v1::ListExperimentsRequest& request,
                                 v1::ListExperimentsResponse* response);
absl::Status CancelExperimentImpl(SessionManager& sessions, const Caller& caller,
                                  const v1::CancelExperimentRequest& request,
                                  v1::Experiment* response);
absl::Status DeleteExperimentImpl(SessionManager& sessions, const Caller& caller,
                                  const v1::DeleteExperimentRequest& request,
                                  google::protobuf::Empty* response);
absl::Status ExperimentStatisticsImpl(SessionManager& sessions, const Caller& caller,
                                      const v1::GetExperimentStatisticsRequest& request,
                                      v1::ExperimentStatistics* response);
absl::Status CompareGroupsImpl(SessionManager& sessions, const Caller& caller,
                               const v1::CompareGroupsRequest& request,
                               v1::GroupComparison* response);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_EXPERIMENTS_EXPERIMENT_IMPL_H_
