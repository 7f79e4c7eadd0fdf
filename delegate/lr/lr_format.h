// The layerwise representation (LR) that the converter stores in a .tflite
// file's metadata table under the name kLrMetadataName, and its parser.
//
// Version 3 is a size-prefixed FlatBuffer of schema/cocopie_lr.fbs (root
// LayerwiseRepresentation, identifier "CPLR"; C++ and Python code generated
// from it at build time). Per pattern-pruned convolution a Layer table holds:
//   op_index            operator index in subgraph 0 == node index
//   filter_tensor       tensor index of the CONV_2D filter
//   out_channels, in_channels, kernel_h, kernel_w
//   entries_per_pattern cells every pattern keeps
//   out_group           consecutive output channels sharing one row of
//                       kernel_pattern (1 = every channel its own)
//   pattern_masks       u32 per pattern, bit r*kernel_w+c = cell kept
//   kernel_pattern      u8 per [group][in], row-major, kRemovedKernel =
//                       connectivity-pruned
//   tuning              the kernel tuning record (kernel_tuning.h), optional
// Co-design pruning gives groups of output channels one pattern per input
// channel, so out_group > 1 keeps the table a small fraction of the weights.
// The parser runs FlatBuffers' verifier (every offset, vector and string
// inside the buffer) and then checks every count and value before trusting
// it: a malformed LR is an error, never an out-of-range access. LRs of
// version 2 and before (a hand-made record starting with "CPLR") are refused
// with a message asking to convert the model again.
#ifndef COCOPIE_DELEGATE_LR_LR_FORMAT_H_
#define COCOPIE_DELEGATE_LR_LR_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cocopie {

inline constexpr char kLrMetadataName[] = "cocopie_lr";
inline constexpr uint32_t kLrVersion = 4;
// Version 3 is version 4 without the compact kernel_kept form; still read.
inline constexpr uint32_t kOldestReadLrVersion = 3;
inline constexpr uint8_t kRemovedKernel = 0xFF;
// Upper bounds that keep a hostile file from asking for absurd allocations.
// Counts are also checked against the buffer's size before anything is
// allocated for them: an LR cannot describe more than it holds.
inline constexpr uint32_t kMaxLrLayers = 1u << 16;
// Bytes of the smallest valid layer: its offset in the layers vector, its
// table's vtable offset, the fields that cannot be 0 (channel counts, kernel
// size, entries) and the offsets of its two vectors.
inline constexpr size_t kMinLrLayerBytes = 4 + 4 + 4 + 4 + 2 + 2 + 2 + 4 + 4;
inline constexpr uint32_t kMaxChannels = 1u << 16;
inline constexpr uint32_t kMaxKernelCells = 32;  // pattern masks are 32-bit

struct LrLayer {
  uint32_t op_index = 0;
  uint32_t filter_tensor = 0;
  int out_channels = 0;
  int kernel_h = 0;
  int kernel_w = 0;
  int in_channels = 0;
  int entries_per_pattern = 0;
  int out_group = 1;
  std::vector<uint32_t> pattern_masks;
  // The layer's kernel tuning record as a lone buffer (kernel_tuning.h),
  // unchecked until used; empty = none.
  std::vector<uint8_t> tuning;
  std::vector<uint8_t> kernel_pattern;  // [out / out_group][in]

  uint8_t PatternOf(int out_channel, int in_channel) const {
    return kernel_pattern[static_cast<size_t>(out_channel / out_group) *
                              in_channels +
                          in_channel];
  }
};

struct LayerwiseRepresentation {
  uint32_t version = 0;
  std::vector<LrLayer> layers;

  // The layer describing operator `op_index`, or nullptr: a binary search
  // once Reindex() has seen the current layers, a scan otherwise.
  const LrLayer* FindByOp(int op_index) const;

  // Sorts an index of the layers by operator (the parser calls it); false,
  // leaving no index, when two layers describe the same operator, with
  // *duplicate set to it. Call it again after changing the layers' operators
  // (layers added since are found by a scan until then).
  bool Reindex(uint32_t* duplicate = nullptr);

 private:
  std::vector<std::pair<uint32_t, uint32_t>> by_op_;  // (op_index, layer)
};

// Parses and validates `size` bytes at `data`. On failure returns false and
// sets *error to a one-line explanation; *out is then unspecified.
bool ParseLayerwiseRepresentation(const uint8_t* data, size_t size,
                                  LayerwiseRepresentation* out,
                                  std::string* error);

// The kernel tuning record as the schema stores it (table TuningRecord): an
// LR layer carries one, and a lone record is a size-prefixed FlatBuffer with
// the identifier kTuningRecordIdentifier. lr/tuning_record.cc moves entries
// in and out of the schema without judging them; the rules on their values,
// and what a valid entry means to the kernels, are tuning/kernel_tuning.h's.
inline constexpr char kTuningRecordIdentifier[] = "CPTR";
inline constexpr int kMaxTuningEntries = 16;
// A target name is shorter than this (it once was a NUL-padded field).
inline constexpr size_t kTuningTargetBytes = 16;

// One entry's fields as the schema stores them, before any rule is applied:
// what the LR carries and the delegate then judges.
struct RawTuningEntry {
  std::string target;
  uint8_t kernel = 0;  // KernelKind
  uint8_t channel_block = 0;
  uint8_t tile_pixels = 0;
  uint8_t tiles_per_task = 0;
  uint16_t chunk_kib = 0;
  uint8_t loop_order = 0;  // BlockLoopOrder
  uint8_t threads = 0;
};

// A lone record buffer holding `raw` as given (no rule is applied).
std::vector<uint8_t> PackTuningRecord(const std::vector<RawTuningEntry>& raw);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_LR_LR_FORMAT_H_
