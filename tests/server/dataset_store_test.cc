// server/sessions/dataset_store.h: uploads are checked before anything becomes visible, a failed
// or abandoned upload leaves nothing, and one content is stored once.
#include "server/sessions/dataset_store.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/storage/sqlite_storage.h"
#include "tests/server/server_fixture.h"
#include "tests/test_util.h"

namespace alignd::server {
namespace {

class DatasetStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        alignd::testing::TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    storage_ = *OpenSqliteStorage(dir_.string());
    store_ = std::make_unique<DatasetStore>(storage_.get(), DatasetLimits{1 << 20, 1 << 10});
    // 5 examples of 3 features, 2 classes.
    data_.features = core::Matrix::Random(3, 5);
    data_.labels = {0, 1, 1, 0, 1};
    data_.num_classes = 2;
    payload_ = EncodePayload(data_);
    header_.set_display_name("tiny");
    header_.set_num_examples(5);
    header_.add_feature_shape(3);
    header_.set_target_kind(v1::TARGET_KIND_CLASS_LABELS);
    header_.set_num_classes(2);
    header_.set_sha256(formats::Sha256Hex(payload_));
  }

  int FilesInDatasets() {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "datasets")) (void)e, ++n;
    return n;
  }

  absl::StatusOr<v1::Dataset> UploadInChunks(const v1::DatasetHeader& h, const std::string& payload,
                                             size_t chunk) {
    auto up = store_->BeginUpload(h);
    if (!up.ok()) return up.status();
    for (size_t i = 0; i < payload.size(); i += chunk) {
      absl::Status s = (*up)->Append(payload.substr(i, chunk));
      if (!s.ok()) return s;
    }
    return (*up)->Finish();
  }

  std::filesystem::path dir_;
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<DatasetStore> store_;
  core::Dataset data_;
  std::string payload_;
  v1::DatasetHeader header_;
};

TEST_F(DatasetStoreTest, UploadThenLoadGivesTheSameData) {
  auto d = UploadInChunks(header_, payload_, 7);
  ASSERT_OK(d);
  EXPECT_EQ(d->name(), "datasets/" + DatasetId(header_));
  EXPECT_EQ(d->size_bytes(), static_cast<int64_t>(payload_.size()));
  auto loaded = store_->Load(d->name());
  ASSERT_OK(loaded);
  EXPECT_EQ((*loaded)->features, data_.features);
  EXPECT_EQ((*loaded)->labels, data_.labels);
  // Loaded once, shared after.
  EXPECT_EQ(loaded->get(), store_->Load(d->name())->get());
  // The same content again is stored once.
  auto again = UploadInChunks(header_, payload_, 100);
  ASSERT_OK(again);
  EXPECT_EQ(again->name(), d->name());
  EXPECT_EQ(FilesInDatasets(), 1);
}

