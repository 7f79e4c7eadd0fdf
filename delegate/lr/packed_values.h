// The delegate-only filter storage (converter/packed.py): a CUSTOM
// "CocopiePackedFilter" operator writes a CONV_2D's filter from a uint8
// constant holding a PackedValues buffer (schema/cocopie_lr.fbs), the kept
// weights of the LR layer that names the filter, in [out][in][kh][kw] order.
// Stock runtimes do not know the operator; the delegate claims it with its
// convolution and expands the filter once, at init.
#ifndef COCOPIE_DELEGATE_LR_PACKED_VALUES_H_
#define COCOPIE_DELEGATE_LR_PACKED_VALUES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "delegate/lr/lr_format.h"

namespace cocopie {

inline constexpr char kPackedFilterOpName[] = "CocopiePackedFilter";
inline constexpr char kPackedValuesIdentifier[] = "CPPV";

// Decodes the PackedValues buffer of `size` bytes at `data` (any alignment)
// into *values. False with *error set when it is malformed: frame, verifier,
// a top-byte table that is not 1..256 ascending distinct bytes, ids of the
// wrong width or out of range, or a length that does not match `count`.
bool ParsePackedValues(const uint8_t* data, size_t size, std::vector<float>* values,
                       std::string* error);

// Scatters `values` (LR order) into the (out, kh, kw, in) filter that
// `layer` describes, zeros elsewhere. False with *error set when their
// number differs from the weights the layer keeps.
bool ExpandPackedFilter(const LrLayer& layer, const std::vector<float>& values,
                        std::vector<float>* filter_ohwi, std::string* error);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_LR_PACKED_VALUES_H_
