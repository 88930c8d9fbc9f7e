#pragma once
// latchkeyctl's command line: global and command flags may appear anywhere (before or after the
// COMMAND words), as --name=value, --name value, --bool or --nobool; "--" ends the flags. Values are
// parsed by the Abseil flags themselves (absl::Duration "5s", uint32 ...), but unlike
// absl::ParseCommandLine a mistake is returned, so the tool can exit 2 with its own usage text.
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace latchkey::ctl {

struct ParsedArgs {
  // COMMAND words and their arguments, in order.
  std::vector<std::string> positionals;
  // Flag name and text value, in order (a bare boolean flag has value "true", --noNAME "false").
  std::vector<std::pair<std::string, std::string>> flags;
  // --help or -h was given.
  bool help = false;
};

// Splits argv[1..]. `known_flags` are every flag name the tool has; any other is INVALID_ARGUMENT.
absl::StatusOr<ParsedArgs> SplitArgs(int argc, char** argv, const std::vector<std::string>& known_flags);

// Sets the Abseil flags named in `args.flags`. A flag not in `allowed`, or a value its type rejects,
// is INVALID_ARGUMENT with a message fit for the user.
absl::Status ApplyFlags(const ParsedArgs& args, const std::vector<std::string>& allowed);

}  // namespace latchkey::ctl
