// File: core/conv.cc
// -----------------------------------------------------------------------------
// core/conv.h: convolutions on oneDNN 2.6's primitives, an im2col + Eigen path beside them
// (the tests' reference, and the only path in a build without oneDNN), pooling as loops.
//
// oneDNN: each calling thread caches, per shape, batch, kind (forward, backward-data,
// backward-weights; with or without bias) and thread count, the primitive, dnnl::memory
// objects over our buffers (rebound with set_data_handle on every call), the weights in the
// layout the primitive chose (format_tag::any) with the reorders to and from ours, and a
// user-mode scratchpad (a library-mode one would be shared by the threads that execute the
// primitive, which oneDNN's primitive cache hands to all of them). After its first call a
// shape allocates nothing of ours. Our weights, out_c x in_c*kh*kw column-major, are oihw
// with strides (1, kh*kw*out_c, kw*out_c, out_c) and are described to oneDNN as such.
// Activations too are in the primitive's layout, with reorders to and from our NCHW (see
// Build for the one exception and the measurements).
// Primitives run through the C API's dnnl_primitive_execute with an argument array built
// once: the C++ execute() builds an unordered_map and a vector on every call.
#include "core/conv.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "absl/base/casts.h"
#include "core/gemm.h"

#ifdef ALIGND_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace alignd::core {
namespace {

// A per-thread buffer that only grows, so that a steady state allocates nothing.
float* Grow(std::vector<float>& v, int64_t n) {
  if (int64_t(v.size()) < n) v.resize(n);
  return v.data();
}

// cols (P x K column-major, P = out_h*out_w, K = in_c*kh*kw): cols(p, k) is the input
// entry kernel element k = (i*kh + r)*kw + c sees at output position p (0 in the padding).
// With it a convolution of one example is z^T = cols * W^T (z is out_c x P row-major).
// Col2Im is the adjoint: it adds cols back onto dx.
template <bool kAdjoint>
void Im2Col(const ConvShape& s, const float* x, float* cols, float* dx) {
  const int oh = s.out_h(), ow = s.out_w();
  for (int i = 0; i < s.in_c; ++i)
    for (int r = 0; r < s.kernel_h; ++r)
      for (int c = 0; c < s.kernel_w; ++c)
        for (int y = 0; y < oh; ++y) {
          const int iy = y * s.stride - s.padding + r;
          const bool row_in = iy >= 0 && iy < s.in_h;
          for (int xo = 0; xo < ow; ++xo, ++cols) {
            const int ix = xo * s.stride - s.padding + c;
            const int64_t at = (int64_t(i) * s.in_h + iy) * s.in_w + ix;
            const bool in = row_in && ix >= 0 && ix < s.in_w;
            if constexpr (kAdjoint) {
              if (in) dx[at] += *cols;
            } else {
              *cols = in ? x[at] : 0.0f;
            }
          }
        }
}

void CheckShapes(const ConvShape& s, Eigen::Index x_rows, Eigen::Index z_rows, Eigen::Index w_rows,
                 Eigen::Index w_cols) {
  (void)s, (void)x_rows, (void)z_rows, (void)w_rows, (void)w_cols;
  assert(x_rows == s.in_size() && z_rows == s.out_size());
  assert(w_rows == s.out_c && w_cols == s.kernel_size());
}

}  // namespace

void ConvForwardReference(const ConvShape& s, ConstMatrixRef x, ConstMatrixRef w, const Vector* b,
                          MatrixRef z) {
  CheckShapes(s, x.rows(), z.rows(), w.rows(), w.cols());
  assert(x.cols() == z.cols() && (!b || b->size() == s.out_c));
  const int64_t p = int64_t(s.out_h()) * s.out_w();
  thread_local std::vector<float> buffer;
  MatrixMap cols(Grow(buffer, p * s.kernel_size()), p, s.kernel_size());
  for (Eigen::Index j = 0; j < x.cols(); ++j) {
    Im2Col<false>(s, x.col(j).data(), cols.data(), nullptr);
    MatrixMap zt(z.col(j).data(), p, s.out_c);
    GemmEigen(false, true, 1.0f, cols, w, 0.0f, zt);
    if (b) zt.rowwise() += b->transpose();
  }
}

