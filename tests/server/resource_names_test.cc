// server/api/resource_names.h: every name the server takes is parsed here.
#include "server/api/resource_names.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace alignd::server {
namespace {

TEST(ResourceNamesTest, BuildAndParseAgree) {
  EXPECT_EQ(DatasetName("00ff"), "datasets/00ff");
  EXPECT_EQ(*ParseDatasetName("datasets/00ff"), "00ff");
  EXPECT_EQ(*ParseSessionName(SessionName("abc123")), "abc123");
  EXPECT_EQ(SnapshotName("sessions/a", 40), "sessions/a/snapshots/40");
  EXPECT_EQ(SnapshotName("sessions/a", -1), "sessions/a/snapshots/latest");
  auto ref = ParseSnapshotName("sessions/a1/snapshots/40");
  ASSERT_OK(ref);
  EXPECT_EQ(ref->session, "sessions/a1");
  EXPECT_EQ(ref->step, 40);
  EXPECT_EQ(ParseSnapshotName("sessions/a1/snapshots/latest")->step, WeightsRef::kLatest);
  EXPECT_EQ(ParseWeightsName("sessions/a1")->step, WeightsRef::kLatest);
  EXPECT_EQ(ParseWeightsName("sessions/a1/snapshots/7")->step, 7);
}

TEST(ResourceNamesTest, MalformedNamesAreInvalidArgumentNamingTheField) {
  for (const char* bad : {"", "sessions/", "sessions/a/b", "sessions/../x", "sessions/ABC",
                          "datasets/a", "session/a", "sessions/a b"}) {
    auto s = ParseSessionName(bad, "parent");
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(std::string(s.status().message()).rfind("parent", 0), 0u) << s.status();
  }
  for (const char* bad : {"datasets/", "datasets/x/y", "sessions/a", "datasets/.."})
    EXPECT_EQ(ParseDatasetName(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  for (const char* bad :
       {"sessions/a/snapshots/", "sessions/a/snapshots/-1", "sessions/a/snapshots/x",
        "sessions//snapshots/1", "sessions/a/snapshots/99999999999999999999"})
    EXPECT_EQ(ParseSnapshotName(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  EXPECT_EQ(ParseWeightsName("datasets/a").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResourceNamesTest, LongNamesAreCutShortInTheMessage) {
  const std::string huge = "sessions/" + std::string(10000, 'a');
  auto s = ParseSessionName(huge);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(s.status().message().size(), 300u);
  EXPECT_NE(std::string(s.status().message()).find("10009 bytes"), std::string::npos);
}

}  // namespace
}  // namespace alignd::server
