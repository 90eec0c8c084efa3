// File: core/state_io.cc
// -----------------------------------------------------------------------------
// SerializeState / ParseState: a flat binary encoding of TrainerState for
// checkpoints. Layout: "ALIGNDST", u32 version, then the fields in declaration
// order; integers and floats little-endian as in memory (x86-64, aarch64);
// vectors as a u64 count then their items; a matrix as i64 rows, i64 cols, then
// rows*cols floats, column-major.
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/trainer.h"

namespace alignd::core {
namespace {

constexpr char kMagic[8] = {'A', 'L', 'I', 'G', 'N', 'D', 'S', 'T'};
constexpr uint32_t kVersion = 1;

class Writer {
 public:
  template <typename T>
  void Put(const T& v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void PutMatrix(const Matrix& m) {
    Put<int64_t>(m.rows());
    Put<int64_t>(m.cols());
    if (m.size() > 0)
      out_.append(reinterpret_cast<const char*>(m.data()), sizeof(float) * m.size());
  }
  void PutMatrices(const std::vector<Matrix>& v) {
    Put<uint64_t>(v.size());
    for (const Matrix& m : v) PutMatrix(m);
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(const std::string& in) : in_(in) {}
  template <typename T>
  bool Get(T* v) {
    if (in_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool GetMatrix(Matrix* m) {
    int64_t rows, cols;
    if (!Get(&rows) || !Get(&cols) || rows < 0 || cols < 0) return false;
    if (rows != 0 && cols > static_cast<int64_t>((in_.size() - pos_) / sizeof(float)) / rows)
      return false;
    const size_t bytes = sizeof(float) * static_cast<size_t>(rows * cols);
    if (in_.size() - pos_ < bytes) return false;
    m->resize(rows, cols);
    if (bytes > 0) std::memcpy(m->data(), in_.data() + pos_, bytes);  // data() is null when empty
    pos_ += bytes;
    return true;
  }
  bool GetMatrices(std::vector<Matrix>* v) {
    uint64_t n;
    if (!Get(&n) || n > (in_.size() - pos_) / 16) return false;
    v->resize(n);
    for (Matrix& m : *v)
      if (!GetMatrix(&m)) return false;
    return true;
  }
  bool AtEnd() const { return pos_ == in_.size(); }

 private:
  const std::string& in_;
  size_t pos_ = 0;
};

}  // namespace

std::string SerializeState(const TrainerState& s) {
  Writer w;
  w.out().append(kMagic, sizeof(kMagic));
  w.Put(kVersion);
  w.Put(s.step);
  w.Put(s.epoch);
  w.Put(s.position);
  for (uint64_t word : s.rng) w.Put(word);
  w.Put<uint64_t>(s.permutation.size());
  if (!s.permutation.empty())
    w.out().append(reinterpret_cast<const char*>(s.permutation.data()),
                   sizeof(int32_t) * s.permutation.size());
  w.PutMatrices(s.weights);
  w.PutMatrices(s.biases);
  w.PutMatrices(s.feedback);
  w.PutMatrices(s.weight_masks);
  w.PutMatrices(s.feedback_masks);
  w.PutMatrices(s.moments1);
  w.PutMatrices(s.moments2);
  w.Put(s.adam_t);
  return std::move(w.out());
}

absl::StatusOr<TrainerState> ParseState(const std::string& bytes) {
  if (bytes.size() < sizeof(kMagic) + 4 || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0)
    return absl::InvalidArgumentError("not an alignd trainer state (bad magic)");
  Reader r(bytes);
  char magic[8];
  for (char& c : magic) r.Get(&c);
  uint32_t version = 0;
  r.Get(&version);
  if (version != kVersion)
    return absl::InvalidArgumentError(absl::StrCat("trainer state version ", version,
                                                   " is not supported (expected ", kVersion, ")"));
  TrainerState s;
  uint64_t perm_size = 0;
  bool ok = r.Get(&s.step) && r.Get(&s.epoch) && r.Get(&s.position);
  for (uint64_t& word : s.rng) ok = ok && r.Get(&word);
  ok = ok && r.Get(&perm_size) && perm_size <= bytes.size() / sizeof(int32_t);
  if (ok) {
    s.permutation.resize(perm_size);
    for (int32_t& v : s.permutation) ok = ok && r.Get(&v);
  }
  ok = ok && r.GetMatrices(&s.weights) && r.GetMatrices(&s.biases) && r.GetMatrices(&s.feedback) &&
       r.GetMatrices(&s.weight_masks) && r.GetMatrices(&s.feedback_masks) &&
       r.GetMatrices(&s.moments1) && r.GetMatrices(&s.moments2) && r.Get(&s.adam_t) && r.AtEnd();
  if (!ok) return absl::InvalidArgumentError("trainer state is truncated or corrupt");
  // Consistent in itself, so that what reads it (snapshot streams, Predict) may index
  // every layer's weights, biases and feedback: one of each per layer. (Whether the shapes
  // fit the network is Network::Create's and ImportState's to check: a convolution's W is
  // out channels x kernel, and a pooling layer has none.)
  const size_t L = s.weights.size();
  if (L == 0 || s.biases.size() != L || s.feedback.size() != L)
    return absl::InvalidArgumentError(absl::StrCat("trainer state has ", L, " weight layers, ",
                                                   s.biases.size(), " bias vectors and ",
                                                   s.feedback.size(), " feedback entries"));
  for (size_t i = 0; i < L; ++i) {
    if (s.biases[i].rows() != s.weights[i].rows() || s.biases[i].cols() != 1)
      return absl::InvalidArgumentError(absl::StrCat(
          "trainer state: biases[", i, "] is ", s.biases[i].rows(), "x", s.biases[i].cols(),
          ", weights[", i, "] has ", s.weights[i].rows(), " rows"));
  }
  if (s.step < 0 || s.epoch < 0 || s.position < 0 || s.adam_t < 0)
    return absl::InvalidArgumentError("trainer state has a negative counter");
  return s;
}

}  // namespace alignd::core
