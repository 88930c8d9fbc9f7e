// AllocateBinding and friends against the real latchkey-control binary over loopback gRPC.
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/time/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/support/cluster.h"

namespace latchkey {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

class BindingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto control = testing::LocalControl::Start("binding_grace { seconds: 1 }");
    ASSERT_TRUE(control.ok()) << control.status();
    control_ = *std::move(control);
    stub_ = control_->Stub();
  }

  static v1::AllocateBindingRequest NatedPhone(const std::string& user = "alice") {
    v1::AllocateBindingRequest request;
    request.set_aor(absl::StrCat("sip:", user, "@example.com"));
    request.set_contact(absl::StrCat("<sip:", user, "@192.168.1.20:5060;transport=udp>;expires=3600"));
    request.set_transport(v1::TRANSPORT_UDP);
    request.mutable_source()->set_ip("203.0.113.7");
    request.mutable_source()->set_port(41234);
    request.mutable_registrar()->set_ip("127.0.0.1");
    request.mutable_registrar()->set_port(5060);
    request.set_via("SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK1;rport");
    *request.mutable_expires() = ToProto(absl::Seconds(3600));
    request.set_user_agent("Yealink SIP-T46S 66.86.0.15");
    return request;
  }

  grpc::Status Allocate(const v1::AllocateBindingRequest& request, v1::AllocateBindingResponse* response) {
    grpc::ClientContext context;
    return stub_->AllocateBinding(&context, request, response);
  }

  std::unique_ptr<testing::LocalControl> control_;
  std::unique_ptr<v1::NatControlService::Stub> stub_;
};

TEST_F(BindingsTest, NatedPhoneGetsRewrittenContactShortExpiryAndReasons) {
  v1::AllocateBindingResponse response;
  ASSERT_TRUE(Allocate(NatedPhone(), &response).ok());
  const v1::Binding& b = response.binding();
  EXPECT_TRUE(response.created());
  EXPECT_EQ(b.verdict().state(), v1::NAT_STATE_BEHIND_NAT);
  EXPECT_THAT(b.verdict().reasons(),
              ::testing::IsSupersetOf({v1::NAT_REASON_CONTACT_PRIVATE, v1::NAT_REASON_CONTACT_ADDRESS_MISMATCH,
                                       v1::NAT_REASON_CONTACT_PORT_MISMATCH, v1::NAT_REASON_VIA_PRIVATE}));
  EXPECT_EQ(b.effective_contact(), "<sip:alice@203.0.113.7:41234;transport=udp>;expires=3600");
  EXPECT_EQ(FromProto(response.suggested_expires()), absl::Seconds(60));  // default NAT expiry
  EXPECT_EQ(b.keepalive().method(), v1::KEEPALIVE_METHOD_OPTIONS);
  EXPECT_EQ(FromProto(b.keepalive().interval()), absl::Seconds(30));
  EXPECT_FALSE(b.binding_id().empty());
}

TEST_F(BindingsTest, PublicPhoneIsLeftAlone) {
  v1::AllocateBindingRequest request = NatedPhone();
  request.set_contact("<sip:alice@203.0.113.7:41234>");
  request.set_via("SIP/2.0/UDP 203.0.113.7:41234;branch=z9hG4bK2");
  v1::AllocateBindingResponse response;
  ASSERT_TRUE(Allocate(request, &response).ok());
  EXPECT_EQ(response.binding().verdict().state(), v1::NAT_STATE_NOT_BEHIND_NAT);
  EXPECT_TRUE(response.binding().verdict().reasons().empty());
  EXPECT_EQ(response.binding().effective_contact(), "<sip:alice@203.0.113.7:41234>");
  EXPECT_EQ(FromProto(response.suggested_expires()), absl::Seconds(3600));
  EXPECT_EQ(response.binding().keepalive().method(), v1::KEEPALIVE_METHOD_NONE);
}