TEST_F(DatasetStoreTest, BadUploadsAreRefusedAndLeaveNothing) {
  struct Case {
    std::string name, message;
    absl::StatusCode code;
    std::function<void(v1::DatasetHeader&, std::string&)> mutate;
  } const kCases[] = {
      {"digest", "SHA-256 mismatch", absl::StatusCode::kInvalidArgument,
       [](v1::DatasetHeader& h, std::string&) { h.set_sha256(std::string(64, 'a')); }},
      {"short", "payload has 79 bytes; the header declares 80", absl::StatusCode::kInvalidArgument,
       [](v1::DatasetHeader&, std::string& p) { p.pop_back(); }},
      {"long", "longer than", absl::StatusCode::kInvalidArgument,
       [](v1::DatasetHeader&, std::string& p) { p += "x"; }},
      {"label out of range", "label of example 1 is 7", absl::StatusCode::kInvalidArgument,
       [](v1::DatasetHeader& h, std::string& p) {
         const int32_t seven = 7;
         std::memcpy(&p[4 * 15 + 4], &seven, 4);
         h.set_sha256(formats::Sha256Hex(p));
       }},
      {"nan", "not finite", absl::StatusCode::kInvalidArgument,
       [](v1::DatasetHeader& h, std::string& p) {
         const float nan = NAN;
         std::memcpy(&p[8], &nan, 4);
         h.set_sha256(formats::Sha256Hex(p));
       }},
      {"no examples", "header.num_examples", absl::StatusCode::kInvalidArgument,
       [](v1::DatasetHeader& h, std::string&) { h.set_num_examples(0); }},
      {"bad shape", "header.feature_shape[0]", absl::StatusCode::kInvalidArgument,
       [](v1::DatasetHeader& h, std::string&) { h.set_feature_shape(0, -3); }},
      {"no kind", "header.target_kind", absl::StatusCode::kInvalidArgument,
       [](v1::DatasetHeader& h, std::string&) { h.set_target_kind(v1::TARGET_KIND_UNSPECIFIED); }},
      {"bad digest text", "header.sha256", absl::StatusCode::kInvalidArgument,
       [](v1::DatasetHeader& h, std::string&) { h.set_sha256("xyz"); }},
      {"too big", "--max_dataset_bytes", absl::StatusCode::kResourceExhausted,
       [](v1::DatasetHeader& h, std::string&) { h.set_num_examples(1 << 20); }},
      // Sizes whose payload size once wrapped to 0 (2^31 * (1 + 2^31-1) * 4 = 2^64).
      {"wrapping size", "header.num_examples", absl::StatusCode::kInvalidArgument,
       [](v1::DatasetHeader& h, std::string& p) {
         h.set_num_examples(int64_t{1} << 31);
         h.set_target_kind(v1::TARGET_KIND_FLOAT_VECTORS);
         h.set_target_dim(2147483647);
         p.clear();
         h.set_sha256(formats::Sha256Hex(""));
       }},
      {"huge target_dim", "header.target_dim", absl::StatusCode::kInvalidArgument,
       [](v1::DatasetHeader& h, std::string& p) {
         h.set_target_kind(v1::TARGET_KIND_FLOAT_VECTORS);
         h.set_target_dim(2147483647);
         p.clear();
         h.set_sha256(formats::Sha256Hex(""));
       }},
      {"huge num_classes", "header.num_classes", absl::StatusCode::kInvalidArgument,
       [](v1::DatasetHeader& h, std::string&) { h.set_num_classes(2147483647); }},
      {"values past 2^40", "2^40 values", absl::StatusCode::kResourceExhausted,
       [](v1::DatasetHeader& h, std::string&) {
         h.set_num_examples(2147483647);
         h.set_feature_shape(0, 1 << 20);
       }},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    v1::DatasetHeader h = header_;
    std::string p = payload_;
    c.mutate(h, p);
    auto d = UploadInChunks(h, p, 16);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), c.code) << d.status();
    EXPECT_NE(std::string(d.status().message()).find(c.message), std::string::npos) << d.status();
    EXPECT_EQ(FilesInDatasets(), 0);
    EXPECT_TRUE(storage_->ListDatasets("", 10)->empty());
  }
  // A chunk over the limit.
  auto up = store_->BeginUpload(header_);
  ASSERT_OK(up);
  EXPECT_EQ((*up)->Append(std::string(2000, 'x')).code(), absl::StatusCode::kInvalidArgument);
}

