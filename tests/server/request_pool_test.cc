// server/api/request_pool.h: a request parsed into a kept message is the message its bytes
// encode, whatever the message held before, and the inputs' storage is reused.
#include "server/api/request_pool.h"

#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/support/proto_buffer_writer.h>
#include <gtest/gtest.h>

#include <string>

namespace alignd::server {
namespace {

v1::PredictRequest Request(const std::string& name, int rows, int cols, float first) {
  v1::PredictRequest r;
  r.set_name(name);
  r.mutable_inputs()->set_rows(rows);
  r.mutable_inputs()->set_cols(cols);
  for (int i = 0; i < rows * cols; ++i) r.mutable_inputs()->add_values(first + float(i));
  return r;
}

// The message's bytes as gRPC hands them to a raw method: in slices of `slice` bytes.
grpc::ByteBuffer Bytes(const google::protobuf::MessageLite& m, int slice = 8192) {
  grpc::ByteBuffer b;
  grpc::ProtoBufferWriter writer(&b, slice, static_cast<int>(m.ByteSizeLong()));
  EXPECT_TRUE(m.SerializeToZeroCopyStream(&writer));
  return b;
}

grpc::ByteBuffer Raw(const std::string& bytes) {
  grpc::Slice s(bytes);
  return grpc::ByteBuffer(&s, 1);
}

bool Same(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

TEST(PredictRequestPoolTest, ParsesTheBytesOverWhateverTheKeptMessageHeld) {
  PredictRequestPool pool;
  const v1::PredictRequest big = Request("sessions/a", 784, 100, 1.0f);  // 313 KB: many slices
  const v1::PredictRequest small = Request("sessions/b/snapshots/7", 3, 2, -5.0f);
  {
    PredictRequestPool::Handle h = pool.Get();
    ASSERT_TRUE(pool.Parse(Bytes(big), &h));
    EXPECT_TRUE(Same(*h, big));
  }
  EXPECT_EQ(pool.kept(), 1u);
  {
    PredictRequestPool::Handle h = pool.Get();
    EXPECT_EQ(pool.kept(), 0u);
    const float* storage = h->inputs().values().data();
    EXPECT_GE(h->inputs().values().Capacity(), 78400);  // kept...
    EXPECT_EQ(h->inputs().values_size(), 0);            // ...and cleared
    ASSERT_TRUE(pool.Parse(Bytes(small), &h));
    EXPECT_TRUE(Same(*h, small));  // nothing of the big request's values or name is left
    EXPECT_EQ(h->inputs().values().data(), storage);  // parsed into the kept storage
    // Without inputs, the inputs read empty (as a fresh message's do).
    v1::PredictRequest no_inputs;
    no_inputs.set_name("sessions/c");
    ASSERT_TRUE(pool.Parse(Bytes(no_inputs), &h));
    EXPECT_EQ(h->name(), "sessions/c");
    EXPECT_EQ(h->inputs().rows(), 0);
    EXPECT_EQ(h->inputs().cols(), 0);
    EXPECT_EQ(h->inputs().values_size(), 0);
    // Fields this version does not know are kept as protobuf keeps them, then dropped by
    // the next parse.
    std::string with_unknown = no_inputs.SerializeAsString();
    with_unknown.append("\xa0\x06\x01");  // field 100, varint 1
    ASSERT_TRUE(pool.Parse(Raw(with_unknown), &h));
    EXPECT_FALSE(h->GetReflection()->GetUnknownFields(*h).empty());
    ASSERT_TRUE(pool.Parse(Bytes(small), &h));
    EXPECT_TRUE(h->GetReflection()->GetUnknownFields(*h).empty());
    EXPECT_TRUE(Same(*h, small));
  }
}

TEST(PredictRequestPoolTest, BytesThatDoNotParseAreRefused) {
  PredictRequestPool pool;
  PredictRequestPool::Handle h = pool.Get();
  EXPECT_FALSE(pool.Parse(Raw("\xff\xff\xff\xff\x0f"), &h));
  // A packed field longer than the message.
  std::string cut = Request("sessions/a", 2, 2, 0.0f).SerializeAsString();
  cut.resize(cut.size() - 3);
  EXPECT_FALSE(pool.Parse(Raw(cut), &h));
  // And the message is usable after a failed parse.
  ASSERT_TRUE(pool.Parse(Bytes(Request("sessions/a", 2, 2, 0.0f)), &h));
  EXPECT_EQ(h->inputs().values_size(), 4);
}

TEST(PredictRequestPoolTest, KeepsAFewMessagesAndNoLargeOne) {
  PredictRequestPool pool(/*keep=*/2, /*max_kept_values=*/1000);
  {
    PredictRequestPool::Handle a = pool.Get(), b = pool.Get(), c = pool.Get();
    for (auto* h : {&a, &b, &c}) ASSERT_TRUE(pool.Parse(Bytes(Request("s", 10, 10, 0)), h));
  }
  EXPECT_EQ(pool.kept(), 2u);  // the third was freed
  {
    PredictRequestPool::Handle h = pool.Get();
    ASSERT_TRUE(pool.Parse(Bytes(Request("s", 100, 20, 0)), &h));  // 2,000 values: too large
  }
  EXPECT_EQ(pool.kept(), 1u);
}

}  // namespace
}  // namespace alignd::server
