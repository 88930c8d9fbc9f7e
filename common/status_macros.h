#pragma once
// absl 20220623 ships no status macros; these are the two the code base uses.
#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LK_CONCAT_INNER(a, b) a##b
#define LK_CONCAT(a, b) LK_CONCAT_INNER(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    if (absl::Status lk_status = (expr); !lk_status.ok()) return lk_status; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, Foo())`: on error returns the status, else moves the value into `x`.
#define ASSIGN_OR_RETURN(lhs, expr) ASSIGN_OR_RETURN_IMPL(LK_CONCAT(lk_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return std::move(tmp).status(); \
  lhs = std::move(tmp).value()
