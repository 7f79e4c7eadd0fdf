// The kernel that replaces one connected group of claimed nodes: (depthwise) convs,
// their DENSIFY inputs, and the ADD / MAX_POOL_2D / PAD between them. Each
// node becomes the PartitionStep its handler creates (node_handlers.h).
#ifndef COCOPIE_DELEGATE_GRAPH_PARTITION_KERNEL_H_
#define COCOPIE_DELEGATE_GRAPH_PARTITION_KERNEL_H_

#include "delegate/abi/tflite_abi.h"

namespace cocopie {

// init/free/prepare/invoke for the runtime; `custom_name` is what
// Interpreter._get_ops_details() shows for our partitions.
TfLiteRegistration PartitionKernelRegistration();

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_GRAPH_PARTITION_KERNEL_H_