// The SHA-256 may come after the payload instead of in the header (a client hashes while
// it sends): the same data set either way, and every way of getting it wrong is refused.
TEST_F(DatasetStoreTest, TheDigestMayFollowThePayload) {
  auto first = UploadInChunks(header_, payload_, 16);
  ASSERT_OK(first);
  ASSERT_OK(store_->Delete(first->name(), [](const std::string&) { return false; }));
  v1::DatasetHeader h = header_;
  h.clear_sha256();
  auto upload = [&](const std::string& digest,
                    bool chunk_after = false) -> absl::StatusOr<v1::Dataset> {
    auto up = store_->BeginUpload(h);
    if (!up.ok()) return up.status();
    for (size_t i = 0; i < payload_.size(); i += 16)
      if (absl::Status st = (*up)->Append(payload_.substr(i, 16)); !st.ok()) return st;
    if (!digest.empty())
      if (absl::Status st = (*up)->SetSha256(digest); !st.ok()) return st;
    if (chunk_after)
      if (absl::Status st = (*up)->Append("x"); !st.ok()) return st;
    return (*up)->Finish();
  };
  auto later = upload(header_.sha256());
  ASSERT_OK(later);
  EXPECT_EQ(later->name(), first->name());
  EXPECT_EQ(later->sha256(), header_.sha256());
  EXPECT_EQ(FilesInDatasets(), 1);
  ASSERT_OK(store_->Delete(later->name(), [](const std::string&) { return false; }));
  const struct {
    std::string digest, message;
    bool chunk_after;
  } kBad[] = {
      {"", "no sha256", false},
      {std::string(64, 'a'), "SHA-256 mismatch: the last message says aaaa", false},
      {"ABC", "sha256 must be 64 lowercase hex digits", false},
      {header_.sha256(), "a chunk came after the sha256", true},
  };
  for (const auto& c : kBad) {
    SCOPED_TRACE(c.message);
    auto d = upload(c.digest, c.chunk_after);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(d.status().message()).find(c.message), std::string::npos) << d.status();
    EXPECT_EQ(FilesInDatasets(), 0);
  }
  // In the header and again after the payload; or twice after it.
  auto up = store_->BeginUpload(header_);
  ASSERT_OK(up);
  EXPECT_EQ((*up)->SetSha256(header_.sha256()).code(), absl::StatusCode::kInvalidArgument);
  up = store_->BeginUpload(h);
  ASSERT_OK(up);
  ASSERT_OK((*up)->SetSha256(header_.sha256()));
  EXPECT_EQ((*up)->SetSha256(header_.sha256()).code(), absl::StatusCode::kInvalidArgument);
}

// Values are checked as they stream in, a chunk at a time: a bad value is found wherever
// it is and however the chunks cut the payload (a value split across two chunks too),
// and the error names it. 15 features (5 examples x 3), then 5 labels of 2 classes; and
// the same with float targets.
TEST_F(DatasetStoreTest, EveryBadValueIsFoundWhereverTheChunksCut) {
  const float kBadFloats[] = {NAN, INFINITY, -INFINITY};
  const int32_t kBadLabels[] = {-1, 2, 1 << 30};
  for (size_t chunk : {1, 3, 4, 5, 7, 16, 80}) {
    for (int i = 0; i < 20; ++i) {
      for (int v = 0; v < 3; ++v) {
        SCOPED_TRACE(absl::StrCat("chunk ", chunk, ", value ", i, ", bad value ", v));
        std::string p = payload_;
        std::string expected;
        if (i < 15) {
          std::memcpy(&p[4 * i], &kBadFloats[v], 4);
          expected =
              absl::StrCat("feature of example ", i / 3, ", index ", i % 3, " is not finite");
        } else {
          std::memcpy(&p[4 * i], &kBadLabels[v], 4);
          expected = absl::StrCat("label of example ", i - 15, " is ", kBadLabels[v]);
        }
        v1::DatasetHeader h = header_;
        h.set_sha256(formats::Sha256Hex(p));
        auto d = UploadInChunks(h, p, chunk);
        ASSERT_FALSE(d.ok());
        EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_NE(std::string(d.status().message()).find(expected), std::string::npos)
            << d.status();
      }
    }
  }
  // Float targets (5 examples x 2): the first bad one is named.
  v1::DatasetHeader h = header_;
  h.set_target_kind(v1::TARGET_KIND_FLOAT_VECTORS);
  h.set_num_classes(0);
  h.set_target_dim(2);
  std::string p = payload_.substr(0, 60) + std::string(40, '\0');
  const float nan = NAN;
  std::memcpy(&p[60 + 4 * 7], &nan, 4);  // example 3, index 1
  std::memcpy(&p[60 + 4 * 9], &nan, 4);
  h.set_sha256(formats::Sha256Hex(p));
  for (size_t chunk : {1, 6, 100}) {
    auto d = UploadInChunks(h, p, chunk);
    ASSERT_FALSE(d.ok());
    EXPECT_NE(std::string(d.status().message()).find("target of example 3, index 1 is not finite"),
              std::string::npos)
        << d.status();
  }
  // And good values of every kind pass, cut anywhere.
  for (size_t chunk : {1, 3, 5, 80}) EXPECT_OK(UploadInChunks(header_, payload_, chunk));
}

