// File: server/sessions/dataset_store.cc
#include "server/sessions/dataset_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "formats/formats.h"
#include "google/protobuf/util/time_util.h"
#include "server/api/proto_convert.h"
#include "server/api/resource_names.h"
#include "server/sessions/session_rules.h"

namespace alignd::server {
namespace {

// Limits on what a header may declare, checked before any size is computed from it
// (CheckHeader), so that every product below fits in 64 bits with room to spare.
constexpr int64_t kMaxFeatures = int64_t{1} << 24;
constexpr int64_t kMaxTargetDim = int64_t{1} << 24;
constexpr int64_t kMaxClasses = int64_t{1} << 24;
constexpr int64_t kMaxExamples = (int64_t{1} << 31) - 1;  // the engine indexes examples with int32
constexpr int64_t kMaxValues = int64_t{1} << 40;          // features + targets, 4 TiB of floats

int64_t FeatureCount(const v1::DatasetHeader& h) {
  int64_t d = 1;
  for (int64_t s : h.feature_shape()) {
    if (s < 1 || s > kMaxFeatures) return -1;
    d *= s;
    if (d > kMaxFeatures) return -1;
  }
  return h.feature_shape_size() == 0 ? -1 : d;
}

// What the header declares, bounded so that every size computed from it fits 64 bits
// (InvalidArgument naming the field; ResourceExhausted past 2^40 values). The digest and
// the server's size limit are an upload's own checks (CheckUploadHeader).
absl::Status CheckHeaderShape(const v1::DatasetHeader& h) {
  auto bad = [](const std::string& field, const std::string& msg) {
    return absl::InvalidArgumentError(absl::StrCat("header.", field, " ", msg));
  };
  if (h.display_name().size() > 256) return bad("display_name", "is longer than 256 bytes");
  if (h.num_examples() < 1 || h.num_examples() > kMaxExamples)
    return bad("num_examples", absl::StrCat("must be in [1, 2^31-1], got ", h.num_examples()));
  if (h.feature_shape_size() == 0) return bad("feature_shape", "is empty");
  if (h.feature_shape_size() > 8) return bad("feature_shape", "has more than 8 dimensions");
  int64_t d = 1;
  for (int i = 0; i < h.feature_shape_size(); ++i) {
    const int64_t s = h.feature_shape(i);
    if (s < 1 || s > kMaxFeatures)
      return bad(absl::StrCat("feature_shape[", i, "]"),
                 absl::StrCat("must be in [1, 2^24], got ", s));
    d *= s;
    if (d > kMaxFeatures) return bad("feature_shape", "has more than 2^24 features");
  }
  switch (h.target_kind()) {
    case v1::TARGET_KIND_CLASS_LABELS:
      if (h.num_classes() < 1 || h.num_classes() > kMaxClasses)
        return bad("num_classes", absl::StrCat("must be in [1, 2^24], got ", h.num_classes()));
      break;
    case v1::TARGET_KIND_FLOAT_VECTORS:
      if (h.target_dim() < 1 || h.target_dim() > kMaxTargetDim)
        return bad("target_dim", absl::StrCat("must be in [1, 2^24], got ", h.target_dim()));
      break;
    default:
      return bad("target_kind", "must be TARGET_KIND_CLASS_LABELS or TARGET_KIND_FLOAT_VECTORS");
  }
  // d + per_target <= 2^25 and num_examples < 2^31: the product cannot overflow.
  const int64_t per_target = h.target_kind() == v1::TARGET_KIND_CLASS_LABELS ? 1 : h.target_dim();
  if (h.num_examples() * (d + per_target) > kMaxValues)
    return absl::ResourceExhaustedError(
        absl::StrCat("header declares ", h.num_examples(), " examples of ", d + per_target,
                     " values: more than any server takes (2^40 values)"));
  return absl::OkStatus();
}

absl::Status CheckUploadHeader(const v1::DatasetHeader& h, const DatasetLimits& limits) {
  RETURN_IF_ERROR(CheckHeaderShape(h));
  // Empty: the digest follows the payload (UploadDatasetRequest.sha256).
  if (!h.sha256().empty() && !formats::IsSha256Hex(h.sha256()))
    return absl::InvalidArgumentError(
        "header.sha256 must be 64 lowercase hex digits (or empty, and sent after the payload)");
  const int64_t bytes = PayloadBytes(h);
  if (bytes > limits.max_dataset_bytes)
    return absl::ResourceExhaustedError(
        absl::StrCat("data set of ", bytes, " bytes is over the server's limit of ",
                     limits.max_dataset_bytes, " (--max_dataset_bytes)"));
  return absl::OkStatus();
}

v1::DatasetHeader HeaderOf(const core::Dataset& d, const std::string& display_name) {
  v1::DatasetHeader h;
  h.set_display_name(display_name);
  h.set_num_examples(d.size());
  h.add_feature_shape(d.input_dim());
  if (d.is_classification()) {
    h.set_target_kind(v1::TARGET_KIND_CLASS_LABELS);
    h.set_num_classes(d.num_classes);
  } else {
    h.set_target_kind(v1::TARGET_KIND_FLOAT_VECTORS);
    h.set_target_dim(static_cast<int32_t>(d.targets.rows()));
  }
  return h;
}

v1::Dataset MetaOf(const v1::DatasetHeader& h) {
  v1::Dataset d;
  d.set_name(DatasetName(DatasetId(h)));
  d.set_display_name(h.display_name());
  d.set_num_examples(h.num_examples());
  *d.mutable_feature_shape() = h.feature_shape();
  d.set_target_kind(h.target_kind());
  d.set_num_classes(h.num_classes());
  d.set_target_dim(h.target_dim());
  d.set_sha256(h.sha256());
  d.set_size_bytes(PayloadBytes(h));
  *d.mutable_create_time() = Now();
  return d;
}

}  // namespace

formats::PayloadShape ShapeOf(const v1::DatasetHeader& h) {
  formats::PayloadShape s;
  s.num_examples = h.num_examples();
  s.feature_shape.assign(h.feature_shape().begin(), h.feature_shape().end());
  if (h.target_kind() == v1::TARGET_KIND_CLASS_LABELS)
    s.num_classes = h.num_classes() > 0 ? h.num_classes() : 1;
  else
    s.target_dim = h.target_dim();
  return s;
}

int64_t PayloadBytes(const v1::DatasetHeader& h) {
  const int64_t n = h.num_examples();
  const int64_t d = FeatureCount(h);
  const int64_t per_target = h.target_kind() == v1::TARGET_KIND_CLASS_LABELS ? 1 : h.target_dim();
  if (d < 0 || n < 1 || n > kMaxExamples || per_target < 1 || per_target > kMaxTargetDim) return -1;
  return 4 * n * (d + per_target);  // < 2^2 * 2^31 * 2^25: no overflow
}

std::string DatasetId(const v1::DatasetHeader& h) {
  // What the header says the bytes mean, in a fixed order.
  std::string meaning = absl::StrCat(h.sha256(), "|n=", h.num_examples(), "|shape=");
  for (int64_t s : h.feature_shape()) absl::StrAppend(&meaning, s, ",");
  if (h.target_kind() == v1::TARGET_KIND_CLASS_LABELS)
    absl::StrAppend(&meaning, "|classes=", h.num_classes());
  else
    absl::StrAppend(&meaning, "|target_dim=", h.target_dim());
  return formats::Sha256Hex(meaning).substr(0, 16);
}

std::string EncodePayload(const core::Dataset& d) {
  return formats::EncodePayload(core::ExamplesFromDataset(d));
}

absl::StatusOr<core::Dataset> DecodePayload(const v1::DatasetHeader& h, const std::string& bytes) {
  RETURN_IF_ERROR(CheckHeaderShape(h));
  ASSIGN_OR_RETURN(formats::Examples e, formats::DecodePayload(ShapeOf(h), bytes));
  return core::DatasetFromExamples(std::move(e), h.display_name());
}

// ---- Upload ---------------------------------------------------------------------------

DatasetStore::Upload::Upload(DatasetStore* store, v1::DatasetHeader header,
                             std::unique_ptr<BlobWriter> payload, DatasetOwner by)
    : store_(store),
      by_(std::move(by)),
      header_(std::move(header)),
      payload_(std::move(payload)),
      expected_(PayloadBytes(header_)),
      hasher_(std::make_unique<formats::Sha256>()),
      writer_([this] { WriteLoop(); }) {}

// An uncommitted payload leaves nothing behind (the BlobWriter removes its file); what is
// still queued is not written.
DatasetStore::Upload::~Upload() {
  {
    absl::MutexLock lock(&mu_);
    pending_.clear();
    pending_bytes_ = 0;
  }
  Drain().IgnoreError();
}

void DatasetStore::Upload::WriteLoop() {
  bool failed = false;  // after an error, the rest is dropped
  while (true) {
    std::string chunk;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Upload* u) ABSL_EXCLUSIVE_LOCKS_REQUIRED(u->mu_) {
            return u->closing_ || !u->pending_.empty();
          },
          this));
      if (pending_.empty()) return;  // closing, and everything is written
      chunk = std::move(pending_.front());
      pending_.pop_front();
    }
    absl::Status s;
    if (!failed) {
      s = payload_->Append(chunk);
      if (s.ok()) hasher_->Update(chunk);
    }
    absl::MutexLock lock(&mu_);
    pending_bytes_ -= static_cast<int64_t>(chunk.size());
    if (!s.ok()) write_status_ = s, failed = true;
  }
}

