// Per-layer kernel auto-tuning: which SIMD kernel runs a claimed convolution,
// and with which block-kernel tunables (pattern_conv.h, BlockKernelParams).
//
// Where a layer's choice comes from, by priority (delegate option `tuning`):
//   1. the LR: a tuning record stored with the layer (`cocopie tune-kernels`
//      writes it) holding an entry for this CPU's SIMD target; no timing;
//   2. the tuning cache: choices timed earlier on this CPU, keyed by the
//      layer's signature (LayerSignature), the SIMD target, a CPU id and the
//      thread count; in memory, and in the file `tuning_cache` names;
//   3. with tuning=on: timing every candidate on the layer's real geometry,
//      on the delegate's thread pool (best of a few runs), then storing the
//      fastest in the cache;
//   4. otherwise the built-in choice (ChooseKernel).
// tuning=off skips all of it; kernel=rows|reference forces a kernel and is
// never tuned, kernel=block tunes among block variants only.
//
// Tuning record: the schema's TuningRecord table (schema/cocopie_lr.fbs),
// one TuningEntry per SIMD target. Each LR layer holds one as a table; on
// its own (LrLayer::tuning, cache files, the C API's report) it is a
// size-prefixed FlatBuffer with the identifier "CPTR" (kTuningRecordIdentifier).
// Rules on its entries (1..kMaxTuningEntries of them):
//   target          Highway target name ("AVX3", "AVX2", "NEON", ...), 1 to
//                   kTuningTargetBytes - 1 printable ASCII, unique in the record
//   kernel          rows | block | stock (the stock runtime was timed faster
//                   on this layer: the delegate does not claim it, see
//                   StockPreferredByLr in graph/kernel_tuning_search.h)
//   channel_block   block: 8 | 16 | 32; rows, stock: 0
//   tile_pixels     block: 1..32; rows, stock: 0
//   tiles_per_task  block: 1..kMaxTilesPerTask; rows, stock: 0
//   chunk_kib       block: input-channel chunk in KiB, 0 = one chunk; rows, stock: 0
//   loop_order      block: blocks outer | pixels outer; rows, stock: blocks
//   threads         threads it was tuned with (0 = unknown); advisory
// A record that breaks any of these rules is ignored as a whole (one message
// on stderr), as is an entry this CPU cannot run (e.g. a tile size its
// target does not compile): the layer then falls back to the next source.
// Python's codec is cocopie_keras.converter.kernel_tuning.
#ifndef COCOPIE_DELEGATE_TUNING_KERNEL_TUNING_H_
#define COCOPIE_DELEGATE_TUNING_KERNEL_TUNING_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "delegate/kernels/pattern_conv.h"
#include "delegate/lr/lr_format.h"

namespace cocopie {

enum class KernelKind : uint8_t { kRows = 0, kBlock = 1, kStock = 2 };

// One layer's kernel choice.
struct KernelTuning {
  KernelKind kernel = KernelKind::kBlock;
  int channel_block = 0;     // block kernel: packing width (0: preferred)
  BlockKernelParams block;   // block kernel: run-time tunables

  bool operator==(const KernelTuning& o) const {
    return kernel == o.kernel &&
           (kernel != KernelKind::kBlock ||
            (channel_block == o.channel_block && block == o.block));
  }
};

struct TuningRecordEntry {
  std::string target;  // Highway target name
  KernelTuning tuning;
  int threads = 0;
};

// Serializes `entries` (see the rules above). Entries must be valid.
std::vector<uint8_t> EncodeTuningRecord(const std::vector<TuningRecordEntry>& entries);

// The encoded record as lowercase hex (cache files, the C API's report).
std::string TuningRecordHex(const std::vector<TuningRecordEntry>& entries);

// Parses a lone record buffer (verified against the schema), checking every
// rule above; false with *error otherwise.
bool DecodeTuningRecord(const uint8_t* data, size_t size,
                        std::vector<TuningRecordEntry>* entries, std::string* error);

// The rules above applied to entries as stored; false with *error otherwise.
bool CheckTuningRecord(const std::vector<RawTuningEntry>& raw,
                       std::vector<TuningRecordEntry>* entries, std::string* error);

// Shape, strides, dilation, padding and a hash of the kept-tap structure
// (which kernels are kept, with which pattern): everything but the weight
// values that decides a kernel's speed. Batch is left out (images run one
// after another).
std::string LayerSignature(const ConvGeometry& g, const PackedPatternWeights& w);

// This CPU, for cache keys: the SIMD target and the CPU's model name.
std::string CpuIdentity();

// The record encoded as hex, decoded and checked (cache files).
bool DecodeTuningRecordHex(const std::string& hex, std::vector<TuningRecordEntry>* entries,
                           std::string* error);

// Tuned choices by key (signature | CPU | threads), optionally backed by a
// text file (tuning_cache.cc): a header line (kTuningCacheHeader), then one
// line per choice, "<key>\t<record hex>", the value a one-entry tuning
// record; a later line for a key replaces an earlier one. A cache of an
// older release (kTuningCacheV1Header) counts as empty and is rewritten.
//
// The path is the user's, so the file is handled with care: it is never
// followed through a symbolic link, never opened unless it is a regular file
// (a FIFO, a device, a directory is refused without being opened), read up
// to kMaxTuningCacheBytes, and never written unless it is a tuning cache (or
// empty). Any refusal is one message, after which the choices stay in memory
// only. Writers, in this process or others, take flock() on the file: a new
// entry is appended under the lock (so entries other processes append, even
// without the lock, are kept); a new file is written whole to a private
// temporary file beside it (mkstemp) and linked into place, and a file with
// unreadable lines or mostly superseded entries is compacted the same way
// and renamed over the old one. Only that temporary file, removed at once,
// is ever written beside the cache.
inline constexpr char kTuningCacheHeader[] = "# cocopie kernel tuning cache v2";
// Caches written before tuning records followed the LR schema: their entries
// cannot be read, so the file is taken as an empty cache and rewritten.
inline constexpr char kTuningCacheV1Header[] = "# cocopie kernel tuning cache v1";
inline constexpr size_t kMaxTuningCacheBytes = size_t{16} << 20;

class TuningCache {
 public:
  explicit TuningCache(std::string path) : path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  // Loads the file on first use. Messages for problems go to *warnings.
  bool Lookup(const std::string& key, KernelTuning* tuning,
              std::vector<std::string>* warnings);
  void Store(const std::string& key, const KernelTuning& tuning, int threads,
             std::vector<std::string>* warnings);

 private:
  void Load(std::vector<std::string>* warnings);
  // Writes lines_ (with `key` just set) to the file; "" or why it could not.
  std::string Save(const std::string& key);
  // Stops using the file, saying why.
  void GiveUpFile(const std::string& why, std::vector<std::string>* warnings);

  std::string path_;
  bool loaded_ = false;
  bool use_file_ = true;  // false once the file was refused
  std::map<std::string, std::string> lines_;  // key -> record hex
};

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_TUNING_KERNEL_TUNING_H_