// A disk that fills up mid-upload: the upload's thread gets the write error, the next
// Append or Finish returns it, and nothing is stored.
TEST_F(DatasetStoreTest, AWriteErrorOfTheUploadThreadIsReturnedAndNothingIsStored) {
  class FailingWriter : public BlobWriter {
   public:
    FailingWriter(std::unique_ptr<BlobWriter> inner, int ok_appends)
        : inner_(std::move(inner)), ok_appends_(ok_appends) {}
    absl::Status Append(std::string_view bytes) override {
      if (ok_appends_-- <= 0) return absl::ResourceExhaustedError("write: No space left on device");
      return inner_->Append(bytes);
    }
    absl::Status Commit(const std::string& name) override { return inner_->Commit(name); }

   private:
    std::unique_ptr<BlobWriter> inner_;
    int ok_appends_;
  };
  class FullDisk : public ForwardingStorage {
   public:
    using ForwardingStorage::ForwardingStorage;
    absl::StatusOr<std::unique_ptr<BlobWriter>> NewDatasetPayload() override {
      ASSIGN_OR_RETURN(auto w, ForwardingStorage::NewDatasetPayload());
      return std::unique_ptr<BlobWriter>(new FailingWriter(std::move(w), 3));
    }
  };
  store_.reset();
  storage_ = std::make_unique<FullDisk>(std::move(storage_));
  store_ = std::make_unique<DatasetStore>(storage_.get(), DatasetLimits{1 << 20, 1 << 10});
  for (size_t chunk : {4, 16}) {  // the error comes back from Append (20 chunks) or Finish (5)
    auto d = UploadInChunks(header_, payload_, chunk);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), absl::StatusCode::kResourceExhausted) << d.status();
    EXPECT_NE(std::string(d.status().message()).find("No space left"), std::string::npos);
    EXPECT_EQ(FilesInDatasets(), 0);
    EXPECT_TRUE(storage_->ListDatasets("", 10)->empty());
  }
}

// The id covers what the header means: the same bytes declared with another number of
// classes are another data set, not the first one returned silently.
TEST_F(DatasetStoreTest, TheSamePayloadWithAnotherMeaningIsAnotherDataset) {
  auto first = UploadInChunks(header_, payload_, 64);
  ASSERT_OK(first);
  v1::DatasetHeader more_classes = header_;
  more_classes.set_num_classes(header_.num_classes() + 4);
  auto second = UploadInChunks(more_classes, payload_, 64);
  ASSERT_OK(second);
  EXPECT_NE(second->name(), first->name());
  EXPECT_EQ(second->num_classes(), header_.num_classes() + 4);
  EXPECT_EQ((*store_->Load(second->name()))->num_classes, header_.num_classes() + 4);
  EXPECT_EQ((*store_->Load(first->name()))->num_classes, header_.num_classes());
  // Deleting one leaves the other whole.
  ASSERT_OK(store_->Delete(first->name(), [](const std::string&) { return false; }));
  store_ = std::make_unique<DatasetStore>(storage_.get(), DatasetLimits{});  // an empty cache
  EXPECT_OK(store_->Load(second->name()));
}

// Identical generator requests at once: each succeeds, one data set results.
TEST_F(DatasetStoreTest, ConcurrentIdenticalGeneratorRequestsAllSucceed) {
  store_ = std::make_unique<DatasetStore>(storage_.get(), DatasetLimits{});
  v1::GeneratorSpec spec;
  spec.set_kind(v1::GeneratorSpec::KIND_NONLINEAR);
  spec.set_num_examples(3000);
  std::vector<absl::StatusOr<v1::Dataset>> results(8, absl::UnknownError(""));
  std::vector<std::thread> threads;
  for (size_t k = 0; k < results.size(); ++k)
    threads.emplace_back([&, k] { results[k] = store_->Generate(spec, ""); });
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_OK(r);
    EXPECT_EQ(r->name(), results[0]->name());
  }
  EXPECT_EQ(FilesInDatasets(), 1);
}

