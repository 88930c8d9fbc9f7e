#pragma once
// The rules a binding store applies inside its atomic operations, as pure functions so that every
// store implementation (and its tests) share one definition.
#include <string>

#include "absl/status/status.h"

#include "latchkey/v1/nat_control.pb.h"
#include "services/control/store/binding_store.h"

namespace latchkey::control {

// What a refresh of `stored` from `candidate` stores: the candidate's fields, but the stored id,
// owner, creation time and reachability (a keepalive report, not the REGISTER, changes that), one
// more source change when the source address differs, and the next version.
v1::Binding MergeRefresh(const v1::Binding& stored, v1::Binding candidate);

// What a creation stores: the candidate's fields with the identity's owner, version 1, no source
// changes and reachability not yet known.
v1::Binding NewBinding(const BindingIdentity& identity, v1::Binding candidate);

// True if the source ip:port of the two records differ (NAT rebinding).
bool SourceChanged(const v1::Binding& before, const v1::Binding& after);

// The store's ordered key of an identity: owner, AOR, contact, separated by a byte that cannot
// occur in SIP tokens, URIs or our ids, so that one owner's (and one AOR's) bindings are a range.
inline constexpr char kIdentitySeparator = '\x1f';
std::string IdentityKey(const BindingIdentity& identity);
// The range prefix for a filter: "owner\x1f" or "owner\x1faor\x1f"; "" without an owner.
std::string IdentityPrefix(const BindingFilter& filter);
// A listing cursor must lie inside the listing's range: a page token is the caller's to forge, and
// one naming another owner's range must not read it. INVALID_ARGUMENT naming page_token.
absl::Status CheckCursorInRange(const std::string& cursor, const std::string& prefix);
// The AOR part of an identity key ("" if malformed).
std::string AorOfIdentityKey(const std::string& key);

}  // namespace latchkey::control
