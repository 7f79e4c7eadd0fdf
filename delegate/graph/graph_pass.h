// The delegate's passes over the whole execution plan, apart from deciding
// node by node (node_handlers.h): undoing an earlier application, finding the
// DENSIFY nodes that feed a filter, and the simple ops that join partitions.
#ifndef COCOPIE_DELEGATE_GRAPH_GRAPH_PASS_H_
#define COCOPIE_DELEGATE_GRAPH_GRAPH_PASS_H_

#include <map>
#include <vector>

#include "delegate/abi/tflite_abi.h"
#include "delegate/lr/lr_format.h"

namespace cocopie {

// A runtime may undo delegation and call Prepare again on the original graph
// (tflite-runtime 2.14 does after an input resize); this puts back what the
// earlier application changed (tensor ownership, emptied filter-feed outputs;
// a packed filter's shape comes from its layer in `lr`).
TfLiteStatus UndoEarlierDelegation(TfLiteContext* context, TfLiteDelegate* delegate,
                                   const TfLiteIntArray* plan,
                                   const LayerwiseRepresentation& lr);

// A node that writes a convolution's filter from a constant: DENSIFY of a
// sparse float32 constant (converter/compact.py), or the delegate-only
// CocopiePackedFilter of a uint8 PackedValues constant (converter/packed.py).
struct FilterFeed {
  int feed_node = -1;
  int sparse_tensor = -1;  // the constant it reads
  bool packed = false;     // CocopiePackedFilter: only the delegate can run it
};

// Whether a node of this registration is a filter feed of either kind.
bool IsFilterFeedNode(const TfLiteRegistration& registration);

// Sets *feeds to the filter feeds of `plan` whose output has exactly one
// reader, by that output tensor: such a node is claimed with its
// convolution, which reads the constant itself, so the dense filter is never
// materialized. Fails (with a report) on a malformed sparse constant, which
// the runtime's own DENSIFY would read out of bounds.
TfLiteStatus FindFilterFeeds(TfLiteContext* context, const TfLiteIntArray* plan,
                             std::map<int, FilterFeed>* feeds);

// The nodes of `plan` of a kind that only joins partitions (ADD, MAX_POOL_2D,
// PAD: node_handlers.h) that pass their check and lie on a path of such nodes
// from one claimed node to another: claiming them joins what would otherwise
// be separate partitions, with the runtime's kernels (and thread pool)
// between them. One that only leads away from the delegate's nodes (say the
// last ADD before a classifier head) is left to the runtime.
std::vector<int> ConnectingSimpleOps(TfLiteContext* context, const TfLiteIntArray* plan,
                                     const std::vector<int>& claimed);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_GRAPH_GRAPH_PASS_H_