void ConvBackwardDataReference(const ConvShape& s, ConstMatrixRef dz, ConstMatrixRef m,
                               MatrixRef dx) {
  CheckShapes(s, dx.rows(), dz.rows(), m.rows(), m.cols());
  assert(dx.cols() == dz.cols());
  const int64_t p = int64_t(s.out_h()) * s.out_w();
  thread_local std::vector<float> buffer;
  MatrixMap cols(Grow(buffer, p * s.kernel_size()), p, s.kernel_size());
  for (Eigen::Index j = 0; j < dz.cols(); ++j) {
    GemmEigen(false, false, 1.0f, ConstMatrixMap(dz.col(j).data(), p, s.out_c), m, 0.0f, cols);
    dx.col(j).setZero();
    Im2Col<true>(s, nullptr, cols.data(), dx.col(j).data());
  }
}

void ConvBackwardWeightsReference(const ConvShape& s, ConstMatrixRef x, ConstMatrixRef dz,
                                  MatrixRef dw, Vector* db) {
  CheckShapes(s, x.rows(), dz.rows(), dw.rows(), dw.cols());
  assert(x.cols() == dz.cols());
  const int64_t p = int64_t(s.out_h()) * s.out_w();
  thread_local std::vector<float> buffer;
  MatrixMap cols(Grow(buffer, p * s.kernel_size()), p, s.kernel_size());
  dw.setZero();
  if (db) db->setZero(s.out_c);
  for (Eigen::Index j = 0; j < x.cols(); ++j) {
    Im2Col<false>(s, x.col(j).data(), cols.data(), nullptr);
    const ConstMatrixMap dzt(dz.col(j).data(), p, s.out_c);
    GemmEigen(true, false, 1.0f, dzt, cols, 1.0f, dw);
    if (db) *db += dzt.colwise().sum().transpose();
  }
}

