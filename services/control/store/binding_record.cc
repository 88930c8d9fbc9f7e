#include "services/control/store/binding_record.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace latchkey::control {

v1::Binding MergeRefresh(const v1::Binding& stored, v1::Binding candidate) {
  const bool source_changed = SourceChanged(stored, candidate);
  candidate.set_binding_id(stored.binding_id());
  candidate.set_owner(stored.owner());
  *candidate.mutable_created_at() = stored.created_at();
  candidate.set_reachability(stored.reachability());
  candidate.set_source_changes(stored.source_changes() + (source_changed ? 1 : 0));
  candidate.set_version(stored.version() + 1);
  return candidate;
}

v1::Binding NewBinding(const BindingIdentity& identity, v1::Binding candidate) {
  candidate.set_owner(identity.owner);
  candidate.set_version(1);
  candidate.set_source_changes(0);
  candidate.clear_reachability();
  return candidate;
}

bool SourceChanged(const v1::Binding& before, const v1::Binding& after) {
  return before.source().ip() != after.source().ip() || before.source().port() != after.source().port();
}

std::string IdentityKey(const BindingIdentity& identity) {
  const char sep[] = {kIdentitySeparator, '\0'};
  return absl::StrCat(identity.owner, sep, identity.aor, sep, identity.contact);
}

std::string IdentityPrefix(const BindingFilter& filter) {
  if (!filter.owner) return "";
  const char sep[] = {kIdentitySeparator, '\0'};
  return filter.aor.empty() ? absl::StrCat(*filter.owner, sep) : absl::StrCat(*filter.owner, sep, filter.aor, sep);
}

absl::Status CheckCursorInRange(const std::string& cursor, const std::string& prefix) {
  if (cursor.empty() || absl::StartsWith(cursor, prefix)) return absl::OkStatus();
  return absl::InvalidArgumentError("page_token: not a token of this listing");
}

std::string AorOfIdentityKey(const std::string& key) {
  const size_t first = key.find(kIdentitySeparator);
  if (first == std::string::npos) return "";
  const size_t second = key.find(kIdentitySeparator, first + 1);
  if (second == std::string::npos) return "";
  return key.substr(first + 1, second - first - 1);
}

}  // namespace latchkey::control