TEST_F(BindingsTest, SipAlgRewritingOnlyTheHostIsStillNat) {
  v1::AllocateBindingRequest request = NatedPhone();
  request.set_contact("<sip:alice@203.0.113.7:5060>");  // the ALG fixed the host, not the port
  request.clear_via();
  v1::AllocateBindingResponse response;
  ASSERT_TRUE(Allocate(request, &response).ok());
  EXPECT_EQ(response.binding().verdict().state(), v1::NAT_STATE_BEHIND_NAT);
  EXPECT_THAT(response.binding().verdict().reasons(), ::testing::ElementsAre(v1::NAT_REASON_CONTACT_PORT_MISMATCH));
}

TEST_F(BindingsTest, RefreshIsIdempotentAndRebindingIsReported) {
  v1::AllocateBindingResponse first, second, third;
  ASSERT_TRUE(Allocate(NatedPhone(), &first).ok());
  ASSERT_TRUE(Allocate(NatedPhone(), &second).ok());
  EXPECT_FALSE(second.created());
  EXPECT_FALSE(second.source_changed());
  EXPECT_EQ(second.binding().binding_id(), first.binding().binding_id());

  v1::AllocateBindingRequest moved = NatedPhone();
  moved.mutable_source()->set_port(50000);  // the NAT gave the phone a new mapping
  ASSERT_TRUE(Allocate(moved, &third).ok());
  EXPECT_TRUE(third.source_changed());
  EXPECT_EQ(third.binding().binding_id(), first.binding().binding_id());
  EXPECT_EQ(third.binding().source_changes(), 1u);
  EXPECT_THAT(third.binding().effective_contact(), HasSubstr("203.0.113.7:50000"));
  EXPECT_THAT(control_->Metrics(), HasSubstr("latchkey_binding_source_changes_total 1"));
}

