// File: base/status_macros.h
// -----------------------------------------------------------------------------
// RETURN_IF_ERROR and ASSIGN_OR_RETURN. Debian 12 ships abseil 20220623, which
// has neither, so the project keeps its own here.
#ifndef ALIGND_BASE_STATUS_MACROS_H_
#define ALIGND_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ALIGND_CONCAT_INNER_(a, b) a##b
#define ALIGND_CONCAT_(a, b) ALIGND_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the enclosing function if not OK.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    const ::absl::Status alignd_status_ = (expr);    \
    if (!alignd_status_.ok()) return alignd_status_; \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (an absl::StatusOr<T>); on error returns its
// status, otherwise moves the value into `lhs` (which may be a declaration: `auto x`).
#define ASSIGN_OR_RETURN(lhs, expr) \
  ALIGND_ASSIGN_OR_RETURN_IMPL_(ALIGND_CONCAT_(alignd_statusor_, __LINE__), lhs, expr)
#define ALIGND_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()

#endif  // ALIGND_BASE_STATUS_MACROS_H_
