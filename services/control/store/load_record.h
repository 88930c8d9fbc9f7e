#pragma once
// Reads one protobuf record from the store. NOT_FOUND names the request field that held the key
// (e.g. `binding_id: no binding "b123"`); an unparsable record is DATA_LOSS.
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/validation.h"
#include "services/control/store/store.h"

namespace latchkey::control {

template <typename Record>
absl::StatusOr<Record> LoadRecord(Store& store, Table table, const std::string& key, absl::string_view kind) {
  auto bytes = store.Get(table, key);
  if (!bytes.ok()) {
    if (absl::IsNotFound(bytes.status())) {
      return absl::NotFoundError(absl::StrCat(kind, "_id: no ", kind, " \"", Excerpt(key), "\""));
    }
    return bytes.status();
  }
  Record record;
  if (!record.ParseFromString(*bytes)) return absl::DataLossError(absl::StrCat(kind, " ", key, " is corrupt"));
  return record;
}

}  // namespace latchkey::control
