#include "services/latchkeyctl/args.h"

#include <algorithm>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace latchkey::ctl {
namespace {

bool Contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

bool IsBoolFlag(const std::string& name) {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  return flag != nullptr && flag->IsOfType<bool>();
}

}  // namespace

absl::StatusOr<ParsedArgs> SplitArgs(int argc, char** argv, const std::vector<std::string>& known_flags) {
  ParsedArgs parsed;
  bool flags_done = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-') {
      parsed.positionals.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help" || arg == "-help") {
      parsed.help = true;
      continue;
    }
    // "-name" is accepted like "--name", as Abseil does.
    const std::string body = arg.substr(absl::StartsWith(arg, "--") ? 2 : 1);
    const size_t eq = body.find('=');
    std::string name = body.substr(0, eq);
    if (eq != std::string::npos) {
      if (!Contains(known_flags, name)) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
      parsed.flags.emplace_back(name, body.substr(eq + 1));
      continue;
    }
    if (Contains(known_flags, name) && IsBoolFlag(name)) {
      parsed.flags.emplace_back(name, "true");
    } else if (absl::StartsWith(name, "no") && Contains(known_flags, name.substr(2)) && IsBoolFlag(name.substr(2))) {
      parsed.flags.emplace_back(name.substr(2), "false");
    } else if (!Contains(known_flags, name)) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    } else if (i + 1 >= argc) {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
    } else {
      parsed.flags.emplace_back(name, argv[++i]);
    }
  }
  return parsed;
}

absl::Status ApplyFlags(const ParsedArgs& args, const std::vector<std::string>& allowed) {
  for (const auto& [name, value] : args.flags) {
    if (!Contains(allowed, name)) return absl::InvalidArgumentError(absl::StrCat("flag --", name, " does not apply here"));
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, "=", value, ": ", error));
    }
  }
  return absl::OkStatus();
}

}  // namespace latchkey::ctl