TEST_F(BindingsTest, InstanceIdIdentifiesTheBindingAcrossContactChanges) {
  v1::AllocateBindingRequest request = NatedPhone();
  request.set_contact("<sip:alice@192.168.1.20:5060>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"");
  v1::AllocateBindingResponse first, second;
  ASSERT_TRUE(Allocate(request, &first).ok());
  request.set_contact("<sip:alice@10.0.0.99:5062>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"");
  ASSERT_TRUE(Allocate(request, &second).ok());
  EXPECT_FALSE(second.created());
  EXPECT_EQ(second.binding().binding_id(), first.binding().binding_id());
  EXPECT_EQ(second.binding().instance_id(), "urn:uuid:00000000-0000-1000-8000-000A95A0E128");
}

TEST_F(BindingsTest, GetListReleaseAndUnregister) {
  for (const char* user : {"carol", "alice", "bob"}) {
    v1::AllocateBindingResponse r;
    ASSERT_TRUE(Allocate(NatedPhone(user), &r).ok());
  }
  v1::AllocateBindingRequest public_phone = NatedPhone("dave");
  public_phone.set_contact("<sip:dave@203.0.113.7:41234>");
  public_phone.clear_via();
  v1::AllocateBindingResponse dave;
  ASSERT_TRUE(Allocate(public_phone, &dave).ok());

  // Pages of two, ordered by AOR, cover everything exactly once.
  std::vector<std::string> aors;
  std::string token;
  int pages = 0;
  do {
    v1::ListBindingsRequest list;
    list.set_page_size(2);
    list.set_page_token(token);
    v1::ListBindingsResponse page;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ListBindings(&context, list, &page).ok());
    for (const auto& b : page.bindings()) aors.push_back(b.aor());
    token = page.next_page_token();
    ASSERT_LT(++pages, 5);
  } while (!token.empty());
  EXPECT_THAT(aors, ::testing::ElementsAre("sip:alice@example.com", "sip:bob@example.com", "sip:carol@example.com",
                                           "sip:dave@example.com"));

  v1::ListBindingsRequest filtered;
  filtered.set_nat_state(v1::NAT_STATE_NOT_BEHIND_NAT);
  v1::ListBindingsResponse not_nat;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ListBindings(&context, filtered, &not_nat).ok());
  }
  ASSERT_EQ(not_nat.bindings_size(), 1);
  EXPECT_EQ(not_nat.bindings(0).aor(), "sip:dave@example.com");

  v1::ListBindingsRequest by_aor;
  by_aor.set_aor("sip:bob@example.com");
  v1::ListBindingsResponse bob;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ListBindings(&context, by_aor, &bob).ok());
  }
  ASSERT_EQ(bob.bindings_size(), 1);

  v1::GetBindingRequest get;
  get.set_binding_id(bob.bindings(0).binding_id());
  v1::GetBindingResponse got;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->GetBinding(&context, get, &got).ok());
  }
  EXPECT_EQ(got.binding().aor(), "sip:bob@example.com");

  v1::ReleaseBindingRequest release;
  release.set_binding_id(got.binding().binding_id());
  v1::ReleaseBindingResponse released;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ReleaseBinding(&context, release, &released).ok());
  }
  {
    grpc::ClientContext context;
    EXPECT_EQ(stub_->GetBinding(&context, get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  }

  // REGISTER with Expires: 0 removes the binding.
  v1::AllocateBindingRequest unregister = NatedPhone("alice");
  *unregister.mutable_expires() = ToProto(absl::ZeroDuration());
  v1::AllocateBindingResponse gone;
  ASSERT_TRUE(Allocate(unregister, &gone).ok());
  EXPECT_EQ(Allocate(unregister, &gone).error_code(), grpc::StatusCode::NOT_FOUND);
  const std::string metrics = control_->Metrics();
  EXPECT_THAT(metrics, HasSubstr("latchkey_bindings{nat_state=\"behind_nat\"} 1"));   // carol
  EXPECT_THAT(metrics, HasSubstr("latchkey_bindings{nat_state=\"not_behind_nat\"} 1"));  // dave
}

TEST_F(BindingsTest, WatchSeesCreatedRefreshedAndExpired) {
  grpc::ClientContext watch_context;
  v1::WatchBindingsRequest watch;
  watch.set_aor("sip:erin@example.com");
  auto reader = stub_->WatchBindings(&watch_context, watch);
  reader->WaitForInitialMetadata();  // the server sends it once subscribed

  v1::AllocateBindingRequest request = NatedPhone("erin");
  *request.mutable_expires() = ToProto(absl::Seconds(1));  // + 1 s grace
  v1::AllocateBindingResponse r;
  ASSERT_TRUE(Allocate(NatedPhone("frank"), &r).ok());  // filtered out
  ASSERT_TRUE(Allocate(request, &r).ok());
  ASSERT_TRUE(Allocate(request, &r).ok());

  std::vector<v1::BindingEventType> types;
  v1::WatchBindingsResponse event;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (types.size() < 3 && absl::Now() < deadline && reader->Read(&event)) {
    EXPECT_EQ(event.binding().aor(), "sip:erin@example.com");
    types.push_back(event.type());
  }
  EXPECT_THAT(types, ::testing::ElementsAre(v1::BINDING_EVENT_TYPE_CREATED, v1::BINDING_EVENT_TYPE_REFRESHED,
                                            v1::BINDING_EVENT_TYPE_EXPIRED));
  watch_context.TryCancel();
  v1::GetBindingRequest get;
  get.set_binding_id(r.binding().binding_id());
  v1::GetBindingResponse got;
  grpc::ClientContext context;
  EXPECT_EQ(stub_->GetBinding(&context, get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
}

struct BadBinding {
  std::string name;
  std::function<void(v1::AllocateBindingRequest&)> mutate;
  std::string field;  // must appear in the error message
};

TEST_F(BindingsTest, EveryBadFieldIsRejectedByName) {
  const std::vector<BadBinding> cases = {
      {"no aor", [](auto& r) { r.clear_aor(); }, "aor"},
      {"aor not a SIP URI", [](auto& r) { r.set_aor("mailto:alice@example.com"); }, "aor"},
      {"no contact", [](auto& r) { r.clear_contact(); }, "contact"},
      {"garbage contact", [](auto& r) { r.set_contact("<sip:@@>"); }, "contact"},
      {"wildcard contact", [](auto& r) { r.set_contact("*"); }, "contact"},
      {"no transport", [](auto& r) { r.set_transport(v1::TRANSPORT_UNSPECIFIED); }, "transport"},
      {"unknown transport", [](auto& r) { r.set_transport(static_cast<v1::Transport>(99)); }, "transport"},
      {"no source", [](auto& r) { r.clear_source(); }, "source"},
      {"source host name", [](auto& r) { r.mutable_source()->set_ip("phone.example.com"); }, "source.ip"},
      {"source port 0", [](auto& r) { r.mutable_source()->set_port(0); }, "source.port"},
      {"source port too big", [](auto& r) { r.mutable_source()->set_port(70000); }, "source.port"},
      {"no registrar", [](auto& r) { r.clear_registrar(); }, "registrar"},
      {"bad via", [](auto& r) { r.set_via("SIP/2.0/UDP [::1"); }, "via"},
      {"no expires", [](auto& r) { r.clear_expires(); }, "expires"},
      {"negative expires", [](auto& r) { r.mutable_expires()->set_seconds(-5); }, "expires"},
      {"huge expires", [](auto& r) { r.mutable_expires()->set_seconds(100 * 86400); }, "expires"},
      {"control chars in user agent", [](auto& r) { r.set_user_agent("evil\r\nX: y"); }, "user_agent"},
  };
  for (const BadBinding& c : cases) {
    v1::AllocateBindingRequest request = NatedPhone();
    c.mutate(request);
    v1::AllocateBindingResponse response;
    grpc::Status status = Allocate(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.field)) << c.name;
  }
  // Nothing was stored by any of them.
  v1::ListBindingsResponse list;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->ListBindings(&context, v1::ListBindingsRequest(), &list).ok());
  EXPECT_EQ(list.bindings_size(), 0);

  v1::ListBindingsRequest bad_list;
  bad_list.set_page_token("%%%not-a-token");
  grpc::ClientContext list_context;
  grpc::Status status = stub_->ListBindings(&list_context, bad_list, &list);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("page_token"));
}