#ifdef ALIGND_HAVE_ONEDNN
namespace {

using dnnl::memory;
using Dt = memory::data_type;
using Tag = memory::format_tag;

enum class Kind { kForward, kBackwardData, kBackwardWeights };

// A primitive (the convolution or a reorder) with its arguments, scratchpad included.
struct Step {
  dnnl::primitive primitive;
  memory::desc scratchpad_desc;
  memory scratchpad;
  std::vector<dnnl_exec_arg_t> args;
};

// One cached convolution: `user` are the memories over the caller's buffers, in the order
// of the pointers Run takes; `steps` the input reorders, the convolution, the output ones.
struct Conv {
  std::vector<memory> user, held;  // held: the primitive's own layouts, kept alive
  std::vector<Step> steps;
  memory scratchpad;  // one buffer for every step's scratchpad (they run one at a time)
  std::string implementation;
  uint64_t last_use = 0;  // the cache's clock at its last call
};

// Convolutions a thread keeps built (each holds its activations in the primitive's layout,
// sized for its batch): a training step uses up to three per conv layer, Predict and Evaluate
// one per layer and chunk width. The least recently used goes when one more is needed, so a
// thread that served many shapes or batch sizes does not grow without bound.
constexpr size_t kMaxCachedConvs = 16;

// An argument of the convolution: its oneDNN id, direction and our buffer's layout.
struct ArgSpec {
  int id;
  bool input;
  memory::desc md;
};

struct Context {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<std::array<int, 12>, std::unique_ptr<Conv>> cache;  // after engine: freed first
  uint64_t clock = 0;
};

Context& ThreadContext() {
  thread_local Context context;
  return context;
}

std::unique_ptr<Conv> Make(const dnnl::primitive_desc& pd, const std::vector<ArgSpec>& specs,
                           const dnnl::primitive_attr& attr, const dnnl::engine& engine) {
  auto c = std::make_unique<Conv>();
  c->implementation = pd.impl_info_str();
  std::vector<Step> pre, post;
  Step conv{dnnl::primitive(pd), pd.scratchpad_desc(), {}, {}};
  for (const ArgSpec& a : specs) {
    memory user(a.md, engine, DNNL_MEMORY_NONE), arg = user;
    const memory::desc want = pd.query_md(dnnl::query::exec_arg_md, a.id);
    if (!(want == a.md)) {  // the primitive's own layout, and a reorder to or from it
      arg = memory(want, engine);
      const memory& from = a.input ? user : arg;
      const memory& to = a.input ? arg : user;
      const dnnl::reorder::primitive_desc rpd(engine, from.get_desc(), engine, to.get_desc(), attr);
      (a.input ? pre : post)
          .push_back({dnnl::reorder(rpd),
                      rpd.scratchpad_desc(),
                      {},
                      {{DNNL_ARG_FROM, from.get()}, {DNNL_ARG_TO, to.get()}}});
      c->held.push_back(arg);
    }
    c->user.push_back(user);
    conv.args.push_back({a.id, arg.get()});
  }
  c->steps = std::move(pre);
  c->steps.push_back(std::move(conv));
  for (Step& s : post) c->steps.push_back(std::move(s));
  memory::dim bytes = 64;
  for (const Step& s : c->steps) bytes = std::max<memory::dim>(bytes, s.scratchpad_desc.get_size());
  c->scratchpad = memory(memory::desc({bytes}, Dt::u8, Tag::a), engine);
  for (Step& s : c->steps) {
    s.scratchpad = memory(s.scratchpad_desc, engine, c->scratchpad.get_data_handle());
    s.args.push_back({DNNL_ARG_SCRATCHPAD, s.scratchpad.get()});
  }
  return c;
}

std::unique_ptr<Conv> Build(const ConvShape& s, int n, Kind kind, bool bias,
                            const dnnl::engine& engine) {
  const memory::dims strides{s.stride, s.stride}, pad{s.padding, s.padding};
  const memory::desc x({n, s.in_c, s.in_h, s.in_w}, Dt::f32, Tag::nchw);
  const memory::desc z({n, s.out_c, s.out_h(), s.out_w()}, Dt::f32, Tag::nchw);
  const memory::dims w_dims{s.out_c, s.in_c, s.kernel_h, s.kernel_w};
  const memory::dim oc = s.out_c, kw = s.kernel_w, khw = int64_t(s.kernel_h) * s.kernel_w;
  const memory::desc w(w_dims, Dt::f32, memory::dims{1, khw * oc, kw * oc, oc});
  const memory::desc w_any(w_dims, Dt::f32, Tag::any);
  const memory::desc b = bias ? memory::desc({oc}, Dt::f32, Tag::x) : memory::desc();
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  using Fwd = dnnl::convolution_forward;
  const auto direct = dnnl::algorithm::convolution_direct;
  // Activations in the layout the primitive picks (nChw16c: jit:avx512_core, 1.5-4x the
  // speed of gemm:jit on NCHW for LeNet's shapes, reorders included), except for the
  // backward-data of few input channels, whose diff_src would be padded to 16 channels
  // (in_c 1: 4x slower, in_c 3: 1.4x slower than gemm:jit on NCHW; in_c 6: 2x faster).
  const bool blocked = kind != Kind::kBackwardData || s.in_c >= 4;
  const memory::desc xa = blocked ? memory::desc(x.dims(), Dt::f32, Tag::any) : x;
  const memory::desc za = blocked ? memory::desc(z.dims(), Dt::f32, Tag::any) : z;
  const Fwd::primitive_desc fwd(
      Fwd::desc(dnnl::prop_kind::forward_training, direct, xa, w_any, b, za, strides, pad, pad),
      attr, engine);
  std::vector<ArgSpec> specs;
  switch (kind) {
    case Kind::kForward:
      specs = {{DNNL_ARG_SRC, true, x}, {DNNL_ARG_WEIGHTS, true, w}, {DNNL_ARG_DST, false, z}};
      if (bias) specs.push_back({DNNL_ARG_BIAS, true, b});
      return Make(fwd, specs, attr, engine);
    case Kind::kBackwardData: {
      using Bwd = dnnl::convolution_backward_data;
      const Bwd::primitive_desc pd(Bwd::desc(direct, xa, w_any, za, strides, pad, pad), attr,
                                   engine, fwd);
      specs = {
          {DNNL_ARG_DIFF_DST, true, z}, {DNNL_ARG_WEIGHTS, true, w}, {DNNL_ARG_DIFF_SRC, false, x}};
      return Make(pd, specs, attr, engine);
    }
    case Kind::kBackwardWeights: {
      using Bwd = dnnl::convolution_backward_weights;
      const Bwd::primitive_desc pd(Bwd::desc(direct, xa, w_any, b, za, strides, pad, pad), attr,
                                   engine, fwd);
      specs = {
          {DNNL_ARG_SRC, true, x}, {DNNL_ARG_DIFF_DST, true, z}, {DNNL_ARG_DIFF_WEIGHTS, false, w}};
      if (bias) specs.push_back({DNNL_ARG_DIFF_BIAS, false, b});
      return Make(pd, specs, attr, engine);
    }
  }
  std::abort();
}

// This thread's cached convolution (built on its first call), or null if oneDNN cannot build
// it (a shape it refuses, or memory it cannot get): the caller takes the reference path.
Conv* Get(const ConvShape& s, int n, Kind kind, bool bias) {
  ApplyGemmThreads();  // before building: oneDNN picks its kernels for the thread count
  Context& context = ThreadContext();
  const std::array<int, 12> key{s.in_c,   s.in_h,    s.in_w, s.out_c,   s.kernel_h, s.kernel_w,
                                s.stride, s.padding, n,      int(kind), int(bias),  GemmThreads()};
  auto it = context.cache.find(key);
  if (it == context.cache.end()) {
    if (context.cache.size() >= kMaxCachedConvs) {
      auto oldest = context.cache.begin();
      for (auto e = context.cache.begin(); e != context.cache.end(); ++e)
        if (e->second->last_use < oldest->second->last_use) oldest = e;
      context.cache.erase(oldest);
    }
    std::unique_ptr<Conv> built;
    try {
      built = Build(s, n, kind, bias, context.engine);
    } catch (const dnnl::error&) {
      return nullptr;
    } catch (const std::bad_alloc&) {
      return nullptr;
    }
    it = context.cache.emplace(key, std::move(built)).first;
  }
  it->second->last_use = ++context.clock;
  return it->second.get();
}

// Binds the caller's buffers (in the order of the cached ArgSpecs) and runs the steps.
void Run(Conv& c, std::initializer_list<const float*> buffers) {
  auto buffer = buffers.begin();
  for (memory& m : c.user) m.set_data_handle(const_cast<float*>(*buffer++));
  dnnl::stream& stream = ThreadContext().stream;
  for (Step& s : c.steps)
    if (dnnl_primitive_execute(s.primitive.get(), stream.get(), int(s.args.size()),
                               s.args.data()) != dnnl_success)
      std::abort();  // only bad arguments fail, and the shapes were checked when built
  stream.wait();
}

// oneDNN takes the buffers as they are: a block with an outer stride goes to the reference.
bool Dense(ConstMatrixRef m) { return m.outerStride() == m.rows() && m.size() > 0; }

}  // namespace

