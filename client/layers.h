// File: client/layers.h
// -----------------------------------------------------------------------------
// alignctl's compact network grammar (--layers, --input-shape) to and from the wire's
// LayerSpec and ImageShape. Items are comma-separated:
//   conv:CxKHxKW[:sS][:pP]   C output channels, a KH x KW kernel, stride S (1), padding P (0)
//   pool:W | maxpool:W[:sS]  max pooling over W x W windows, stride S (default W)
//   avgpool:W[:sS]           average pooling
//   dense:N                  N units
//   flatten
// e.g. LeNet-5: conv:6x5x5,pool:2,conv:16x5x5,pool:2,dense:120,dense:84,dense:10. An input
// shape is CxHxW (or HxW: one channel).
#ifndef ALIGND_CLIENT_LAYERS_H_
#define ALIGND_CLIENT_LAYERS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "alignd/v1/config.pb.h"

namespace alignd::client {

// InvalidArgument naming the item ("--layers item 3 'conv:6x5': expected conv:CxKHxKW").
// `flag` names the source in messages ("--layers").
absl::StatusOr<std::vector<v1::LayerSpec>> ParseLayers(const std::string& text,
                                                       const std::string& flag = "--layers");
// "1x32x32" or "32x32"; InvalidArgument naming `flag`.
absl::StatusOr<v1::ImageShape> ParseImageShape(const std::string& text,
                                               const std::string& flag = "--input-shape");
// The grammar back: "conv:6x5x5,pool:2,dense:10" (what ParseLayers reads).
std::string FormatLayers(const google::protobuf::RepeatedPtrField<v1::LayerSpec>& layers);
// "1x32x32".
std::string FormatImageShape(const v1::ImageShape& s);

}  // namespace alignd::client

#endif  // ALIGND_CLIENT_LAYERS_H_
