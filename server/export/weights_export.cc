// File: server/export/weights_export.cc
// One state's weights as safetensors and as an ONNX model. Both read the tensors as
// ReadSnapshot sends them (server/api/snapshot_streams.h: the same labels, shapes and order),
// so an export and a snapshot can never disagree.
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/version.h"
#include "core/layers.h"
#include "nlohmann/json.hpp"
#include "server/api/resource_names.h"
#include "server/api/snapshot_streams.h"
#include "server/export/exports.h"
#include "third_party/onnx/onnx.pb.h"

namespace alignd::server {
namespace {

// A snapshot's tensors, as ReadSnapshot has them: shapes and the values of each (matrices
// column-major, conv kernels C order).
struct Tensors {
  v1::Snapshot header;
  std::vector<std::vector<float>> values;  // one per header.shapes entry
};

Tensors Read(const v1::Session& session, const core::TrainerState& state,
             const core::NetworkConfig& net) {
  Tensors t;
  std::vector<float> all;
  for (auto& chunk : SnapshotChunks(SnapshotName(session.name(), state.step), state, net)) {
    if (chunk.has_header())
      t.header = std::move(*chunk.mutable_header());
    else
      all.insert(all.end(), chunk.values().data().begin(), chunk.values().data().end());
  }
  size_t at = 0;
  for (const auto& s : t.header.shapes()) {
    const size_t n = static_cast<size_t>(s.rows() * s.cols());
    t.values.emplace_back(all.begin() + at, all.begin() + at + n);
    at += n;
  }
  return t;
}

void AppendFloats(const std::vector<float>& v, std::string* out) {
  static_assert(sizeof(float) == 4);
  const size_t at = out->size();
  out->resize(at + 4 * v.size());
  std::memcpy(out->data() + at, v.data(), 4 * v.size());  // x86-64: little-endian already
}

std::string Safetensors(const v1::Session& session, const core::TrainerState& state,
                        const core::NetworkConfig& net) {
  const Tensors t = Read(session, state, net);
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (int k = 0; k < t.header.shapes_size(); ++k) {
    const v1::TensorShape& s = t.header.shapes(k);
    if (s.rows() * s.cols() == 0) continue;  // a layer without weights, or no B
    std::vector<float> v = t.values[k];
    std::vector<int64_t> shape(s.dims().begin(), s.dims().end());
    if (shape.size() == 2) {  // column-major [rows, cols] -> C order
      for (int64_t r = 0; r < s.rows(); ++r)
        for (int64_t c = 0; c < s.cols(); ++c) v[r * s.cols() + c] = t.values[k][c * s.rows() + r];
      if (s.label()[0] == 'b') shape = {s.rows()};  // a bias is a vector
    }
    const size_t begin = data.size();
    AppendFloats(v, &data);
    header[s.label()] = {
        {"dtype", "F32"}, {"shape", shape}, {"data_offsets", {begin, data.size()}}};
  }
  header["__metadata__"] = {{"format", "alignd"},
                            {"alignd_version", ALIGND_VERSION},
                            {"session", SessionJson(session)},
                            {"step", std::to_string(state.step)},
                            {"epoch", std::to_string(state.epoch)}};
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // the values start 8-byte aligned
  std::string out(8, '\0');
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  out += json;
  out += data;
  return out;
}

// ---- ONNX

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* g) : g_(g) {}