void ConvForward(const ConvShape& s, ConstMatrixRef x, ConstMatrixRef w, const Vector* b,
                 MatrixRef z) {
  if (Dense(x) && Dense(w) && Dense(z)) {
    CheckShapes(s, x.rows(), z.rows(), w.rows(), w.cols());
    assert(x.cols() == z.cols() && (!b || b->size() == s.out_c));
    if (Conv* c = Get(s, int(x.cols()), Kind::kForward, b != nullptr)) {
      Run(*c, {x.data(), w.data(), z.data(), b ? b->data() : nullptr});
      return;
    }
  }
  ConvForwardReference(s, x, w, b, z);
}

void ConvBackwardData(const ConvShape& s, ConstMatrixRef dz, ConstMatrixRef m, MatrixRef dx) {
  if (Dense(dz) && Dense(m) && Dense(dx)) {
    CheckShapes(s, dx.rows(), dz.rows(), m.rows(), m.cols());
    assert(dx.cols() == dz.cols());
    if (Conv* c = Get(s, int(dz.cols()), Kind::kBackwardData, false)) {
      Run(*c, {dz.data(), m.data(), dx.data()});
      return;
    }
  }
  ConvBackwardDataReference(s, dz, m, dx);
}

void ConvBackwardWeights(const ConvShape& s, ConstMatrixRef x, ConstMatrixRef dz, MatrixRef dw,
                         Vector* db) {
  if (Dense(x) && Dense(dz) && Dense(dw)) {
    CheckShapes(s, x.rows(), dz.rows(), dw.rows(), dw.cols());
    assert(x.cols() == dz.cols());
    if (db) db->resize(s.out_c);
    if (Conv* c = Get(s, int(x.cols()), Kind::kBackwardWeights, db != nullptr)) {
      Run(*c, {x.data(), dz.data(), dw.data(), db ? db->data() : nullptr});
      return;
    }
  }
  ConvBackwardWeightsReference(s, x, dz, dw, db);
}

