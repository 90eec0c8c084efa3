// File: server/experiments/experiment_service.cc
#include "server/experiments/experiment_service.h"

#include "server/api/unary.h"
#include "server/experiments/experiment_impl.h"

namespace alignd::server {

grpc::ServerUnaryReactor* ExperimentServiceImpl::CreateExperiment(
    grpc::CallbackServerContext* ctx, const v1::CreateExperimentRequest* req,
    v1::Experiment* resp) {
  return AnswerOn(&blocking_, ctx,
                  Rpc(sessions_, &identifier_, ctx, CreateExperimentImpl, req, resp));
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::GetExperiment(grpc::CallbackServerContext* ctx,
                                                               const v1::GetExperimentRequest* req,
                                                               v1::Experiment* resp) {
  return AnswerOn(&blocking_, ctx, Rpc(sessions_, &identifier_, ctx, GetExperimentImpl, req, resp));
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::ListExperiments(
    grpc::CallbackServerContext* ctx, const v1::ListExperimentsRequest* req,
    v1::ListExperimentsResponse* resp) {
  return AnswerOn(&blocking_, ctx,
                  Rpc(sessions_, &identifier_, ctx, ListExperimentsImpl, req, resp));
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::CancelExperiment(
    grpc::CallbackServerContext* ctx, const v1::CancelExperimentRequest* req,
    v1::Experiment* resp) {
  return AnswerOn(&blocking_, ctx,
                  Rpc(sessions_, &identifier_, ctx, CancelExperimentImpl, req, resp));
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::DeleteExperiment(
    grpc::CallbackServerContext* ctx, const v1::DeleteExperimentRequest* req,
    google::protobuf::Empty* resp) {
  return AnswerOn(&blocking_, ctx,
                  Rpc(sessions_, &identifier_, ctx, DeleteExperimentImpl, req, resp));
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::GetExperimentStatistics(
    grpc::CallbackServerContext* ctx, const v1::GetExperimentStatisticsRequest* req,
    v1::ExperimentStatistics* resp) {
  return AnswerOn(&blocking_, ctx,
                  Rpc(sessions_, &identifier_, ctx, ExperimentStatisticsImpl, req, resp));
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::CompareGroups(grpc::CallbackServerContext* ctx,
                                                               const v1::CompareGroupsRequest* req,
                                                               v1::GroupComparison* resp) {
  return AnswerOn(&blocking_, ctx, Rpc(sessions_, &identifier_, ctx, CompareGroupsImpl, req, resp));
}

}  // namespace alignd::server