TEST_F(BindingsTest, ConcurrentRegistrationsLoseAndDuplicateNothing) {
  constexpr int kClients = 8;
  constexpr int kPhonesPerClient = 50;
  constexpr int kRefreshes = 3;
  std::atomic<int> failures{0}, created{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto stub = control_->Stub();
      for (int round = 0; round < kRefreshes; ++round) {
        for (int p = 0; p < kPhonesPerClient; ++p) {
          // Two clients register every phone, so the same identity races across threads.
          const int phone = (c / 2) * kPhonesPerClient + p;
          v1::AllocateBindingRequest request = NatedPhone(absl::StrCat("user", phone));
          v1::AllocateBindingResponse response;
          grpc::ClientContext context;
          if (!stub->AllocateBinding(&context, request, &response).ok()) failures++;
          if (response.created()) created++;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0);
  constexpr int kPhones = kClients / 2 * kPhonesPerClient;
  EXPECT_EQ(created.load(), kPhones);
  int listed = 0;
  std::string token;
  do {
    v1::ListBindingsRequest list;
    list.set_page_size(1000);
    list.set_page_token(token);
    v1::ListBindingsResponse page;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ListBindings(&context, list, &page).ok());
    listed += page.bindings_size();
    token = page.next_page_token();
  } while (!token.empty());
  EXPECT_EQ(listed, kPhones);
  const std::string metrics = control_->Metrics();
  EXPECT_THAT(metrics, HasSubstr(absl::StrCat("latchkey_bindings{nat_state=\"behind_nat\"} ", kPhones)));
  EXPECT_THAT(metrics, HasSubstr(absl::StrCat("latchkey_binding_allocations_total{result=\"created\"} ", kPhones)));
  EXPECT_THAT(metrics, HasSubstr(absl::StrCat("latchkey_binding_allocations_total{result=\"refreshed\"} ",
                                              kClients * kPhonesPerClient * kRefreshes - kPhones)));
}

}  // namespace
}  // namespace latchkey