const char* ConvBackend() { return "onednn"; }
size_t CachedConvolutions() { return ThreadContext().cache.size(); }

std::string ConvForwardImplementation(const ConvShape& s, int n) {
  const Conv* c = Get(s, n, Kind::kForward, true);
  return c ? c->implementation : "im2col+eigen (oneDNN refused the shape)";
}

#else  // no oneDNN: the reference is the implementation

void ConvForward(const ConvShape& s, ConstMatrixRef x, ConstMatrixRef w, const Vector* b,
                 MatrixRef z) {
  ConvForwardReference(s, x, w, b, z);
}
void ConvBackwardData(const ConvShape& s, ConstMatrixRef dz, ConstMatrixRef m, MatrixRef dx) {
  ConvBackwardDataReference(s, dz, m, dx);
}
void ConvBackwardWeights(const ConvShape& s, ConstMatrixRef x, ConstMatrixRef dz, MatrixRef dw,
                         Vector* db) {
  ConvBackwardWeightsReference(s, x, dz, dw, db);
}
const char* ConvBackend() { return "eigen"; }
size_t CachedConvolutions() { return 0; }
std::string ConvForwardImplementation(const ConvShape&, int) { return "im2col+eigen"; }

#endif  // ALIGND_HAVE_ONEDNN

// Pooling, one window at a time. Max: the first largest entry of the window in row-major
// order (strict >), the same one forward and backward.
namespace {

template <typename F>
void ForEachWindow(const PoolShape& s, F&& f) {
  for (int c = 0; c < s.c; ++c)
    for (int y = 0; y < s.out_h(); ++y)
      for (int x = 0; x < s.out_w(); ++x)
        f((int64_t(c) * s.out_h() + y) * s.out_w() + x,
          (int64_t(c) * s.in_h + y * s.stride) * s.in_w + x * s.stride);
}

int64_t ArgMax(const PoolShape& s, const float* x) {
  int64_t best = 0;
  for (int r = 0; r < s.window; ++r)
    for (int c = 0; c < s.window; ++c)
      if (x[int64_t(r) * s.in_w + c] > x[best]) best = int64_t(r) * s.in_w + c;
  return best;
}

// Max pooling's forward over 2x2 windows with stride 2 (LeNet's), without the general
// loops: the value of the general path's entry (the first largest in row-major order, strict
// >) by the same comparisons in the same order, so bit for bit the same (NaN and signed zeros
// included), as selects the compiler turns into vmaxss (5-6x the general path's speed at
// LeNet's shapes). The backward's 2x2 version is below.
inline float Max2x2(float a, float b, float c, float d) {
  float v = a;
  v = b > v ? b : v;
  v = c > v ? c : v;
  return d > v ? d : v;
}

bool Is2x2Max(const PoolShape& s) { return s.max && s.window == 2 && s.stride == 2; }

void MaxPool2x2Forward(const PoolShape& s, const float* in, float* out) {
  const int oh = s.out_h(), ow = s.out_w();
  for (int c = 0; c < s.c; ++c)
    for (int y = 0; y < oh; ++y) {
      const float* r0 = in + (int64_t(c) * s.in_h + 2 * y) * s.in_w;
      const float* r1 = r0 + s.in_w;
      float* o = out + (int64_t(c) * oh + y) * ow;
      for (int x = 0; x < ow; ++x)
        o[x] = Max2x2(r0[2 * x], r0[2 * x + 1], r1[2 * x], r1[2 * x + 1]);
    }
}

// Max pooling's backward over 2x2 windows with stride 2: each input entry written once (the
// window's gradient at the general path's entry, 0 elsewhere; rows and columns no window
// covers, 0), instead of zeroing dx and scattering into it. The entry is chosen by the general
// path's comparisons in its order, and the gradient is written as 0 + g, as the general path
// adds it to a zero: bit for bit the same, -0 and NaN included.
void MaxPool2x2Backward(const PoolShape& s, const float* in, const float* g, float* out) {
  const int oh = s.out_h(), ow = s.out_w(), w = s.in_w;
  for (int c = 0; c < s.c; ++c) {
    for (int y = 0; y < oh; ++y) {
      const float* r0 = in + (int64_t(c) * s.in_h + 2 * y) * w;
      const float* r1 = r0 + w;
      float* o0 = out + (int64_t(c) * s.in_h + 2 * y) * w;
      float* o1 = o0 + w;
      const float* gy = g + (int64_t(c) * oh + y) * ow;
      for (int x = 0; x < ow; ++x) {
        // Masks, not branches: a branch per comparison mispredicts on real data (written with
        // selects, the compiler still branched, and this ran at a third of the general
        // path's speed at batch 64). A mask is all ones where the chain moved to that entry.
        const float a = r0[2 * x], b = r0[2 * x + 1], cc = r1[2 * x], d = r1[2 * x + 1];
        const uint32_t to_b = 0u - uint32_t(b > a);
        const float v1 = b > a ? b : a;
        const uint32_t to_c = 0u - uint32_t(cc > v1);
        const float v2 = cc > v1 ? cc : v1;
        const uint32_t to_d = 0u - uint32_t(d > v2);
        const uint32_t gv = absl::bit_cast<uint32_t>(0.0f + gy[x]);
        o0[2 * x] = absl::bit_cast<float>(gv & ~(to_b | to_c | to_d));
        o0[2 * x + 1] = absl::bit_cast<float>(gv & to_b & ~(to_c | to_d));
        o1[2 * x] = absl::bit_cast<float>(gv & to_c & ~to_d);
        o1[2 * x + 1] = absl::bit_cast<float>(gv & to_d);
      }
      for (int x = 2 * ow; x < w; ++x) o0[x] = o1[x] = 0.0f;
    }
    for (int y = 2 * oh; y < s.in_h; ++y) std::fill_n(out + (int64_t(c) * s.in_h + y) * w, w, 0.0f);
  }
}

}  // namespace

