#pragma once
// Loads a config message from a file: protobuf text format, or JSON when the name ends in ".json".
#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace latchkey::config {

absl::Status LoadProtoFile(const std::string& path, google::protobuf::Message* message);

}  // namespace latchkey::config