  std::string Initializer(const std::string& name, const std::vector<int64_t>& dims,
                          const std::vector<float>& values) {
    auto* t = g_->add_initializer();
    t->set_name(name);
    for (int64_t d : dims) t->add_dims(d);
    t->set_data_type(onnx::TensorProto::FLOAT);
    AppendFloats(values, t->mutable_raw_data());
    return name;
  }
  std::string Shape(const std::string& name, const std::vector<int64_t>& dims) {
    auto* t = g_->add_initializer();
    t->set_name(name);
    t->add_dims(static_cast<int64_t>(dims.size()));
    t->set_data_type(onnx::TensorProto::INT64);
    t->mutable_raw_data()->append(reinterpret_cast<const char*>(dims.data()), 8 * dims.size());
    return name;
  }
  onnx::NodeProto* Node(const std::string& op, std::vector<std::string> inputs) {
    auto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(absl::StrCat(op, "_", g_->node_size() - 1));
    for (auto& in : inputs) n->add_input(in);
    current_ = absl::StrCat("t", g_->node_size() - 1);
    n->add_output(current_);
    return n;
  }
  static void Ints(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void Int(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  const std::string& current() const { return current_; }
  void set_current(std::string c) { current_ = std::move(c); }

 private:
  onnx::GraphProto* const g_;
  std::string current_;
};

void ValueInfo(onnx::ValueInfoProto* v, const std::string& name, int64_t features) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  t->mutable_shape()->add_dim()->set_dim_param("N");
  t->mutable_shape()->add_dim()->set_dim_value(features);
}

absl::StatusOr<std::string> Onnx(const v1::Session& session, const core::TrainerState& state,
                                 const core::NetworkConfig& net) {
  ASSIGN_OR_RETURN(const core::Layers layers, core::BuildLayers(net));
  const Tensors t = Read(session, state, net);
  const int L = static_cast<int>(layers.size());
  if (t.header.shapes_size() != 3 * L)
    return absl::InternalError("the snapshot's tensors do not match the network's layers");
  onnx::ModelProto model;
  model.set_ir_version(7);
  model.set_producer_name("alignd");
  model.set_producer_version(ALIGND_VERSION);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(13);
  auto meta = [&](const std::string& k, const std::string& v) {
    auto* p = model.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  };
  meta("session", SessionJson(session));
  meta("step", std::to_string(state.step));
  meta("epoch", std::to_string(state.epoch));
  onnx::GraphProto* g = model.mutable_graph();
  g->set_name(SessionIdOf(session));
  g->set_doc_string(absl::StrCat("alignd session ", session.name(), " at step ", state.step,
                                 ": outputs as its Predict gives them"));
  ValueInfo(g->add_input(), "x", net.sizes.front());
  GraphBuilder b(g);
  b.set_current("x");
  bool image = false;  // the current tensor is [N, C, H, W], else [N, features]
  for (int i = 0; i < L; ++i) {
    const core::Layer& layer = *layers[i];
    const core::LayerSpec spec =
        net.layers.empty() ? core::LayerSpec{} : net.layers[static_cast<size_t>(i)];
    const v1::TensorShape& ws = t.header.shapes(3 * i);
    const v1::TensorShape& bs = t.header.shapes(3 * i + 1);
    const std::vector<float>& w = t.values[3 * i];
    const std::vector<float>& bias = t.values[3 * i + 1];
    const std::string id = std::to_string(i);
    auto to_image = [&] {
      if (image) return;
      const core::ImageShape& in = layer.in_shape();
      b.Node("Reshape",
             {b.current(), b.Shape("shape" + id, {-1, in.channels, in.height, in.width})});
      image = true;
    };
    switch (layer.kind()) {
      case core::LayerKind::kDense: {
        if (image) {
          auto* n = b.Node("Flatten", {b.current()});
          GraphBuilder::Int(n, "axis", 1);
          image = false;
        }
        // W is out x in, column-major: as C-order values that is W^T, [in, out], so the
        // product is x W^T with Gemm's B as it is (transB = 0).
        std::vector<std::string> in = {b.current(),
                                       b.Initializer("W" + id, {ws.cols(), ws.rows()}, w)};
        if (net.bias) in.push_back(b.Initializer("b" + id, {bs.rows()}, bias));
        b.Node("Gemm", in);
        break;
      }
      case core::LayerKind::kConv: {
        to_image();
        std::vector<std::string> in = {
            b.current(), b.Initializer("W" + id, {ws.dims().begin(), ws.dims().end()}, w)};
        if (net.bias) in.push_back(b.Initializer("b" + id, {bs.rows()}, bias));
        auto* n = b.Node("Conv", in);
        const int kh = spec.kernel_h, kw = spec.kernel_w ? spec.kernel_w : spec.kernel_h;
        const int s = spec.stride ? spec.stride : 1, p = spec.padding;
        GraphBuilder::Ints(n, "kernel_shape", {kh, kw});
        GraphBuilder::Ints(n, "strides", {s, s});
        GraphBuilder::Ints(n, "pads", {p, p, p, p});
        break;
      }
      case core::LayerKind::kMaxPool:
      case core::LayerKind::kAvgPool: {
        to_image();
        const int k = spec.kernel_h, s = spec.stride ? spec.stride : spec.kernel_h;
        auto* n = b.Node(layer.kind() == core::LayerKind::kMaxPool ? "MaxPool" : "AveragePool",
                         {b.current()});
        GraphBuilder::Ints(n, "kernel_shape", {k, k});
        GraphBuilder::Ints(n, "strides", {s, s});
        break;
      }
      case core::LayerKind::kFlatten: {
        if (image) {
          auto* n = b.Node("Flatten", {b.current()});
          GraphBuilder::Int(n, "axis", 1);
          image = false;
        }
        break;
      }
    }
    if (!layer.activated()) continue;
    switch (i + 1 == L ? net.output : net.hidden) {
      case core::Activation::kLinear:
        break;
      case core::Activation::kTanh:
        b.Node("Tanh", {b.current()});
        break;
      case core::Activation::kLogistic:
        b.Node("Sigmoid", {b.current()});
        break;
      case core::Activation::kRelu:
        b.Node("Relu", {b.current()});
        break;
      case core::Activation::kSoftmax: {
        // The engine's softmax runs over an example's whole column (a conv output's channels
        // and pixels together): flattened first, as the output is anyway.
        if (image) {
          GraphBuilder::Int(b.Node("Flatten", {b.current()}), "axis", 1);
          image = false;
        }
        GraphBuilder::Int(b.Node("Softmax", {b.current()}), "axis", 1);
        break;
      }
    }
  }
  if (image) GraphBuilder::Int(b.Node("Flatten", {b.current()}), "axis", 1);
  // The last node's output is the graph's output "y".
  onnx::NodeProto* last = g->mutable_node(g->node_size() - 1);
  last->set_output(0, "y");
  ValueInfo(g->add_output(), "y", net.sizes.back());
  if (model.ByteSizeLong() > size_t{INT32_MAX})
    return absl::FailedPreconditionError(
        "ONNX export: the model would be over 2 GiB, more than protobuf (and ONNX) can hold; "
        "export safetensors instead");
  return model.SerializeAsString();
}

}  // namespace

absl::StatusOr<ExportFile> ExportWeights(const v1::Session& session,
                                         const core::TrainerState& state,
                                         const core::NetworkConfig& net, v1::ExportFormat format) {
  const std::string stem = absl::StrCat(SessionIdOf(session), "-step", state.step);
  switch (format) {
    case v1::EXPORT_FORMAT_SAFETENSORS:
      return ExportFile{stem + ".safetensors", "application/octet-stream",
                        Safetensors(session, state, net)};
    case v1::EXPORT_FORMAT_ONNX: {
      ASSIGN_OR_RETURN(std::string data, Onnx(session, state, net));
      return ExportFile{stem + ".onnx", "application/octet-stream", std::move(data)};
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("format ", v1::ExportFormat_Name(format), " is not a weights format"));
  }
}

}  // namespace alignd::server