namespace latchkey {
namespace {

TEST(ControlConfigTest, PoliciesFromTheConfigFileApply) {
  // Carrier SBCs in 198.51.100.0/24 are trusted; phones on 10.9.0.0/16 are always NAT (an ALG network).
  auto control = testing::LocalControl::Start(R"pb(
    nat_policies {
      name: "carriers"
      match_source_cidrs: "198.51.100.0/24"
      trusted_cidrs: "198.51.100.0/24"
    }
    nat_policies { name: "phones" force_nat_cidrs: "10.9.0.0/16" nat_registration_expiry { seconds: 45 } }
  )pb");
  ASSERT_TRUE(control.ok()) << control.status();
  auto stub = (*control)->Stub();

  v1::AllocateBindingRequest sbc;
  sbc.set_aor("sip:trunk@example.com");
  sbc.set_contact("<sip:trunk@10.0.0.5:5060>");  // would look NATed, but the source is trusted
  sbc.set_transport(v1::TRANSPORT_UDP);
  sbc.mutable_source()->set_ip("198.51.100.20");
  sbc.mutable_source()->set_port(5060);
  sbc.mutable_registrar()->set_ip("127.0.0.1");
  sbc.mutable_registrar()->set_port(5060);
  *sbc.mutable_expires() = ToProto(absl::Seconds(600));
  v1::AllocateBindingResponse response;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->AllocateBinding(&context, sbc, &response).ok());
  }
  EXPECT_EQ(response.binding().verdict().policy(), "carriers");
  EXPECT_TRUE(response.binding().verdict().trusted_peer());
  EXPECT_EQ(response.binding().verdict().state(), v1::NAT_STATE_NOT_BEHIND_NAT);

  v1::AllocateBindingRequest phone = sbc;
  phone.set_aor("sip:alg@example.com");
  phone.set_contact("<sip:alg@10.9.3.4:5060>");
  phone.mutable_source()->set_ip("10.9.3.4");  // same address and port: only the ACL can tell
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->AllocateBinding(&context, phone, &response).ok());
  }
  EXPECT_EQ(response.binding().verdict().policy(), "phones");
  EXPECT_THAT(response.binding().verdict().reasons(), ::testing::Contains(v1::NAT_REASON_FORCED_BY_ACL));
  EXPECT_EQ(FromProto(response.suggested_expires()), absl::Seconds(45));
}

TEST(ControlConfigTest, InvalidConfigExitsWithTheFieldNamed) {
  const std::string dir = testing::ScratchDir("bad-config");
  const std::string path = dir + "/control.textproto";
  {
    std::ofstream out(path);
    out << "nat_policies { name: \"x\" trusted_cidrs: \"10.0.0.0/33\" }\n";
  }
  testing::CommandResult result =
      testing::RunCommand({LATCHKEY_CONTROL_BIN, "--config=" + path, "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0"});
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_THAT(result.output, HasSubstr("nat_policies[0].trusted_cidrs[0]"));

  {
    std::ofstream out(path);
    out << "nat_policies { name: \"x\" bogus_field: 1 }\n";
  }
  result = testing::RunCommand({LATCHKEY_CONTROL_BIN, "--config=" + path});
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_THAT(result.output, HasSubstr("line 1"));
}

TEST(ControlConfigTest, PortInUseExitsWithAClearError) {
  auto first = testing::LocalControl::Start();
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string taken = (*first)->address();
  testing::CommandResult result = testing::RunCommand(
      {LATCHKEY_CONTROL_BIN, "--listen=" + taken, absl::StrCat("--worker_listen=127.0.0.1:", testing::FreeTcpPort()),
       absl::StrCat("--metrics_listen=127.0.0.1:", testing::FreeTcpPort())});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr(taken));
  result = testing::RunCommand({LATCHKEY_CONTROL_BIN, absl::StrCat("--listen=127.0.0.1:", testing::FreeTcpPort()),
                                absl::StrCat("--worker_listen=127.0.0.1:", testing::FreeTcpPort()),
                                absl::StrCat("--metrics_listen=127.0.0.1:", (*first)->metrics_port())});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("metrics_listen"));
}

}  // namespace
}  // namespace latchkey
