// File: client/data_files.h
// -----------------------------------------------------------------------------
// Reading data files on the client side, for upload: IDX (MNIST's pairs of files,
// plain or gzipped), CSV (label or targets in the last columns) and NumPy .npy
// (float32/float64/int arrays). The client speaks the wire format only, so these
// readers turn files straight into an upload payload and its header (see
// DatasetHeader in alignd/v1/datasets.proto); the server validates everything again.
#ifndef ALIGND_CLIENT_DATA_FILES_H_
#define ALIGND_CLIENT_DATA_FILES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "alignd/v1/datasets.pb.h"

namespace alignd::client {

struct Payload {
  v1::DatasetHeader header;  // sha256 filled in
  std::string bytes;
};

// MNIST-style pair: images (n x ...) and labels (n). Unsigned-byte images are scaled to [0, 1].
absl::StatusOr<Payload> ReadIdxPair(const std::string& images, const std::string& labels);
// CSV rows; classification: the last column is an integer label; otherwise the last
// `target_dim` columns are float targets.
absl::StatusOr<Payload> ReadCsv(const std::string& path, bool classification, int target_dim,
                                bool header);
// The same from text in memory.
absl::StatusOr<Payload> ParseCsvText(const std::string& text, const std::string& path,
                                     bool classification, int target_dim, bool header);
// Features from one .npy (n x d, or n x ...) and labels (n, integer) or targets (n x k) from
// another.
absl::StatusOr<Payload> ReadNpyPair(const std::string& features, const std::string& targets,
                                    bool classification);

std::string Sha256Hex(const std::string& bytes);

// An array read from a file: dimensions as declared, values row-major.
struct NumericArray {
  std::vector<int64_t> dims;
  std::vector<double> values;
  bool integral = false;
  bool unsigned_bytes = false;
};
// The parsers behind the readers, from bytes in memory (`path` names them in errors);
// every size computed from a header is checked before anything is allocated.
absl::StatusOr<NumericArray> ParseIdxBytes(const std::string& bytes, const std::string& path);
absl::StatusOr<NumericArray> ParseNpyBytes(const std::string& bytes, const std::string& path);

// A 2-d (n x d) or 1-d (n) .npy array as float32, row-major (example-major).
struct NpyMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> values;
};
absl::StatusOr<NpyMatrix> ReadNpyMatrix(const std::string& path);
// Writes a row-major rows x cols float32 array.
absl::Status WriteNpy(const std::string& path, int64_t rows, int64_t cols, const float* row_major);

}  // namespace alignd::client

#endif  // ALIGND_CLIENT_DATA_FILES_H_
