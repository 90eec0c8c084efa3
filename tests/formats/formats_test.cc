// formats/formats.h on files as NumPy writes them (tests/formats/testdata, made by
// tools/formats/make_testdata.py), golden upload payloads (the same files the Python
// client's payload.py is checked against), and malformed input.
#include "formats/formats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "tests/test_util.h"

namespace alignd::formats {
namespace {

std::string Data(const std::string& name) {
  return std::string(ALIGND_FORMATS_TESTDATA) + "/" + name;
}

std::string Bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(NpyTest, ReadsWhatNumPyWrites) {
  auto f4 = ReadNpy(Data("f4_2x3.npy"));
  ASSERT_OK(f4);
  EXPECT_EQ(f4->dims, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f4->values, (std::vector<float>{0, 0.25f, 0.5f, 0.75f, 1, 1.25f}));
  EXPECT_EQ(f4->type, ElementType::kF32);
  auto f8 = ReadNpy(Data("f8_3.npy"));
  ASSERT_OK(f8);
  EXPECT_EQ(f8->dims, (std::vector<int64_t>{3}));
  EXPECT_EQ(f8->values[1], -1.25f);
  EXPECT_FLOAT_EQ(f8->values[2], 1e30f);
  auto u1 = ReadNpy(Data("u1_2x2x2.npy"));
  ASSERT_OK(u1);
  EXPECT_EQ(u1->dims, (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(u1->values[7], 210.0f);
  EXPECT_TRUE(u1->integral());
  auto i8 = ReadNpy(Data("i8_4.npy"));
  ASSERT_OK(i8);
  EXPECT_EQ(i8->values, (std::vector<float>{3, 0, 7, 2}));
  auto b1 = ReadNpy(Data("b1_3.npy"));
  ASSERT_OK(b1);
  EXPECT_EQ(b1->values, (std::vector<float>{1, 0, 1}));
  auto v2 = ReadNpy(Data("f4_v2.npy"));
  ASSERT_OK(v2);
  EXPECT_EQ(v2->values, std::vector<float>(4, 2.5f));
}

TEST(NpyTest, RefusesWhatItCannotReadSayingWhy) {
  auto fortran = ReadNpy(Data("f4_fortran.npy"));
  EXPECT_EQ(fortran.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(fortran.status().message()).find("Fortran"), std::string::npos);
  auto be = ReadNpy(Data("be_f4.npy"));
  EXPECT_NE(std::string(be.status().message()).find("'>f4' is not supported"), std::string::npos)
      << be.status();
  const std::string good = Bytes(Data("f4_2x3.npy"));
  EXPECT_NE(std::string(ParseNpy(good.substr(0, good.size() - 1), "x").status().message())
                .find("truncated: the data"),
            std::string::npos);
  EXPECT_NE(std::string(ParseNpy(good + "z", "x").status().message()).find("trailing bytes"),
            std::string::npos);
  EXPECT_EQ(ReadNpy(Data("missing.npy")).status().code(), absl::StatusCode::kNotFound);
  // A header that declares 2^60 elements in a few bytes: refused, nothing allocated.
  std::string huge = good;
  const size_t shape = huge.find("(2, 3)");
  huge.replace(shape, 6, "(1073741824, 1073741824)");
  EXPECT_EQ(ParseNpy(huge, "huge").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NpyTest, WhatItWritesReadsBack) {
  const auto dir = alignd::testing::TempDir("npy");
  const float v[6] = {1, 2, 3, 4, 5, 6.5f};
  ASSERT_OK(WriteNpy((dir / "m.npy").string(), {3, 2}, v));
  auto m = ReadNpy((dir / "m.npy").string());
  ASSERT_OK(m);
  EXPECT_EQ(m->dims, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(m->values, std::vector<float>(v, v + 6));
  // Byte for byte what NumPy writes for the same array (its header, padded to 64).
  const float w[6] = {0, 0.25f, 0.5f, 0.75f, 1, 1.25f};
  EXPECT_EQ(EncodeNpy({2, 3}, w), Bytes(Data("f4_2x3.npy")));
}

TEST(PayloadTest, EncodesTheGoldenBytesAndDecodesThem) {
  Examples e;
  e.feature_shape = {2};
  e.features = {0.0f, 1.5f, -2.0f, 3.25f, 4.0f, 0.125f};
  e.labels = {0, 2, 1};
  e.num_classes = 3;
  const std::string golden = Bytes(Data("payload_labels.bin"));
  EXPECT_EQ(EncodePayload(e), golden);
  const PayloadShape shape = ShapeOf(e);
  EXPECT_EQ(PayloadBytes(shape), static_cast<int64_t>(golden.size()));
  auto back = DecodePayload(shape, golden);
  ASSERT_OK(back);
  EXPECT_EQ(back->features, e.features);
  EXPECT_EQ(back->labels, e.labels);

  Examples r;
  r.feature_shape = {2};
  r.features = e.features;
  r.targets = {1.0f, 2.0f, -0.5f};
  r.target_dim = 1;
  EXPECT_EQ(EncodePayload(r), Bytes(Data("payload_targets.bin")));

  EXPECT_NE(std::string(DecodePayload(shape, golden.substr(1)).status().message())
                .find("the header declares 36"),
            std::string::npos);
  std::string bad_label = golden;
  bad_label[24] = 5;  // the first label
  EXPECT_NE(std::string(DecodePayload(shape, bad_label).status().message())
                .find("label of example 0 is 5, outside [0, 3)"),
            std::string::npos);
  PayloadShape huge = shape;
  huge.feature_shape = {int64_t{1} << 30};
  EXPECT_EQ(PayloadBytes(huge), -1);
}

TEST(ExamplesTest, CsvAndNpyPairsBecomeExamples) {
  auto t = ParseCsv("a,b,y\n1,2,0\n3,4,1\n", "t.csv", CsvOptions{',', true});
  ASSERT_OK(t);
  TargetOptions o;
  auto e = ExamplesFromCsv(*t, "t.csv", o);
  ASSERT_OK(e);
  EXPECT_EQ(e->features, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(e->labels, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(e->num_classes, 2);
  o.classification = false;
  o.target_dim = 2;
  auto r = ExamplesFromCsv(*t, "t.csv", o);
  ASSERT_OK(r);
  EXPECT_EQ(r->feature_shape, (std::vector<int64_t>{1}));
  EXPECT_EQ(r->targets, (std::vector<float>{2, 0, 4, 1}));

  o = TargetOptions();
  auto n = ExamplesFromNpy(Data("u1_2x2x2.npy"), Data("f8_3.npy"), o);
  EXPECT_NE(std::string(n.status().message()).find("one row per example"), std::string::npos);
  auto ok = ExamplesFromNpy(Data("f4_2x3.npy"), Data("b1_3.npy"), o);
  EXPECT_FALSE(ok.ok());  // 2 examples, 3 labels
  auto x = ExamplesFromNpy(Data("u1_2x2x2.npy"), Data("f4_2x3.npy"), o);
  EXPECT_NE(std::string(x.status().message()).find("one integer per example"), std::string::npos);
}

TEST(Sha256Test, StreamingEqualsAtOnce) {
  Sha256 h;
  h.Update("hello, ");
  h.Update("world");
  EXPECT_EQ(h.HexDigest(), Sha256Hex("hello, world"));
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_TRUE(IsSha256Hex(Sha256Hex("")));
  EXPECT_FALSE(IsSha256Hex(Sha256Hex("").substr(1)));
  EXPECT_FALSE(IsSha256Hex(std::string(64, 'A')));
  EXPECT_FALSE(IsSha256Hex(""));
}

}  // namespace
}  // namespace alignd::formats