absl::Status DatasetStore::Upload::Drain() {
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }
  if (writer_.joinable()) writer_.join();
  absl::MutexLock lock(&mu_);
  return write_status_;
}

absl::Status DatasetStore::Upload::SetSha256(const std::string& sha256) {
  if (!header_.sha256().empty())
    return absl::InvalidArgumentError(
        "sha256 came in the header and again after the payload; send it once");
  if (!trailing_sha256_.empty()) return absl::InvalidArgumentError("sha256 came twice");
  if (!formats::IsSha256Hex(sha256))
    return absl::InvalidArgumentError("sha256 must be 64 lowercase hex digits");
  trailing_sha256_ = sha256;
  return absl::OkStatus();
}

absl::Status DatasetStore::Upload::Append(std::string chunk) {
  if (!trailing_sha256_.empty())
    return absl::InvalidArgumentError("a chunk came after the sha256; the sha256 comes last");
  if (static_cast<int64_t>(chunk.size()) > store_->limits_.max_chunk_bytes)
    return absl::InvalidArgumentError(absl::StrCat("chunk of ", chunk.size(),
                                                   " bytes is over the limit of ",
                                                   store_->limits_.max_chunk_bytes));
  if (received_ + static_cast<int64_t>(chunk.size()) > expected_)
    return absl::InvalidArgumentError(
        absl::StrCat("payload is longer than the ", expected_, " bytes the header declares"));
  RETURN_IF_ERROR(CheckValues(chunk.data(), chunk.size()));
  received_ += static_cast<int64_t>(chunk.size());
  absl::MutexLock lock(&mu_);
  // Wait for the disk when it is kMaxPendingBytes behind (a chunk is at most 8 MiB).
  mu_.Await(absl::Condition(
      +[](Upload* u) ABSL_EXCLUSIVE_LOCKS_REQUIRED(u->mu_) {
        return u->pending_bytes_ < kMaxPendingBytes || !u->write_status_.ok();
      },
      this));
  RETURN_IF_ERROR(write_status_);
  pending_bytes_ += static_cast<int64_t>(chunk.size());
  pending_.push_back(std::move(chunk));
  return absl::OkStatus();
}