void PoolForward(const PoolShape& s, ConstMatrixRef x, MatrixRef y) {
  assert(x.rows() == s.in_size() && y.rows() == s.out_size() && x.cols() == y.cols());
  if (Is2x2Max(s)) {
    for (Eigen::Index j = 0; j < x.cols(); ++j)
      MaxPool2x2Forward(s, x.col(j).data(), y.col(j).data());
    return;
  }
  const float scale = 1.0f / float(s.window * s.window);
  for (Eigen::Index j = 0; j < x.cols(); ++j) {
    const float* in = x.col(j).data();
    float* out = y.col(j).data();
    ForEachWindow(s, [&](int64_t o, int64_t i) {
      if (s.max) {
        out[o] = in[i + ArgMax(s, in + i)];
      } else {
        float sum = 0.0f;
        for (int r = 0; r < s.window; ++r)
          for (int c = 0; c < s.window; ++c) sum += in[i + int64_t(r) * s.in_w + c];
        out[o] = sum * scale;
      }
    });
  }
}

void PoolBackward(const PoolShape& s, ConstMatrixRef x, ConstMatrixRef dy, MatrixRef dx) {
  assert(x.rows() == s.in_size() && dy.rows() == s.out_size() && dx.rows() == s.in_size());
  assert(x.cols() == dy.cols() && dx.cols() == dy.cols());
  if (Is2x2Max(s)) {
    for (Eigen::Index j = 0; j < dy.cols(); ++j)
      MaxPool2x2Backward(s, x.col(j).data(), dy.col(j).data(), dx.col(j).data());
    return;
  }
  const float scale = 1.0f / float(s.window * s.window);
  for (Eigen::Index j = 0; j < dy.cols(); ++j) {
    const float* in = x.col(j).data();
    const float* g = dy.col(j).data();
    float* out = dx.col(j).data();
    dx.col(j).setZero();
    ForEachWindow(s, [&](int64_t o, int64_t i) {
      if (s.max) {
        out[i + ArgMax(s, in + i)] += g[o];
      } else {
        for (int r = 0; r < s.window; ++r)
          for (int c = 0; c < s.window; ++c) out[i + int64_t(r) * s.in_w + c] += g[o] * scale;
      }
    });
  }
}

}  // namespace alignd::core
