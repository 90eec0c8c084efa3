// File: server/api/dataset_service.h
// -----------------------------------------------------------------------------
// DatasetService on gRPC's callback API: wiring only. The unary RPCs are
// dataset_impl.cc's functions; UploadDataset is a read reactor that feeds the
// DatasetStore's Upload chunk by chunk and commits it on an executor (the digest
// check and fsync of a large payload must not hold a callback thread).
#ifndef ALIGND_SERVER_API_DATASET_SERVICE_H_
#define ALIGND_SERVER_API_DATASET_SERVICE_H_

#include "alignd/v1/datasets.grpc.pb.h"
#include "server/api/executor.h"
#include "server/net/auth.h"
#include "server/sessions/session_manager.h"

namespace alignd::server {

class DatasetServiceImpl final : public v1::DatasetService::CallbackService {
 public:
  // `sessions` must outlive the service. Callers are told apart by `identifier` (auth.h;
  // by default everyone is an admin).
  explicit DatasetServiceImpl(SessionManager* sessions, Identifier identifier = Identifier())
      : sessions_(sessions), identifier_(identifier), blocking_(4) {}

  grpc::ServerReadReactor<v1::UploadDatasetRequest>* UploadDataset(grpc::CallbackServerContext* ctx,
                                                                   v1::Dataset* response) override;
  grpc::ServerUnaryReactor* CreateGeneratedDataset(grpc::CallbackServerContext* ctx,
                                                   const v1::CreateGeneratedDatasetRequest* request,
                                                   v1::Dataset* response) override;
  grpc::ServerUnaryReactor* GetDataset(grpc::CallbackServerContext* ctx,
                                       const v1::GetDatasetRequest* request,
                                       v1::Dataset* response) override;
  grpc::ServerUnaryReactor* ListDatasets(grpc::CallbackServerContext* ctx,
                                         const v1::ListDatasetsRequest* request,
                                         v1::ListDatasetsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteDataset(grpc::CallbackServerContext* ctx,
                                          const v1::DeleteDatasetRequest* request,
                                          google::protobuf::Empty* response) override;

 private:
  SessionManager* const sessions_;
  const Identifier identifier_;
  Executor blocking_;  // generating, committing uploads, deleting
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_DATASET_SERVICE_H_