namespace {

// True if any of the `count` 4-byte values at p is bad: a float that is not finite, or
// (labels) an int32 outside [0, num_classes). One pass without branches, which the
// compiler vectorises; the caller looks for the first bad value only when there is one.
bool AnyNonFinite(const char* p, size_t count) {
  uint32_t bad = 0;
  for (size_t i = 0; i < count; ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + 4 * i, 4);
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad != 0;
}

bool AnyLabelOutside(const char* p, size_t count, uint32_t num_classes) {
  uint32_t bad = 0;
  for (size_t i = 0; i < count; ++i) {
    uint32_t label;  // a negative int32 is a large uint32
    std::memcpy(&label, p + 4 * i, 4);
    bad |= static_cast<uint32_t>(label >= num_classes);
  }
  return bad != 0;
}

}  // namespace

absl::Status DatasetStore::Upload::CheckValues(const char* p, size_t n) {
  const int64_t d = FeatureCount(header_), examples = header_.num_examples();
  const int64_t features = d * examples;
  const bool labels = header_.target_kind() == v1::TARGET_KIND_CLASS_LABELS;
  const int64_t k = labels ? 1 : header_.target_dim();
  // One value, with the message that names it (value i of the payload).
  auto check = [&](const char* v, int64_t i) -> absl::Status {
    if (i < features) {
      float f;
      std::memcpy(&f, v, 4);
      if (!std::isfinite(f))
        return absl::InvalidArgumentError(absl::StrCat("feature of example ", i / d, ", index ",
                                                       i % d, " is not finite (", f, ")"));
      return absl::OkStatus();
    }
    const int64_t t = i - features;
    if (labels) {
      int32_t l;
      std::memcpy(&l, v, 4);
      if (l < 0 || l >= header_.num_classes())
        return absl::InvalidArgumentError(absl::StrCat(
            "label of example ", t, " is ", l, ", outside [0, ", header_.num_classes(), ")"));
    } else {
      float f;
      std::memcpy(&f, v, 4);
      if (!std::isfinite(f))
        return absl::InvalidArgumentError(absl::StrCat("target of example ", t / k, ", index ",
                                                       t % k, " is not finite (", f, ")"));
    }
    return absl::OkStatus();
  };
  size_t pos = 0;
  if (carry_size_ > 0) {  // a value split across chunks
    while (carry_size_ < 4 && pos < n) carry_[carry_size_++] = p[pos++];
    if (carry_size_ < 4) return absl::OkStatus();
    carry_size_ = 0;
    RETURN_IF_ERROR(check(carry_, values_checked_++));
  }
  // The whole values of this chunk: the features among them, then the targets.
  const size_t count = (n - pos) / 4;
  const size_t in_features =
      static_cast<size_t>(std::clamp<int64_t>(features - values_checked_, 0, count));
  const bool bad = AnyNonFinite(p + pos, in_features) ||
                   (labels ? AnyLabelOutside(p + pos + 4 * in_features, count - in_features,
                                             static_cast<uint32_t>(header_.num_classes()))
                           : AnyNonFinite(p + pos + 4 * in_features, count - in_features));
  if (bad)  // find the first, for the message
    for (size_t j = 0; j < count; ++j) RETURN_IF_ERROR(check(p + pos + 4 * j, values_checked_ + j));
  values_checked_ += static_cast<int64_t>(count);
  pos += 4 * count;
  while (pos < n) carry_[carry_size_++] = p[pos++];
  return absl::OkStatus();
}

