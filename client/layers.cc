// File: client/layers.cc
#include "client/layers.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace alignd::client {
namespace {

bool Positive(absl::string_view s, int32_t* v) { return absl::SimpleAtoi(s, v) && *v >= 1; }

// "6x5x5" -> {6, 5, 5}: exactly n positive numbers separated by 'x'.
bool Dims(absl::string_view s, size_t n, std::vector<int32_t>* out) {
  out->clear();
  for (absl::string_view part : absl::StrSplit(s, 'x')) {
    int32_t v = 0;
    if (!Positive(part, &v)) return false;
    out->push_back(v);
  }
  return out->size() == n;
}

}  // namespace

absl::StatusOr<std::vector<v1::LayerSpec>> ParseLayers(const std::string& text,
                                                       const std::string& flag) {
  std::vector<v1::LayerSpec> out;
  const std::vector<std::string> items = absl::StrSplit(text, ',');
  for (size_t k = 0; k < items.size(); ++k) {
    const std::string item(absl::StripAsciiWhitespace(items[k]));
    const std::string lower = absl::AsciiStrToLower(item);
    auto bad = [&](absl::string_view expected) {
      return absl::InvalidArgumentError(absl::StrCat(flag, " item ", k + 1, " '", item,
                                                     "': expected ", expected,
                                                     " (e.g. conv:6x5x5,pool:2,dense:10)"));
    };
    if (lower.empty()) return bad("a layer, not nothing");
    std::vector<std::string> parts = absl::StrSplit(lower, ':');
    const std::string& kind = parts[0];
    v1::LayerSpec l;
    // The options after the main argument: :sN (stride), :pN (padding, conv only).
    auto options = [&](bool padding, absl::string_view expected) -> absl::Status {
      for (size_t i = 2; i < parts.size(); ++i) {
        int32_t v = 0;
        const std::string& o = parts[i];
        if (o.size() > 1 && o[0] == 's' && Positive(absl::string_view(o).substr(1), &v)) {
          l.set_stride(v);
        } else if (padding && o.size() > 1 && o[0] == 'p' &&
                   absl::SimpleAtoi(absl::string_view(o).substr(1), &v) && v >= 0) {
          l.set_padding(v);
        } else {
          return bad(expected);
        }
      }
      return absl::OkStatus();
    };
    std::vector<int32_t> d;
    if (kind == "conv") {
      constexpr absl::string_view kConv = "conv:CxKHxKW[:sS][:pP]";
      if (parts.size() < 2 || !Dims(parts[1], 3, &d)) return bad("conv:CxKHxKW");
      l.set_kind(v1::LAYER_KIND_CONV);
      l.set_units(d[0]);
      l.set_kernel_h(d[1]);
      l.set_kernel_w(d[2]);
      if (absl::Status s = options(true, kConv); !s.ok()) return s;
    } else if (kind == "pool" || kind == "maxpool" || kind == "avgpool") {
      const std::string expected = absl::StrCat(kind, ":W[:sS] (a W x W window)");
      if (parts.size() < 2 || !Dims(parts[1], 1, &d)) return bad(expected);
      l.set_kind(kind == "avgpool" ? v1::LAYER_KIND_AVG_POOL : v1::LAYER_KIND_MAX_POOL);
      l.set_kernel_h(d[0]);
      if (absl::Status s = options(false, expected); !s.ok()) return s;
    } else if (kind == "dense") {
      if (parts.size() != 2 || !Dims(parts[1], 1, &d)) return bad("dense:N (N units)");
      l.set_kind(v1::LAYER_KIND_DENSE);
      l.set_units(d[0]);
    } else if (kind == "flatten") {
      if (parts.size() != 1) return bad("flatten (no arguments)");
      l.set_kind(v1::LAYER_KIND_FLATTEN);
    } else {
      return bad("conv:, pool:, maxpool:, avgpool:, dense: or flatten");
    }
    out.push_back(l);
  }
  return out;
}

absl::StatusOr<v1::ImageShape> ParseImageShape(const std::string& text, const std::string& flag) {
  std::vector<int32_t> d;
  v1::ImageShape s;
  const std::string t = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (Dims(t, 3, &d)) {
    s.set_channels(d[0]);
    s.set_height(d[1]);
    s.set_width(d[2]);
  } else if (Dims(t, 2, &d)) {
    s.set_channels(1);
    s.set_height(d[0]);
    s.set_width(d[1]);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " '", text, "': expected CxHxW (channels x height x width, e.g. 1x32x32) or HxW"));
  }
  return s;
}

std::string FormatLayers(const google::protobuf::RepeatedPtrField<v1::LayerSpec>& layers) {
  std::vector<std::string> items;
  for (const v1::LayerSpec& l : layers) {
    std::string item;
    switch (l.kind()) {
      case v1::LAYER_KIND_CONV:
        item = absl::StrCat("conv:", l.units(), "x", l.kernel_h(), "x",
                            l.kernel_w() == 0 ? l.kernel_h() : l.kernel_w());
        if (l.stride() > 1) absl::StrAppend(&item, ":s", l.stride());
        if (l.padding() > 0) absl::StrAppend(&item, ":p", l.padding());
        break;
      case v1::LAYER_KIND_MAX_POOL:
      case v1::LAYER_KIND_AVG_POOL:
        item =
            absl::StrCat(l.kind() == v1::LAYER_KIND_MAX_POOL ? "pool:" : "avgpool:", l.kernel_h());
        if (l.stride() != 0 && l.stride() != l.kernel_h()) absl::StrAppend(&item, ":s", l.stride());
        break;
      case v1::LAYER_KIND_FLATTEN:
        item = "flatten";
        break;
      default:
        item = absl::StrCat("dense:", l.units());
        break;
    }
    items.push_back(item);
  }
  return absl::StrJoin(items, ",");
}

std::string FormatImageShape(const v1::ImageShape& s) {
  return absl::StrCat(s.channels(), "x", s.height(), "x", s.width());
}

}  // namespace alignd::client
