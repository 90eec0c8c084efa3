// File: client/data_files.h
// -----------------------------------------------------------------------------
// Data files to upload payloads: IDX pairs (MNIST's, plain or gzipped), CSV (label or
// targets in the last columns) and NumPy .npy pairs, read by formats/ and turned into
// a DatasetHeader (sha256 filled in) and its payload. The server checks everything again.
#ifndef ALIGND_CLIENT_DATA_FILES_H_
#define ALIGND_CLIENT_DATA_FILES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "alignd/v1/datasets.pb.h"
#include "formats/formats.h"

namespace alignd::client {

struct Payload {
  v1::DatasetHeader header;  // sha256 filled in
  std::string bytes;
};

// The header and payload of examples read by formats/.
Payload PayloadOf(const formats::Examples& examples);

absl::StatusOr<Payload> ReadIdxPair(const std::string& images, const std::string& labels);
// classification: the last column is an integer label; else the last `target_dim` columns.
absl::StatusOr<Payload> ReadCsv(const std::string& path, bool classification, int target_dim,
                                bool header);
// Declares the examples' shape ("CxHxW" or "HxW", e.g. 1x28x28): what a CSV cannot say, so that
// a conv net takes the data set's image shape. InvalidArgument unless every dimension is >= 1
// and their product is the examples' feature count.
absl::Status SetFeatureShape(const std::string& shape, Payload* payload);
absl::StatusOr<Payload> ReadNpyPair(const std::string& features, const std::string& targets,
                                    bool classification);

// A 2-d (n x d) or 1-d (n) .npy array as float32, row-major (example-major); images (n x H x W,
// n x C x H x W) as n x (C H W), each example's values in C order.
struct NpyMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> values;
};
absl::StatusOr<NpyMatrix> ReadNpyMatrix(const std::string& path);
// Writes a row-major rows x cols float32 array.
absl::Status WriteNpy(const std::string& path, int64_t rows, int64_t cols, const float* row_major);

}  // namespace alignd::client

#endif  // ALIGND_CLIENT_DATA_FILES_H_