absl::StatusOr<v1::Dataset> DatasetStore::Upload::Finish() {
  if (received_ != expected_)
    return absl::InvalidArgumentError(
        absl::StrCat("payload has ", received_, " bytes; the header declares ", expected_));
  if (header_.sha256().empty() && trailing_sha256_.empty())
    return absl::InvalidArgumentError(
        "no sha256: send the payload's SHA-256 in the header or as the last message");
  RETURN_IF_ERROR(Drain());  // everything hashed and written; the thread is gone
  const std::string digest = hasher_->HexDigest();
  const bool in_header = !header_.sha256().empty();
  const std::string& said = in_header ? header_.sha256() : trailing_sha256_;
  if (digest != said)
    return absl::InvalidArgumentError(absl::StrCat("SHA-256 mismatch: the ",
                                                   in_header ? "header" : "last message", " says ",
                                                   said, ", the payload is ", digest));
  header_.set_sha256(digest);  // the data set's id covers it
  // Every value was checked as it arrived (CheckValues).
  return store_->Commit(MetaOf(header_), std::move(payload_), by_);
}

absl::StatusOr<std::unique_ptr<DatasetStore::Upload>> DatasetStore::BeginUpload(
    const v1::DatasetHeader& header, const DatasetOwner& by) {
  RETURN_IF_ERROR(CheckUploadHeader(header, limits_));
  {
    // Early, before a byte is sent; Commit checks again, exactly.
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(CheckQuota(by, PayloadBytes(header)));
  }
  ASSIGN_OR_RETURN(auto payload, storage_->NewDatasetPayload());
  return std::unique_ptr<Upload>(new Upload(this, header, std::move(payload), by));
}

