// Fuzz target: initial weights (CreateSessionRequest.initial_weights), a safetensors file
// from any caller, parsed and applied to a small conv net's state. Whatever it accepts
// leaves every tensor its shape and every value finite.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/layers.h"
#include "server/export/exports.h"

namespace {

struct Net {
  alignd::core::NetworkConfig net;
  alignd::core::TrainerState state;
};

const Net& TheNet() {
  static const Net* n = [] {
    using alignd::core::LayerKind;
    auto* n = new Net;
    n->net.layers = {{LayerKind::kConv, 2, 3, 3, 1, 1},
                     {LayerKind::kMaxPool, 0, 2},
                     {LayerKind::kFlatten},
                     {LayerKind::kDense, 3}};
    n->net.input = {1, 4, 4};
    n->net.sizes = {16};
    if (!alignd::core::CompleteNetwork(&n->net).ok()) __builtin_trap();
    auto layers = alignd::core::BuildLayers(n->net);
    if (!layers.ok()) __builtin_trap();
    for (const auto& l : *layers) {
      n->state.weights.emplace_back(alignd::core::Matrix::Zero(l->weight_rows(), l->weight_cols()));
      n->state.biases.emplace_back(alignd::core::Matrix::Zero(l->weight_rows(), 1));
      n->state.feedback.emplace_back(n->state.weights.back());  // B shaped like W
    }
    return n;
  }();
  return *n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  auto file = alignd::server::ParseSafetensors(bytes, "initial_weights");
  if (!file.ok()) return 0;
  const Net& n = TheNet();
  alignd::core::TrainerState st = n.state;
  if (!alignd::server::ApplySafetensors(*file, n.net, "initial_weights", &st).ok()) return 0;
  for (size_t i = 0; i < st.weights.size(); ++i) {
    if (st.weights[i].rows() != n.state.weights[i].rows() ||
        st.weights[i].cols() != n.state.weights[i].cols() ||
        st.feedback[i].size() != n.state.feedback[i].size() ||
        st.biases[i].size() != n.state.biases[i].size())
      __builtin_trap();
    if (!st.weights[i].allFinite() || !st.biases[i].allFinite()) __builtin_trap();
  }
  return 0;
}
