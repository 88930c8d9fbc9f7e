#include "common/config/proto_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace latchkey::config {
namespace {

// Collects text-format parse errors with line and column instead of printing them to stderr.
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column, const std::string& message) override {
    if (!text.empty()) text += "; ";
    absl::StrAppend(&text, "line ", line + 1, " column ", column + 1, ": ", message);
  }
  std::string text;
};

}  // namespace

absl::Status LoadProtoFile(const std::string& path, google::protobuf::Message* message) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::NotFoundError(absl::StrCat("config file ", path, ": not a readable file"));
  }
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (!in || in.bad()) return absl::NotFoundError(absl::StrCat("config file ", path, ": cannot read"));
  const std::string text = buffer.str();

  if (absl::EndsWith(path, ".json")) {
    auto status = google::protobuf::util::JsonStringToMessage(text, message);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("config file ", path, ": ", status.ToString()));
    }
    return absl::OkStatus();
  }
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, message)) {
    return absl::InvalidArgumentError(absl::StrCat("config file ", path, ": ", errors.text));
  }
  return absl::OkStatus();
}

}  // namespace latchkey::config