absl::Status DatasetStore::CheckQuota(const DatasetOwner& by, int64_t more) {
  if (!by.quota || limits_.quota_stored_bytes <= 0 || by.principal.empty()) return absl::OkStatus();
  int64_t owned = 0;
  for (std::string after;;) {
    ASSIGN_OR_RETURN(std::vector<v1::Dataset> page, storage_->ListDatasets(after, 1000));
    if (page.empty()) break;
    after = page.back().name();
    for (const v1::Dataset& d : page)
      for (const std::string& o : d.owners())
        if (o == by.principal) owned += d.size_bytes();
  }
  if (owned + more <= limits_.quota_stored_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("quota stored_bytes: '", by.principal, "' stores ", owned,
                   " bytes of data sets; ", more, " more would pass its ",
                   limits_.quota_stored_bytes, " (--quota_stored_mib); delete a data set first"));
}

absl::StatusOr<v1::Dataset> DatasetStore::Commit(v1::Dataset meta,
                                                 std::unique_ptr<BlobWriter> payload,
                                                 const DatasetOwner& by) {
  absl::MutexLock lock(&mu_);
  // Replicas: under the storage's data set lock, so that owners added on two replicas at
  // once are both kept, the quota's sum counts what the others stored, and a delete of the
  // same content elsewhere cannot remove the payload between its rename and its record.
  absl::StatusOr<v1::Dataset> out = absl::InternalError("not committed");
  const absl::Status locked = storage_->WithDatasetLock([&]() -> absl::Status {
    out = CommitLocked(std::move(meta), std::move(payload), by);
    return out.status();
  });
  if (!locked.ok()) return locked;
  return out;
}

absl::StatusOr<v1::Dataset> DatasetStore::CommitLocked(v1::Dataset meta,
                                                       std::unique_ptr<BlobWriter> payload,
                                                       const DatasetOwner& by) {
  // The same content stored twice is stored once: keep the first record (the writer,
  // destroyed uncommitted, leaves nothing) and add the new owner to it.
  if (auto existing = storage_->GetDataset(meta.name()); existing.ok()) {
    if (by.principal.empty() ||
        std::count(existing->owners().begin(), existing->owners().end(), by.principal) > 0)
      return *existing;
    RETURN_IF_ERROR(CheckQuota(by, existing->size_bytes()));
    existing->add_owners(by.principal);
    RETURN_IF_ERROR(storage_->PutDataset(*existing));
    return *existing;
  }
  RETURN_IF_ERROR(CheckQuota(by, meta.size_bytes()));
  if (!by.principal.empty()) meta.add_owners(by.principal);
  RETURN_IF_ERROR(payload->Commit(meta.name()));
  RETURN_IF_ERROR(storage_->PutDataset(meta));
  return meta;
}

