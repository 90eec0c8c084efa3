// File: server/dataset_impl.cc
// The DatasetService's unary RPCs (rpc_impl.h).
#include <algorithm>

#include "base/status_macros.h"
#include "server/page_token.h"
#include "server/resource_names.h"
#include "server/rpc_impl.h"

namespace alignd::server {

absl::Status CreateGeneratedDatasetImpl(SessionManager& sessions,
                                        const v1::CreateGeneratedDatasetRequest& req,
                                        v1::Dataset* resp) {
  if (req.request_id().size() > 64)
    return absl::InvalidArgumentError("request_id is longer than 64 characters");
  ASSIGN_OR_RETURN(*resp, sessions.datasets()->Generate(req.spec(), req.display_name()));
  return absl::OkStatus();
}

absl::Status GetDatasetImpl(SessionManager& sessions, const v1::GetDatasetRequest& req,
                            v1::Dataset* resp) {
  ASSIGN_OR_RETURN(*resp, sessions.datasets()->Get(req.name()));
  return absl::OkStatus();
}

absl::Status ListDatasetsImpl(SessionManager& sessions, const v1::ListDatasetsRequest& req,
                              v1::ListDatasetsResponse* resp) {
  const int size = req.page_size() <= 0 ? 50 : std::min(req.page_size(), 1000);
  // The position is the last name of the previous page.
  ASSIGN_OR_RETURN(const std::string after, DecodePageToken("datasets", req.page_token()));
  if (!req.page_token().empty() && !ParseDatasetName(after).ok())
    return absl::InvalidArgumentError("page_token is not one this listing gave");
  ASSIGN_OR_RETURN(std::vector<v1::Dataset> list,
                   sessions.storage()->ListDatasets(after, size + 1));
  for (int i = 0; i < static_cast<int>(list.size()) && i < size; ++i)
    *resp->add_datasets() = std::move(list[i]);
  if (static_cast<int>(list.size()) > size)
    resp->set_next_page_token(EncodePageToken("datasets", resp->datasets(size - 1).name()));
  return absl::OkStatus();
}

absl::Status DeleteDatasetImpl(SessionManager& sessions, const v1::DeleteDatasetRequest& req,
                               google::protobuf::Empty*) {
  return sessions.DeleteDataset(req.name());
}

}  // namespace alignd::server
