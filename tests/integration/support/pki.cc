#include "tests/integration/support/pki.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/integration/support/process.h"

namespace latchkey::testing {

std::string TestPkiDir() { return LATCHKEY_TEST_PKI_DIR; }

absl::Status RunPki(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/bin/bash", LATCHKEY_PKI_SCRIPT};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult result = RunCommand(argv, absl::Seconds(30));
  if (result.exit_code != 0) {
    return absl::InternalError(absl::StrCat("pki.sh ", absl::StrJoin(args, " "), ": ", result.output));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::TlsConfig> TestTls(auth::Role role, const std::string& name,
                                      const std::vector<std::string>& issue_options) {
  const std::string dir = TestPkiDir();
  const std::string base = absl::StrCat(dir, "/", auth::RoleName(role), "-", name);
  // Issued once per build tree, under a lock: tests run in parallel processes, and one reading a key
  // while another replaces it could pair an old key with a new certificate.
  const int lock = ::open((dir + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return absl::InternalError(absl::StrCat("cannot open ", dir, "/.lock"));
  ::flock(lock, LOCK_EX);
  absl::Status issued = absl::OkStatus();
  if (::access((base + ".crt").c_str(), R_OK) != 0 || ::access((base + ".key").c_str(), R_OK) != 0) {
    std::vector<std::string> args = {dir, "issue", std::string(auth::RoleName(role)), name, "--days=3650"};
    args.insert(args.end(), issue_options.begin(), issue_options.end());
    issued = RunPki(args);
  }
  ::close(lock);
  if (!issued.ok()) return issued;
  v1::TlsConfig tls;
  tls.set_cert_file(base + ".crt");
  tls.set_key_file(base + ".key");
  tls.set_ca_file(dir + "/ca.crt");
  return tls;
}

std::vector<std::string> TlsFlags(const v1::TlsConfig& tls) {
  if (tls.cert_file().empty()) return {};
  return {"--tls_cert=" + tls.cert_file(), "--tls_key=" + tls.key_file(), "--tls_ca=" + tls.ca_file()};
}

}  // namespace latchkey::testing