TEST_F(DatasetStoreTest, GeneratedDataSetsHaveASizeLimitCheckedBeforeAllocating) {
  v1::GeneratorSpec spec;
  spec.set_kind(v1::GeneratorSpec::KIND_LINEAR);
  spec.set_input_dim(100000);
  spec.set_output_dim(100000);
  spec.set_num_examples(10'000'000);
  auto r = store_->Generate(spec, "");  // ~8 TB: refused before anything is allocated
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_NE(std::string(r.status().message()).find("--max_dataset_bytes"), std::string::npos);
  spec.set_input_dim(0);
  spec.set_output_dim(0);
  spec.set_num_examples(10000);  // 1.6 MB against this fixture's 1 MiB limit
  EXPECT_EQ(store_->Generate(spec, "").status().code(), absl::StatusCode::kResourceExhausted);
}

// A data directory written before ids covered the header's meaning: its records are
// named by the payload digest's first 16 digits and its files by the whole digest. Those
// data sets still load and delete.
TEST_F(DatasetStoreTest, DataSetsFromAnOlderDataDirectoryStillLoadAndDelete) {
  v1::Dataset old;
  old.set_name("datasets/" + header_.sha256().substr(0, 16));
  old.set_num_examples(header_.num_examples());
  *old.mutable_feature_shape() = header_.feature_shape();
  old.set_target_kind(header_.target_kind());
  old.set_num_classes(header_.num_classes());
  old.set_sha256(header_.sha256());
  old.set_size_bytes(static_cast<int64_t>(payload_.size()));
  ASSERT_OK(storage_->PutDataset(old));
  alignd::testing::WriteFile(dir_ / "datasets" / (header_.sha256() + ".bin"), payload_);
  auto loaded = store_->Load(old.name());
  ASSERT_OK(loaded);
  EXPECT_EQ((*loaded)->labels, data_.labels);
  ASSERT_OK(store_->Delete(old.name(), [](const std::string&) { return false; }));
  EXPECT_EQ(FilesInDatasets(), 0);
}

TEST_F(DatasetStoreTest, AnAbandonedUploadLeavesNothing) {
  {
    auto up = store_->BeginUpload(header_);
    ASSERT_OK(up);
    ASSERT_OK((*up)->Append(payload_.substr(0, 10)));
    EXPECT_EQ(FilesInDatasets(), 1);  // the temporary file
  }                                   // the connection dropped
  EXPECT_EQ(FilesInDatasets(), 0);
}

TEST_F(DatasetStoreTest, GeneratorsAreDeterministicAndDeletable) {
  v1::GeneratorSpec spec;
  spec.set_kind(v1::GeneratorSpec::KIND_LINEAR);
  spec.set_num_examples(200);
  auto a = store_->Generate(spec, "");
  ASSERT_OK(a);
  EXPECT_EQ(a->display_name(), "linear-train-seed1-n200");
  EXPECT_EQ(a->generator().kind(), v1::GeneratorSpec::KIND_LINEAR);
  EXPECT_EQ(store_->Generate(spec, "")->name(), a->name());
  spec.set_split(v1::GeneratorSpec::SPLIT_TEST);
  auto t = store_->Generate(spec, "");
  ASSERT_OK(t);
  EXPECT_NE(t->name(), a->name());
  auto loaded = store_->Load(a->name());
  ASSERT_OK(loaded);
  EXPECT_EQ((*loaded)->input_dim(), 30);
  EXPECT_EQ((*loaded)->targets.rows(), 10);

  EXPECT_EQ(store_->Delete(a->name(), [](const std::string&) { return true; }).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_OK(store_->Delete(a->name(), [](const std::string&) { return false; }));
  EXPECT_EQ(store_->Get(a->name()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Delete(a->name(), [](const std::string&) { return false; }).code(),
            absl::StatusCode::kNotFound);
  spec.set_kind(v1::GeneratorSpec::KIND_UNSPECIFIED);
  EXPECT_EQ(store_->Generate(spec, "").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace alignd::server
