// latchkeyctl: the operator CLI of latchkey-control.
//   latchkeyctl [--server=127.0.0.1:7400] [--json] [--timeout=5s] COMMAND [ARGS]
// This file holds the command table, the usage text and the dispatch; commands live in commands.h.
#include <algorithm>
#include <csignal>
#include <cstddef>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/grpc/tls.h"
#include "common/grpc/tls_flags.h"
#include "services/latchkeyctl/args.h"
#include "services/latchkeyctl/commands.h"
#include "services/latchkeyctl/context.h"
#include "services/latchkeyctl/flags.h"

namespace latchkey::ctl {
namespace {

struct CommandSpec {
  std::vector<std::string> words;  // "bindings", "list"
  std::string synopsis;            // arguments and flags, for the usage text
  size_t arg_count;                // positional arguments after the words
  std::vector<std::string> flags;  // command flags it accepts (besides the global ones)
  CommandFn run;
  std::string help;
};

const std::vector<std::string> kGlobalFlags = {"server", "json", "timeout", "tls_cert", "tls_key", "tls_ca", "tls_crl_dir", "trust_domain"};

const std::vector<CommandSpec>& Commands() {
  static const auto* const commands = new std::vector<CommandSpec>{
      {{"health"}, "", 0, {}, Health, "grpc.health.v1 check of the server; exit 0 only when SERVING"},
      {{"bindings", "list"}, "[--aor=AOR] [--nat=behind|not] [--limit=N]", 0, {"aor", "nat", "limit"}, BindingsList,
       "list registered contacts (all pages, up to --limit, default 10000)"},
      {{"bindings", "get"}, "ID", 1, {}, BindingsGet, "show one binding"},
      {{"bindings", "release"}, "ID", 1, {}, BindingsRelease, "remove a binding"},
      {{"register"},
       "--aor=AOR --contact=CONTACT --source=IP:PORT --registrar=IP:PORT [--via=VIA] [--transport=udp|tcp|tls|ws] "
       "[--expires=3600s] [--user_agent=UA]",
       0,
       {"aor", "contact", "source", "registrar", "via", "transport", "expires", "user_agent"},
       Register,
       "AllocateBinding as a PBX would on REGISTER: shows Latchkey's NAT verdict for a phone"},
      {{"sessions", "list"}, "[--worker=ID] [--limit=N]", 0, {"worker", "limit"}, SessionsList,
       "list relay sessions (all pages, up to --limit, default 10000)"},
      {{"sessions", "get"}, "ID", 1, {}, SessionsGet, "show one session with both legs and their figures"},
      {{"sessions", "release"}, "ID [--delay=D]", 1, {"delay"}, SessionsRelease,
       "end a session and free its relay ports, now or after --delay (new SDP meanwhile revives it)"},
      {{"sessions", "offer"},
       "--call_id=ID --from_tag=TAG --sdp=FILE --signaling_source=IP:PORT "
       "[--latching_mode=first_packet|signaling_source|heuristic|strict] [--media_timeout=60s]",
       0,
       {"call_id", "from_tag", "sdp", "signaling_source", "latching_mode", "media_timeout"},
       SessionsOffer,
       "AllocateSession as a PBX would on INVITE, with the caller's SDP from FILE (- for stdin): shows the "
       "session and the SDP for the callee; the session stays up until released or media times out"},
      {{"sessions", "answer"}, "ID --to_tag=TAG --sdp=FILE --signaling_source=IP:PORT", 1,
       {"to_tag", "sdp", "signaling_source"}, SessionsAnswer,
       "AnswerSession as a PBX would on the 200 OK, with the callee's SDP from FILE (- for stdin): shows the "
       "session and the SDP for the caller"},
      {{"workers", "list"}, "", 0, {}, WorkersList, "list relay workers with state and load"},
      {{"workers", "drain"}, "ID", 1, {}, WorkersDrain, "stop placing new sessions on a worker"},
      {{"workers", "undrain"}, "ID", 1, {}, WorkersUndrain, "place new sessions on a drained worker again"},
      {{"watch", "bindings"}, "[--aor=AOR] [--count=N] [--duration=D] [--resume_token=T]", 0,
       {"aor", "count", "duration", "resume_token"},
       WatchBindings, "print binding events as they happen"},
      {{"watch", "sessions"}, "[--call_id=ID] [--count=N] [--duration=D] [--resume_token=T]", 0,
       {"call_id", "count", "duration", "resume_token"},
       WatchSessions, "print session events as they happen"},
      {{"demo-call"}, "[--caller_source=IP:PORT] [--callee_source=IP:PORT] [--packets=N]", 0,
       {"caller_source", "callee_source", "packets"}, DemoCall,
       "place a demo call through a relay, send RTP both ways on loopback, show latching and counts"},
  };
  return *commands;
}

std::string Name(const CommandSpec& spec) { return absl::StrJoin(spec.words, " "); }

std::string Synopsis(const CommandSpec& spec) {
  return spec.synopsis.empty() ? Name(spec) : absl::StrCat(Name(spec), " ", spec.synopsis);
}

// The positional part of the synopsis ("ID" of "ID --to_tag=TAG ..."), for "missing ..." errors.
std::string PositionalSynopsis(const CommandSpec& spec) {
  std::vector<std::string> words;
  for (absl::string_view word : absl::StrSplit(spec.synopsis, ' ', absl::SkipEmpty())) {
    if (absl::StartsWith(word, "-") || absl::StartsWith(word, "[")) break;
    words.emplace_back(word);
  }
  return absl::StrJoin(words, " ");
}

std::string Usage() {
  std::string text =
      "usage: latchkeyctl [--server=HOST:PORT] [--json] [--timeout=5s] COMMAND [ARGS]\n"
      "\n"
      "Operator CLI of latchkey-control (NatControlService).\n"
      "\n"
      "Commands:\n";
  for (const CommandSpec& spec : Commands()) absl::StrAppend(&text, "  ", Synopsis(spec), "\n      ", spec.help, "\n");
  absl::StrAppend(&text,
                  "\n"
                  "Global flags (anywhere on the line):\n"
                  "  --server=HOST:PORT  latchkey-control gRPC address (default 127.0.0.1:7400)\n"
                  "  --json              one line of protobuf JSON per response (per event for watch)\n"
                  "  --timeout=D         deadline of each RPC, e.g. 500ms, 5s (default 5s; watch has none)\n"
                  "\n"
                  "Exit status: 0 success, 1 failure (RPC error, health not SERVING), 2 usage error.\n");
  return text;
}

std::vector<std::string> AllFlags() {
  std::vector<std::string> all = kGlobalFlags;
  for (const CommandSpec& spec : Commands()) all.insert(all.end(), spec.flags.begin(), spec.flags.end());
  return all;
}

// The command whose words start `positionals`, the longest one if several do.
const CommandSpec* FindCommand(const std::vector<std::string>& positionals) {
  const CommandSpec* best = nullptr;
  for (const CommandSpec& spec : Commands()) {
    if (spec.words.size() > positionals.size()) continue;
    if (!std::equal(spec.words.begin(), spec.words.end(), positionals.begin())) continue;
    if (best == nullptr || spec.words.size() > best->words.size()) best = &spec;
  }
  return best;
}

// For "latchkeyctl bindings" or "latchkeyctl bindings frob": the subcommands of that group.
int GroupUsageError(const std::vector<std::string>& positionals) {
  std::vector<std::string> synopses;
  for (const CommandSpec& spec : Commands()) {
    if (spec.words.size() > 1 && spec.words[0] == positionals[0]) synopses.push_back(Synopsis(spec));
  }
  if (synopses.empty()) {
    return PrintUsageError("", {"COMMAND [ARGS]"}, absl::StrCat("unknown command \"", positionals[0], "\""));
  }
  const std::string problem = positionals.size() > 1
                                  ? absl::StrCat("unknown subcommand \"", positionals[1], "\"")
                                  : std::string("missing subcommand");
  return PrintUsageError(positionals[0], synopses, problem);
}

int Main(int argc, char** argv) {
  // A closed stdout (latchkeyctl ... | head) must not kill the process half-way, e.g. before
  // demo-call released its session: writes fail instead and the commands notice.
  ::signal(SIGPIPE, SIG_IGN);
  auto parsed = SplitArgs(argc, argv, AllFlags());
  if (!parsed.ok()) return PrintUsageError("", {"COMMAND [ARGS]"}, parsed.status().message());
  if (parsed->help) {
    std::cout << Usage();
    return kExitOk;
  }
  if (parsed->positionals.empty()) return PrintUsageError("", {"COMMAND [ARGS]"}, "missing COMMAND");
  const CommandSpec* spec = FindCommand(parsed->positionals);
  if (spec == nullptr) return GroupUsageError(parsed->positionals);

  const std::string name = Name(*spec);
  const std::string synopsis = Synopsis(*spec);
  std::vector<std::string> allowed = kGlobalFlags;
  allowed.insert(allowed.end(), spec->flags.begin(), spec->flags.end());
  if (absl::Status s = ApplyFlags(*parsed, allowed); !s.ok()) return PrintUsageError(name, {synopsis}, s.message());

  const Args args(parsed->positionals.begin() + static_cast<std::ptrdiff_t>(spec->words.size()),
                  parsed->positionals.end());
  if (args.size() > spec->arg_count) {
    return PrintUsageError(name, {synopsis}, absl::StrCat("unexpected argument \"", args[spec->arg_count], "\""));
  }
  if (args.size() < spec->arg_count) {
    return PrintUsageError(name, {synopsis}, absl::StrCat("missing ", PositionalSynopsis(*spec)));
  }

  GlobalOptions options;
  options.server = absl::GetFlag(FLAGS_server);
  options.json = absl::GetFlag(FLAGS_json);
  options.timeout = absl::GetFlag(FLAGS_timeout);
  if (options.server.empty()) return PrintUsageError(name, {synopsis}, "--server must not be empty");
  grpcutil::ApplyTlsFlags(&options.tls);
  grpcutil::ApplyTlsDefaults(&options.tls);
  if (absl::Status s = grpcutil::ValidateTls(options.tls); !s.ok()) {
    return PrintUsageError(name, {synopsis}, s.message());
  }
  if (options.timeout <= absl::ZeroDuration() || options.timeout == absl::InfiniteDuration()) {
    return PrintUsageError(name, {synopsis}, "--timeout must be a positive, finite duration");
  }
  Context ctx(std::move(options), name, synopsis);
  return spec->run(ctx, args);
}

}  // namespace
}  // namespace latchkey::ctl

int main(int argc, char** argv) { return latchkey::ctl::Main(argc, argv); }