absl::StatusOr<v1::Dataset> DatasetStore::Generate(const v1::GeneratorSpec& spec,
                                                   const std::string& display_name,
                                                   const DatasetOwner& by) {
  const int64_t n = spec.num_examples() > 0 ? spec.num_examples() : 1000;
  if (n > 10'000'000)
    return absl::InvalidArgumentError(
        absl::StrCat("spec.num_examples must be <= 10000000, got ", n));
  const uint64_t seed = spec.seed() != 0 ? spec.seed() : 1;
  const bool test = spec.split() == v1::GeneratorSpec::SPLIT_TEST;
  // Size first, before anything is allocated: the same limit as uploads.
  {
    // The generators' own shapes: linear the spec's (else its defaults), nonlinear its
    // teacher's, the toy 1 -> 1.
    const core::LinearTaskSpec linear_defaults;
    const core::NonlinearTaskSpec nonlinear_defaults;
    int64_t in = 1, out = 1;
    if (spec.kind() == v1::GeneratorSpec::KIND_LINEAR) {
      in = spec.input_dim() != 0 ? spec.input_dim() : linear_defaults.input_dim;
      out = spec.output_dim() != 0 ? spec.output_dim() : linear_defaults.output_dim;
    } else if (spec.kind() == v1::GeneratorSpec::KIND_NONLINEAR) {
      in = nonlinear_defaults.teacher_sizes.front();
      out = nonlinear_defaults.teacher_sizes.back();
    }
    if (in < 1 || in > 100000 || out < 1 || out > 100000)
      return absl::InvalidArgumentError(absl::StrCat(
          "spec.input_dim and spec.output_dim must be in [1, 100000], got ", in, " and ", out));
    // The examples, and the linear task's teacher matrix T (out x in).
    const int64_t bytes = 4 * n * (in + out) + 4 * in * out;  // <= 4 * (1e7 * 2e5 + 1e10): fits
    if (bytes > limits_.max_dataset_bytes)
      return absl::ResourceExhaustedError(absl::StrCat(
          "generated data set of about ", bytes, " bytes is over the server's limit of ",
          limits_.max_dataset_bytes, " (--max_dataset_bytes)"));
  }
  core::TaskData task;
  std::string kind;
  switch (spec.kind()) {
    case v1::GeneratorSpec::KIND_LINEAR: {
      core::LinearTaskSpec s;
      if (spec.input_dim() != 0) s.input_dim = spec.input_dim();
      if (spec.output_dim() != 0) s.output_dim = spec.output_dim();
      s.noise = spec.noise();
      s.seed = seed;
      s.train_size = test ? 1 : n;
      s.test_size = test ? n : 0;
      ASSIGN_OR_RETURN(task, core::MakeLinearTask(s));
      kind = "linear";
      break;
    }
    case v1::GeneratorSpec::KIND_NONLINEAR: {
      core::NonlinearTaskSpec s;
      s.seed = seed;
      s.train_size = test ? 1 : n;
      s.test_size = test ? n : 0;
      ASSIGN_OR_RETURN(task, core::MakeNonlinearTask(s));
      kind = "nonlinear";
      break;
    }
    case v1::GeneratorSpec::KIND_TOY: {
      ASSIGN_OR_RETURN(task, core::MakeToyTask(test ? 1 : n, test ? n : 0, seed));
      kind = "toy";
      break;
    }
    default:
      return absl::InvalidArgumentError(
          "spec.kind must be KIND_LINEAR, KIND_NONLINEAR or KIND_TOY");
  }
  const core::Dataset& d = test ? task.test : task.train;
  const std::string name =
      display_name.empty() ? absl::StrCat(kind, test ? "-test" : "-train", "-seed", seed, "-n", n)
                           : display_name;
  v1::DatasetHeader h = HeaderOf(d, name);
  const std::string payload = EncodePayload(d);
  h.set_sha256(formats::Sha256Hex(payload));
  v1::Dataset meta = MetaOf(h);
  *meta.mutable_generator() = spec;
  // Identical requests at once each write their own blob; the first commit wins.
  ASSIGN_OR_RETURN(auto blob, storage_->NewDatasetPayload());
  RETURN_IF_ERROR(blob->Append(payload));
  return Commit(std::move(meta), std::move(blob), by);
}

