// Fallback for runtimes that cannot hand the delegate the model's metadata:
// the LR is rebuilt from the CONV_2D weights themselves, the way the
// converter does for models pruned by other tools (patterns.py,
// patterns_from_weights). A 3x3 kernel whose non-zero weights fit in 4 cells
// gets a 4-cell pattern that covers them; an all-zero kernel is removed. A
// layer with any kernel keeping more than 4 cells is not pattern-pruned and
// stays with the stock kernels.
//
//   std::string why;
//   if (!ModelMetadataReachable(context, &why)) {
//     LayerwiseRepresentation lr;
//     std::string summary;
//     if (LrFromModelWeights(context, &lr, &summary)) { ...use lr... }
//   }
#ifndef COCOPIE_DELEGATE_GRAPH_LR_FROM_WEIGHTS_H_
#define COCOPIE_DELEGATE_GRAPH_LR_FROM_WEIGHTS_H_

#include <string>

#include "delegate/lr/lr_format.h"
#include "delegate/abi/tflite_abi.h"

namespace cocopie {

// Cells a derived pattern keeps (the converter's default pattern size).
inline constexpr int kDerivedPatternEntries = 4;

// True when context->GetModelMetadata may be called: it is set and points
// into the same loaded library as context->GetExecutionPlan. A runtime older
// than the field allocates a shorter TfLiteContext, so the slot then holds
// whatever the runtime stores after the struct; such a value is not a
// function of the runtime's code and is refused here instead of being
// called. Otherwise *why says what was found.
bool ModelMetadataReachable(const TfLiteContext* context, std::string* why);

// Builds `layer`'s pattern table and per-kernel pattern ids (every field but
// op_index and filter_tensor) from a dense OHWI float filter. Returns false,
// with *why, when some kernel keeps more than `entries` cells or the kernel
// is too large for a 32-bit pattern mask.
bool LrLayerFromFilter(const float* filter_ohwi, int out_channels,
                       int kernel_h, int kernel_w, int in_channels,
                       int entries, LrLayer* layer, std::string* why);

// Replaces *lr with layers derived from every float32 3x3 CONV_2D of the
// execution plan whose constant filter is pattern-pruned. Returns whether
// any layer was derived; *summary counts what was found either way.
bool LrFromModelWeights(TfLiteContext* context, LayerwiseRepresentation* lr,
                        std::string* summary);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_GRAPH_LR_FROM_WEIGHTS_H_
