// Tokens, roles and who may see what (server/net/auth.h).
#include "server/net/auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/net/tls.h"
#include "tests/test_util.h"

namespace alignd::server {
namespace {

using ::testing::HasSubstr;

// SHA-256("abc"), FIPS 180-2's first example.
constexpr char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(TokenTableTest, FindsATokenByItsHashAndIgnoresCommentsAndCase) {
  EXPECT_EQ(TokenHash("abc"), kAbc);
  auto t = TokenTable::Parse(
      absl::StrCat("# who\n\n", kAbc, "  alice\tuser\n",
                   "sha256:", absl::AsciiStrToUpper(TokenHash("root-token")), " root admin\r\n"),
      "tokens");
  ASSERT_OK(t.status());
  EXPECT_EQ(t->size(), 2u);
  const TokenEntry* a = t->Find("abc");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->principal, "alice");
  EXPECT_EQ(a->role, Role::kUser);
  ASSERT_NE(t->Find("root-token"), nullptr);
  EXPECT_EQ(t->Find("root-token")->role, Role::kAdmin);
  EXPECT_EQ(t->Find("abd"), nullptr);
  EXPECT_EQ(t->Find(kAbc), nullptr);  // the hash is not a token
  EXPECT_EQ(t->Find(""), nullptr);
}

TEST(TokenTableTest, AMalformedLineIsNamedByFileAndNumber) {
  const std::string h = TokenHash("x");
  struct Case {
    std::string text, words;
  };
  for (const Case& c : std::vector<Case>{
           {"plain-token alice user", "tokens:1: the first field is not a SHA-256"},
           {"# ok\n" + h + " alice",
            "tokens:2: want '<sha256 of the token, hex> <principal> <role>'"},
           {h + " alice owner", "tokens:1: unknown role 'owner' (admin, user or viewer)"},
           {h + " al/ice user", "tokens:1: a principal is 1-64 of [A-Za-z0-9._@-]"},
           {h + " alice user\n" + h + " bob user", "tokens:2: this token hash is listed twice"},
       }) {
    auto t = TokenTable::Parse(c.text, "tokens");
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(t.status().message(), HasSubstr(c.words)) << c.text;
  }
}

TEST(AccessTest, UsersSeeTheirOwnAdminsAndViewersSeeAllViewersChangeNothing) {
  const Caller alice{"alice", Role::kUser}, bob{"bob", Role::kUser}, root{"root", Role::kAdmin},
      viewer{"grafana", Role::kViewer};
  v1::Session s;
  s.set_owner("alice");
  EXPECT_TRUE(MaySee(alice, s));
  EXPECT_FALSE(MaySee(bob, s));
  EXPECT_TRUE(MaySee(root, s));
  EXPECT_TRUE(MaySee(viewer, s));
  EXPECT_TRUE(MaySee(Caller::Anonymous(), s));
  v1::Session unowned;  // made with authentication off
  EXPECT_FALSE(MaySee(alice, unowned));
  EXPECT_TRUE(MaySee(root, unowned));

  v1::Dataset d;
  d.add_owners("alice");
  d.add_owners("bob");
  EXPECT_TRUE(MaySee(bob, d));
  EXPECT_FALSE(MaySee(Caller{"carol", Role::kUser}, d));
  EXPECT_THAT(VisibleTo(bob, d).owners(), ::testing::ElementsAre("bob"));
  EXPECT_THAT(VisibleTo(root, d).owners(), ::testing::ElementsAre("alice", "bob"));

  EXPECT_OK(CheckMayWrite(alice, "delete sessions"));
  EXPECT_OK(CheckMayWrite(root, "delete sessions"));
  absl::Status st = CheckMayWrite(viewer, "delete sessions");
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(st.message(), "viewer 'grafana' may not delete sessions (read-only role)");
  EXPECT_EQ(NotFound("sessions/x").message(), "sessions/x not found");
}

TEST(LoopbackTest, OnlyLoopbackLiteralsLocalhostAndUnixSocketsAreLoopback) {
  for (const char* a : {"127.0.0.1:50051", "127.1.2.3:0", "localhost:1", "LOCALHOST:1", "[::1]:5",
                        "ipv4:127.0.0.1:9", "ipv6:[::1]:9", "dns:///localhost:9", "unix:/tmp/s",
                        "[::ffff:127.0.0.1]:80"})
    EXPECT_TRUE(IsLoopback(a)) << a;
  // Names are not resolved: 127.0.0.1.example.com is whoever owns example.com.
  for (const char* a :
       {"127.0.0.1.example.com:50051", "127.evil.net:1", "localhost.example.com:1", "0.0.0.0:1",
        "[::]:1", "10.0.0.1:1", "128.0.0.1:1", "1127.0.0.1:1", "127.0.0.1", "[::2]:1",
        "[::ffff:10.0.0.1]:1", "example.com:443", ":50051", "127.0.0.256:1"})
    EXPECT_FALSE(IsLoopback(a)) << a;
}

}  // namespace
}  // namespace alignd::server
