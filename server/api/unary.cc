// File: server/api/unary.cc
#include "server/api/unary.h"

#include <new>
#include <stdexcept>

#include "absl/strings/str_cat.h"

namespace alignd::server {

absl::Status FromException(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        "the server ran out of memory answering this request; ask for less at once");
  } catch (const std::exception& x) {
    return absl::InternalError(absl::StrCat("internal error: ", x.what()));
  } catch (...) {
    return absl::InternalError("internal error: unknown exception");
  }
}

}  // namespace alignd::server
