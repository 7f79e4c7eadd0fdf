// f32-spmm-rows: a FULLY_CONNECTED (y = W x + b, then the fused activation)
// whose weights keep some of their (out, in) entries, with work and memory
// traffic proportional to the kept weights. At batch 1 a fully connected
// layer only streams its weights (each is used once), so reading 28 % of
// them is what makes it faster than the dense kernels.
//
// Packing: output rows in groups of R (8, 4 or 1, whichever streams the
// fewest bytes: block-pruned rows share their kept columns and group without
// padding, rows pruned one weight at a time do not); per group the union of
// its rows' kept input columns and a panel of R weights (zero-padded) per
// column, in column order. A task is a run of groups; each
// group's panel is read once per image.
#ifndef COCOPIE_DELEGATE_KERNELS_SPARSE_FC_H_
#define COCOPIE_DELEGATE_KERNELS_SPARSE_FC_H_

#include <cstdint>
#include <vector>

typedef struct pthreadpool* pthreadpool_t;

namespace cocopie {

struct PackedSparseFc {
  int out = 0;
  int in = 0;
  int rows_per_group = 1;             // R
  std::vector<int64_t> group_start;   // groups + 1 offsets into `columns`
  std::vector<int32_t> columns;       // kept input columns, per group
  std::vector<float> panel;           // R weights per entry of `columns`
  std::vector<float> bias;            // out values (zeros without a bias)
  float act_min = 0.0f;
  float act_max = 0.0f;
};

// Packs `weights` (out x in, row-major) keeping the entries `kept` marks
// (out x in, 1 = kept; a kept weight may be zero). `bias` may be null.
PackedSparseFc PackSparseFc(int out, int in, const float* weights,
                            const std::vector<uint8_t>& kept, const float* bias,
                            float act_min, float act_max);

// output[b * out + o] for b < batch, from input[b * in + i]. `pool` may be
// null (one thread).
void SparseFullyConnected(const PackedSparseFc& w, const float* input, int batch, float* output,
                          pthreadpool_t pool);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_KERNELS_SPARSE_FC_H_
