// File: server/api/dataset_impl.cc
// The DatasetService's unary RPCs (rpc_impl.h).
#include <algorithm>

#include "base/status_macros.h"
#include "server/api/page_token.h"
#include "server/api/resource_names.h"
#include "server/api/rpc_impl.h"

namespace alignd::server {

absl::Status CreateGeneratedDatasetImpl(SessionManager& sessions, const Caller& caller,
                                        const v1::CreateGeneratedDatasetRequest& req,
                                        v1::Dataset* resp) {
  if (req.request_id().size() > 64)
    return absl::InvalidArgumentError("request_id is longer than 64 characters");
  RETURN_IF_ERROR(CheckMayWrite(caller, "create data sets"));
  ASSIGN_OR_RETURN(v1::Dataset d, sessions.datasets()->Generate(req.spec(), req.display_name(),
                                                                DatasetOwnerOf(caller)));
  *resp = VisibleTo(caller, std::move(d));
  return absl::OkStatus();
}

absl::Status GetDatasetImpl(SessionManager& sessions, const Caller& caller,
                            const v1::GetDatasetRequest& req, v1::Dataset* resp) {
  ASSIGN_OR_RETURN(*resp, DatasetFor(sessions, caller, req.name()));
  return absl::OkStatus();
}

absl::Status ListDatasetsImpl(SessionManager& sessions, const Caller& caller,
                              const v1::ListDatasetsRequest& req, v1::ListDatasetsResponse* resp) {
  const int size = req.page_size() <= 0 ? 50 : std::min(req.page_size(), 1000);
  // The position is the last name of the previous page.
  ASSIGN_OR_RETURN(const std::string after, DecodePageToken("datasets", req.page_token()));
  if (!req.page_token().empty() && !ParseDatasetName(after).ok())
    return absl::InvalidArgumentError("page_token is not one this listing gave");
  // Pages of the store, filtered to what the caller may see, until this page is full and
  // one more visible data set says there is a next.
  bool more = false;
  for (std::string from = after; !more;) {
    ASSIGN_OR_RETURN(std::vector<v1::Dataset> list,
                     sessions.storage()->ListDatasets(from, size + 1));
    for (v1::Dataset& d : list) {
      if (!MaySee(caller, d)) continue;
      if (resp->datasets_size() == size) {
        more = true;
        break;
      }
      *resp->add_datasets() = VisibleTo(caller, std::move(d));
    }
    if (static_cast<int>(list.size()) <= size) break;  // the store's last page
    from = list.back().name();
  }
  if (more) resp->set_next_page_token(EncodePageToken("datasets", resp->datasets(size - 1).name()));
  return absl::OkStatus();
}

absl::Status DeleteDatasetImpl(SessionManager& sessions, const Caller& caller,
                               const v1::DeleteDatasetRequest& req, google::protobuf::Empty*) {
  RETURN_IF_ERROR(DatasetFor(sessions, caller, req.name()).status());
  RETURN_IF_ERROR(CheckMayWrite(caller, "delete data sets"));
  // An admin deletes it for everyone; a user gives up its own share.
  return sessions.DeleteDataset(req.name(), caller.sees_all() ? "" : caller.principal);
}

}  // namespace alignd::server