absl::StatusOr<v1::Dataset> DatasetStore::Get(const std::string& name) {
  RETURN_IF_ERROR(ParseDatasetName(name).status());
  return storage_->GetDataset(name);
}

absl::StatusOr<std::shared_ptr<const core::Dataset>> DatasetStore::Load(const std::string& name) {
  RETURN_IF_ERROR(ParseDatasetName(name).status());
  {
    absl::MutexLock lock(&mu_);
    if (auto it = cache_.find(name); it != cache_.end()) {
      it->second.last_use = ++clock_;
      return it->second.data;
    }
  }
  ASSIGN_OR_RETURN(v1::Dataset meta, storage_->GetDataset(name));
  ASSIGN_OR_RETURN(std::string bytes, storage_->ReadDatasetPayload(meta));
  v1::DatasetHeader h;
  h.set_display_name(meta.display_name());
  h.set_num_examples(meta.num_examples());
  *h.mutable_feature_shape() = meta.feature_shape();
  h.set_target_kind(meta.target_kind());
  h.set_num_classes(meta.num_classes());
  h.set_target_dim(meta.target_dim());
  auto decoded = DecodePayload(h, bytes);
  if (!decoded.ok())
    return absl::DataLossError(
        absl::StrCat(name, ": stored payload is corrupt: ", decoded.status().message()));
  auto shared = std::make_shared<const core::Dataset>(std::move(*decoded));
  absl::MutexLock lock(&mu_);
  cache_[name] = Cached{shared, static_cast<int64_t>(bytes.size()), ++clock_};
  Evict();
  return shared;
}

void DatasetStore::Evict() {
  int64_t total = 0;
  for (const auto& [n, c] : cache_) total += c.bytes;
  while (total > limits_.cache_bytes && cache_.size() > 1) {
    auto oldest = cache_.begin();
    for (auto it = cache_.begin(); it != cache_.end(); ++it)
      if (it->second.last_use < oldest->second.last_use) oldest = it;
    total -= oldest->second.bytes;
    cache_.erase(oldest);  // sessions still using it keep their own reference
  }
}

absl::Status DatasetStore::Delete(const std::string& name,
                                  const std::function<bool(const std::string&)>& in_use,
                                  const std::string& owner) {
  RETURN_IF_ERROR(ParseDatasetName(name).status());
  // Under the locks Commit takes (this process's and, on replicas, the storage's): an owner
  // added meanwhile, here or on another replica, is never deleted from under.
  absl::MutexLock lock(&mu_);
  return storage_->WithDatasetLock([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::Status {
    ASSIGN_OR_RETURN(v1::Dataset d, storage_->GetDataset(name));
    if (!owner.empty()) {
      auto* owners = d.mutable_owners();
      auto it = std::find(owners->begin(), owners->end(), owner);
      if (it == owners->end()) return absl::NotFoundError(absl::StrCat(name, " not found"));
      if (owners->size() > 1) {
        owners->erase(it);
        return storage_->PutDataset(d);
      }
    }
    if (in_use(name)) return DatasetInUse(name);
    cache_.erase(name);
    return storage_->DeleteDataset(name);
  });
}

}  // namespace alignd::server
