// Where an edge connection may go: address classes, ports, allowed networks,
// the resolve map, and loops back into customsd.
#include <catch2/catch.hpp>

#include "daemon/listen/destination.hpp"

using namespace customs::daemon;
using namespace customs::daemon::listen;
namespace ip = boost::asio::ip;

namespace {
ip::address addr(const char* s) { return ip::make_address(s); }

config with(std::vector<std::string> allow = {}, std::vector<resolve_entry> resolve = {}) {
  config c;
  interception_config ic;
  for (const auto& a : allow) {
    cidr_block b;
    std::string why;
    REQUIRE(parse_cidr(a, b, why));
    ic.allow_networks.push_back(b);
  }
  c.interception = ic;
  c.resolve = std::move(resolve);
  return c;
}
}  // namespace

TEST_CASE("addresses are classified as loopback, link-local, private, multicast or global", "[destination]") {
  CHECK(classify(addr("127.0.0.1")) == address_class::loopback);
  CHECK(classify(addr("::1")) == address_class::loopback);
  CHECK(classify(addr("::ffff:127.0.0.1")) == address_class::loopback);
  CHECK(classify(addr("169.254.169.254")) == address_class::link_local);
  CHECK(classify(addr("fe80::1")) == address_class::link_local);
  CHECK(classify(addr("10.1.2.3")) == address_class::private_net);
  CHECK(classify(addr("172.31.0.1")) == address_class::private_net);
  CHECK(classify(addr("172.32.0.1")) == address_class::global);
  CHECK(classify(addr("192.168.1.1")) == address_class::private_net);
  CHECK(classify(addr("100.64.0.1")) == address_class::private_net);
  CHECK(classify(addr("fd00::1")) == address_class::private_net);
  CHECK(classify(addr("64:ff9b::a00:1")) == address_class::private_net);  // NAT64 of 10.0.0.1
  CHECK(classify(addr("0.0.0.0")) == address_class::unspecified);
  CHECK(classify(addr("::")) == address_class::unspecified);
  CHECK(classify(addr("224.0.0.1")) == address_class::multicast);
  CHECK(classify(addr("255.255.255.255")) == address_class::multicast);
  CHECK(classify(addr("ff02::1")) == address_class::multicast);
  CHECK(classify(addr("93.184.216.34")) == address_class::global);
  CHECK(classify(addr("2606:2800:220:1::1")) == address_class::global);
}

TEST_CASE("only the configured ports may be asked for", "[destination]") {
  const destination_guard g(with());
  CHECK(g.port_allowed(443));
  CHECK(g.port_allowed(80));
  CHECK_FALSE(g.port_allowed(22));
  CHECK_FALSE(g.port_allowed(8443));
}

TEST_CASE("loopback, private and link-local destinations are refused unless allowed", "[destination]") {
  const std::vector<std::uint16_t> own = {3128, 9090};
  const auto local = addr("192.0.2.10");
  const destination_guard closed(with());
  CHECK(closed.check(addr("127.0.0.1"), 443, false, local, own) == refusal::loopback);
  CHECK(closed.check(addr("10.1.2.3"), 443, false, local, own) == refusal::private_net);
  CHECK(closed.check(addr("169.254.169.254"), 80, false, local, own) == refusal::link_local);
  CHECK(closed.check(addr("93.184.216.34"), 443, false, local, own) == refusal::none);
  const destination_guard open(with({"10.0.0.0/8"}));
  CHECK(open.check(addr("10.1.2.3"), 443, false, local, own) == refusal::none);
  CHECK(open.check(addr("192.168.1.1"), 443, false, local, own) == refusal::private_net);
  // The resolve map is the operator's own statement.
  CHECK(closed.check(addr("127.0.0.1"), 443, true, local, own) == refusal::none);
}

TEST_CASE("a destination that loops back into customsd is refused even when allowed or mapped", "[destination]") {
  const std::vector<std::uint16_t> own = {3128, 9090};
  const auto local = addr("192.0.2.10");
  const destination_guard g(with({"127.0.0.0/8", "192.0.2.0/24"}));
  CHECK(g.check(addr("127.0.0.1"), 9090, false, local, own) == refusal::own_listener);
  CHECK(g.check(addr("127.0.0.1"), 9090, true, local, own) == refusal::own_listener);
  CHECK(g.check(addr("192.0.2.10"), 3128, false, local, own) == refusal::own_listener);
  CHECK(g.check(addr("0.0.0.0"), 3128, false, local, own) == refusal::own_listener);
  CHECK(g.check(addr("192.0.2.11"), 3128, false, local, own) == refusal::none);  // another host
  CHECK(g.check(addr("127.0.0.1"), 443, false, local, own) == refusal::none);
}

TEST_CASE("the resolve map is looked up by exact host", "[destination]") {
  const destination_guard g(with({}, {{"api.openai.com", "10.1.2.3", 0}}));
  REQUIRE(g.mapped("api.openai.com") != nullptr);
  CHECK(g.mapped("api.openai.com")->address == "10.1.2.3");
  CHECK(g.mapped("x.openai.com") == nullptr);
}
