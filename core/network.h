// File: core/network.h
// -----------------------------------------------------------------------------
// Network: the weights of a multilayer perceptron and what can be asked of them
// without training — outputs (Predict), loss, accuracy or NSE on a data set
// (Evaluate). Immutable once built, so one Network serves any number of threads at
// once: the service builds one per stored (session, step) and answers Predict and
// Evaluate from it (server/sessions/session_manager.h). The Trainer answers the same questions
// about its current weights through the same functions (EvaluateWeights,
// PredictWeights), so the two can never disagree.
#ifndef ALIGND_CORE_NETWORK_H_
#define ALIGND_CORE_NETWORK_H_

#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config.h"
#include "core/dataset.h"
#include "core/layers.h"
#include "core/matrix.h"

namespace alignd::core {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct EvalMetrics {
  int64_t step = 0;
  int64_t epoch = 0;
  int64_t examples = 0;
  double loss = kNaN;
  double accuracy = kNaN;    // classification
  double error_rate = kNaN;  // classification: 1 - accuracy
  double nse = kNaN;         // regression: sum |e|^2 / sum |y*|^2
  // True: on the validation examples held out of the training set
  // (TrainerOptions::validation_fraction); false: on an evaluation data set.
  bool validation = false;
};

// Loss, accuracy / NSE of the network (config, w, b) on `data` (its examples [first,
// first + count); count < 0: to the end), in chunks of 1024 examples (256 with convolutions).
// `class_labels`: the kind of data the network was trained on (InvalidArgument for the other kind,
// or for shapes that do not fit). step and epoch are left 0.
// `layers` are BuildLayers(config), built once by the caller (Network, Trainer).
absl::StatusOr<EvalMetrics> EvaluateWeights(const Layers& layers, const NetworkConfig& config,
                                            const std::vector<Matrix>& w,
                                            const std::vector<Vector>& b, bool class_labels,
                                            const Dataset& data, int64_t first = 0,
                                            int64_t count = -1);
// Outputs (out x n) for inputs x (in x n), in chunks of 1024 columns (256 with
// convolutions). InvalidArgument for
// a wrong number of features or a non-finite input.
absl::StatusOr<Matrix> PredictWeights(const Layers& layers, const NetworkConfig& config,
                                      const std::vector<Matrix>& w, const std::vector<Vector>& b,
                                      ConstMatrixRef x);

// Both take their chunk activations from one pool shared by every thread, which keeps the
// most recently returned workspaces, at most MaxKeptChunkWorkspaces() of them and none above
// 32 MB; a call prefers one last used for its own shapes. How many are kept now (for tests).
size_t KeptChunkWorkspaces();
size_t MaxKeptChunkWorkspaces();

class Network {
 public:
  // W[i] is sizes[i+1] x sizes[i], b[i] sizes[i+1] x 1 (biases as stored in a
  // TrainerState). InvalidArgument if a shape disagrees with the config.
  static absl::StatusOr<Network> Create(const NetworkConfig& config, std::vector<Matrix> weights,
                                        const std::vector<Matrix>& biases, bool class_labels);

  absl::StatusOr<Matrix> Predict(ConstMatrixRef x) const {
    return PredictWeights(layers_, config_, w_, b_, x);
  }
  absl::StatusOr<EvalMetrics> Evaluate(const Dataset& data) const {
    return EvaluateWeights(layers_, config_, w_, b_, class_labels_, data);
  }

  const NetworkConfig& config() const { return config_; }
  bool class_labels() const { return class_labels_; }
  int num_layers() const { return static_cast<int>(w_.size()); }
  const Matrix& weights(int i) const { return w_[i]; }

 private:
  Network() = default;
  NetworkConfig config_;
  Layers layers_;
  std::vector<Matrix> w_;
  std::vector<Vector> b_;
  bool class_labels_ = false;
};

}  // namespace alignd::core

#endif  // ALIGND_CORE_NETWORK_H_
