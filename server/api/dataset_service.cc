// File: server/api/dataset_service.cc
#include "server/api/dataset_service.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "server/api/rpc_impl.h"
#include "server/api/unary.h"

namespace alignd::server {

namespace {

// A header, then chunks; the client's half-close commits (on the executor). A cancelled
// call, or any error, stores nothing.
class UploadReactor : public grpc::ServerReadReactor<v1::UploadDatasetRequest> {
 public:
  UploadReactor(grpc::CallbackServerContext* ctx, DatasetStore* store, Executor* executor,
                absl::StatusOr<Caller> caller, v1::Dataset* response)
      : ctx_(ctx), store_(store), executor_(executor), response_(response) {
    absl::Status st = caller.status();
    if (st.ok()) st = CheckMayWrite(*caller, "upload data sets");
    if (!st.ok()) {
      Finish(ToGrpcStatus(st));
      return;
    }
    caller_ = std::move(*caller);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    const absl::Status s = Guarded([&] { return Read(ok); });
    if (!s.ok()) Finish(ToGrpcStatus(s));
  }

  void OnDone() override { delete this; }  // an unfinished upload leaves nothing behind

 private:
  // Returns an error to finish with; OK when it has started the next step itself.
  absl::Status Read(bool ok) {
    if (!ok) {
      // The client half-closed, or the call was cancelled (gRPC marks the context
      // before this callback): only a half-close commits.
      if (ctx_->IsCancelled()) return absl::CancelledError("the client cancelled the upload");
      if (upload_ == nullptr) return absl::InvalidArgumentError("no header was sent");
      executor_->Schedule([this] {
        const absl::Status s = Guarded([&]() -> absl::Status {
          auto d = upload_->Finish();
          if (d.ok()) *response_ = VisibleTo(caller_, std::move(*d));
          return d.status();
        });
        Finish(ToGrpcStatus(s));
      });
      return absl::OkStatus();
    }
    if (request_.has_header()) {
      if (upload_ != nullptr)
        return absl::InvalidArgumentError("a second header arrived; send one header, then chunks");
      auto up = store_->BeginUpload(request_.header(), DatasetOwnerOf(caller_));
      if (!up.ok()) return up.status();
      upload_ = std::move(*up);
    } else if (request_.part_case() == v1::UploadDatasetRequest::kSha256) {
      if (upload_ == nullptr)
        return absl::InvalidArgumentError("the sha256 arrived before the header");
      if (absl::Status s = upload_->SetSha256(request_.sha256()); !s.ok()) return s;
    } else if (request_.has_chunk()) {
      if (upload_ == nullptr)
        return absl::InvalidArgumentError("a chunk arrived before the header");
      if (absl::Status s = upload_->Append(std::move(*request_.mutable_chunk())); !s.ok()) return s;
    } else {
      return absl::InvalidArgumentError("an empty message: set header, chunk or sha256");
    }
    StartRead(&request_);
    return absl::OkStatus();
  }

  grpc::CallbackServerContext* const ctx_;
  DatasetStore* const store_;
  Executor* const executor_;
  v1::Dataset* const response_;
  Caller caller_;
  v1::UploadDatasetRequest request_;
  std::unique_ptr<DatasetStore::Upload> upload_;
};

}  // namespace

grpc::ServerReadReactor<v1::UploadDatasetRequest>* DatasetServiceImpl::UploadDataset(
    grpc::CallbackServerContext* ctx, v1::Dataset* response) {
  return new UploadReactor(ctx, sessions_->datasets(), &blocking_, identifier_.Identify(*ctx),
                           response);
}

grpc::ServerUnaryReactor* DatasetServiceImpl::CreateGeneratedDataset(
    grpc::CallbackServerContext* ctx, const v1::CreateGeneratedDatasetRequest* req,
    v1::Dataset* resp) {
  return AnswerOn(&blocking_, ctx,
                  Rpc(sessions_, &identifier_, ctx, CreateGeneratedDatasetImpl, req, resp));
}

grpc::ServerUnaryReactor* DatasetServiceImpl::GetDataset(grpc::CallbackServerContext* ctx,
                                                         const v1::GetDatasetRequest* req,
                                                         v1::Dataset* resp) {
  return Answer(ctx, Rpc(sessions_, &identifier_, ctx, GetDatasetImpl, req, resp));
}

grpc::ServerUnaryReactor* DatasetServiceImpl::ListDatasets(grpc::CallbackServerContext* ctx,
                                                           const v1::ListDatasetsRequest* req,
                                                           v1::ListDatasetsResponse* resp) {
  return Answer(ctx, Rpc(sessions_, &identifier_, ctx, ListDatasetsImpl, req, resp));
}

grpc::ServerUnaryReactor* DatasetServiceImpl::DeleteDataset(grpc::CallbackServerContext* ctx,
                                                            const v1::DeleteDatasetRequest* req,
                                                            google::protobuf::Empty* resp) {
  return AnswerOn(&blocking_, ctx, Rpc(sessions_, &identifier_, ctx, DeleteDatasetImpl, req, resp));
}

}  // namespace alignd::server
