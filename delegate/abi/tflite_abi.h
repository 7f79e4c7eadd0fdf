// cocopie-keras: the part of the TensorFlow Lite C ABI that the delegate uses.
//
// No package reachable from our build machines ships TFLite's C headers, and
// the Python runtimes export no TfLite* symbols, so the delegate talks to the
// runtime only through the structs below and the function pointers inside
// TfLiteContext. The declarations are written for this project; what is kept
// from upstream is the ABI itself: type names, field names, field order and
// field types, and enum values. Those are what make a struct allocated by the
// runtime readable here, so never reorder, insert or retype a field. Fields
// the delegate does not read are still declared (under their upstream name)
// because they fix the offsets of the fields after them.
//
// Users building inside a TFLite source tree can define
// COCOPIE_USE_UPSTREAM_TFLITE_HEADERS to compile against the real headers.
#ifndef COCOPIE_DELEGATE_ABI_TFLITE_ABI_H_
#define COCOPIE_DELEGATE_ABI_TFLITE_ABI_H_

#ifdef COCOPIE_USE_UPSTREAM_TFLITE_HEADERS
#include "tensorflow/lite/builtin_ops.h"
#include "tensorflow/lite/core/c/builtin_op_data.h"
#include "tensorflow/lite/core/c/common.h"
#else

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- c_api_types.h subset -------------------------------------------------

// Both enums name only the values the delegate uses (numbered as TFLite
// numbers them); the runtime may hold others, which compare unequal to all.
typedef enum TfLiteStatus {
  kTfLiteOk = 0,
  kTfLiteError = 1,
} TfLiteStatus;

// Element types; only float32 is computed by the delegate, the integer types
// are read for PAD's paddings, checked in sparse tensors, and hold packed
// filters (uint8).
typedef enum TfLiteType {
  kTfLiteFloat32 = 1,
  kTfLiteInt32 = 2,
  kTfLiteUInt8 = 3,
  kTfLiteInt64 = 4,
  kTfLiteInt8 = 9,
} TfLiteType;

// Legacy per-tensor quantization (scale, zero point) embedded in TfLiteTensor.
typedef struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

// ---- common.h subset ------------------------------------------------------

struct TfLiteContext;
struct TfLiteDelegate;
struct TfLiteRegistration;
struct TfLiteOpaqueDelegateBuilder;

// Opaque to the delegate; only pointers to them are passed around.
typedef struct TfLiteExternalContext TfLiteExternalContext;
typedef struct TfLiteEvalTensor TfLiteEvalTensor;
typedef struct TfLiteDelegateParams TfLiteDelegateParams;
typedef struct TfLiteRegistrationExternal TfLiteRegistrationExternal;
typedef struct TfLiteAsyncKernel TfLiteAsyncKernel;
typedef int TfLiteExternalContextType;  // an enum upstream; int-sized
typedef int TfLiteBufferHandle;

// Shapes and index lists: a length followed by that many ints.
typedef struct TfLiteIntArray {
  int size;
  int data[];
} TfLiteIntArray;

// Sparse constant tensors (the storage DENSIFY operators read): one
// metadata record per traversal level, dense (a size) or compressed rows
// (segments per parent position, indices of the kept children). The runtime
// widens the file's uint8/uint16 index vectors to these int arrays.
typedef enum TfLiteDimensionType {
  kTfLiteDimDense = 0,
  kTfLiteDimSparseCSR,
} TfLiteDimensionType;

typedef struct TfLiteDimensionMetadata {
  TfLiteDimensionType format;
  int dense_size;
  TfLiteIntArray* array_segments;
  TfLiteIntArray* array_indices;
} TfLiteDimensionMetadata;

typedef struct TfLiteSparsity {
  TfLiteIntArray* traversal_order;
  TfLiteIntArray* block_map;
  TfLiteDimensionMetadata* dim_metadata;
  int dim_metadata_size;
} TfLiteSparsity;

typedef enum TfLiteQuantizationType {
  kTfLiteNoQuantization = 0,
  kTfLiteAffineQuantization = 1,
} TfLiteQuantizationType;

typedef struct TfLiteQuantization {
  TfLiteQuantizationType type;
  void* params;
} TfLiteQuantization;

// Tensor storage is a union of typed pointers upstream; all members are
// pointers, so a union of two of them has the same size and alignment.
typedef union TfLitePtrUnion {
  float* f;
  void* data;
  char* raw;
  const char* raw_const;
} TfLitePtrUnion;

// Where a tensor's memory comes from. Constant weights live in the model
// (kTfLiteMmapRo) or, after some runtime transformations, in kTfLitePersistentRo.
typedef enum TfLiteAllocationType {
  kTfLiteMemNone = 0,
  kTfLiteMmapRo,
  kTfLiteArenaRw,
  kTfLiteArenaRwPersistent,
  kTfLiteDynamic,
  kTfLitePersistentRo,
  kTfLiteCustom,
  kTfLiteVariantObject,
} TfLiteAllocationType;

typedef struct TfLiteTensor {
  TfLiteType type;
  TfLitePtrUnion data;
  TfLiteIntArray* dims;
  TfLiteQuantizationParams params;
  TfLiteAllocationType allocation_type;
  size_t bytes;
  const void* allocation;
  const char* name;
  struct TfLiteDelegate* delegate;
  TfLiteBufferHandle buffer_handle;
  bool data_is_stale;
  bool is_variable;
  TfLiteQuantization quantization;
  TfLiteSparsity* sparsity;
  const TfLiteIntArray* dims_signature;
} TfLiteTensor;

typedef struct TfLiteNode {
  TfLiteIntArray* inputs;
  TfLiteIntArray* outputs;
  TfLiteIntArray* intermediates;
  TfLiteIntArray* temporaries;
  void* user_data;
  void* builtin_data;
  const void* custom_initial_data;
  int custom_initial_data_size;
  struct TfLiteDelegate* delegate;
  bool might_have_side_effect;
} TfLiteNode;

typedef struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext* context,
                                   TfLiteIntArray** execution_plan);
  TfLiteTensor* tensors;
  void* impl_;
  TfLiteStatus (*ResizeTensor)(struct TfLiteContext*, TfLiteTensor* tensor,
                               TfLiteIntArray* new_size);
  void (*ReportError)(struct TfLiteContext*, const char* msg, ...);
  TfLiteStatus (*AddTensors)(struct TfLiteContext*, int tensors_to_add,
                             int* first_new_tensor_index);
  TfLiteStatus (*GetNodeAndRegistration)(
      struct TfLiteContext*, int node_index, TfLiteNode** node,
      struct TfLiteRegistration** registration);
  // Takes the registration by value: our TfLiteRegistration must never be
  // smaller than the runtime's.
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(
      struct TfLiteContext*, struct TfLiteRegistration registration,
      const TfLiteIntArray* nodes_to_replace, struct TfLiteDelegate* delegate);
  int recommended_num_threads;
  TfLiteExternalContext* (*GetExternalContext)(struct TfLiteContext*,
                                               TfLiteExternalContextType);
  void (*SetExternalContext)(struct TfLiteContext*, TfLiteExternalContextType,
                             TfLiteExternalContext*);
  bool allow_fp32_relax_to_fp16;
  void* profiler;
  void* (*AllocatePersistentBuffer)(struct TfLiteContext* ctx, size_t bytes);
  TfLiteStatus (*AllocateBufferForEval)(struct TfLiteContext* ctx, size_t bytes,
                                        void** ptr);
  TfLiteStatus (*RequestScratchBufferInArena)(struct TfLiteContext* ctx,
                                              size_t bytes, int* buffer_idx);
  void* (*GetScratchBuffer)(struct TfLiteContext* ctx, int buffer_idx);
  TfLiteStatus (*ResizeTensorExplicit)(struct TfLiteContext* ctx,
                                       TfLiteTensor* tensor, int dims,
                                       const int* shape);
  TfLiteStatus (*PreviewDelegatePartitioning)(
      struct TfLiteContext* context, const TfLiteIntArray* nodes_to_replace,
      TfLiteDelegateParams** partition_params_array, int* num_partitions);
  // Null in the regular interpreter (set by micro runtimes only).
  TfLiteTensor* (*GetTensor)(const struct TfLiteContext* context,
                             int tensor_idx);
  TfLiteEvalTensor* (*GetEvalTensor)(const struct TfLiteContext* context,
                                     int tensor_idx);
  // Looks up a named entry of the model's metadata table; the bytes stay
  // owned by the runtime.
  TfLiteStatus (*GetModelMetadata)(const struct TfLiteContext* context,
                                   const char* name, const char** ptr,
                                   size_t* bytes);
  TfLiteStatus (*AcquireSubgraphContext)(struct TfLiteContext* context,
                                         int subgraph_index,
                                         struct TfLiteContext** acquired);
  TfLiteStatus (*ReleaseSubgraphContext)(struct TfLiteContext* context,
                                         int subgraph_index);
} TfLiteContext;

typedef struct TfLiteRegistration {
  void* (*init)(TfLiteContext* context, const char* buffer, size_t length);
  void (*free)(TfLiteContext* context, void* buffer);
  TfLiteStatus (*prepare)(TfLiteContext* context, TfLiteNode* node);
  TfLiteStatus (*invoke)(TfLiteContext* context, TfLiteNode* node);
  const char* (*profiling_string)(const TfLiteContext* context,
                                  const TfLiteNode* node);
  int32_t builtin_code;
  const char* custom_name;
  int version;
  TfLiteRegistrationExternal* registration_external;
  TfLiteAsyncKernel* (*async_kernel)(TfLiteContext* context, TfLiteNode* node);
  uint64_t inplace_operator;
} TfLiteRegistration;

typedef enum TfLiteDelegateFlags {
  kTfLiteDelegateFlagsNone = 0,
  // Lets the runtime resize tensors after delegation (Keras models have a
  // batch dimension of -1, so callers resize inputs routinely).
  kTfLiteDelegateFlagsAllowDynamicTensors = 1,
  kTfLiteDelegateFlagsRequirePropagatedShapes = 2,
  kTfLiteDelegateFlagsPerOperatorProfiling = 4,
} TfLiteDelegateFlags;

// Must be zero-initialised: a runtime that sees opaque_delegate_builder set
// and Prepare null treats the delegate as an opaque one.
typedef struct TfLiteDelegate {
  void* data_;
  TfLiteStatus (*Prepare)(TfLiteContext* context,
                          struct TfLiteDelegate* delegate);
  TfLiteStatus (*CopyFromBufferHandle)(TfLiteContext* context,
                                       struct TfLiteDelegate* delegate,
                                       TfLiteBufferHandle buffer_handle,
                                       TfLiteTensor* tensor);
  TfLiteStatus (*CopyToBufferHandle)(TfLiteContext* context,
                                     struct TfLiteDelegate* delegate,
                                     TfLiteBufferHandle buffer_handle,
                                     TfLiteTensor* tensor);
  void (*FreeBufferHandle)(TfLiteContext* context,
                           struct TfLiteDelegate* delegate,
                           TfLiteBufferHandle* handle);
  int64_t flags;
  struct TfLiteOpaqueDelegateBuilder* opaque_delegate_builder;
} TfLiteDelegate;

// What a delegate kernel's init() receives (cast from its `buffer`
// argument): one connected subset of the nodes the delegate claimed.
struct TfLiteDelegateParams {
  struct TfLiteDelegate* delegate;
  TfLiteIntArray* nodes_to_replace;
  TfLiteIntArray* input_tensors;
  TfLiteIntArray* output_tensors;
};

// ---- builtin_op_data.h subset ----------------------------------------------

typedef enum TfLitePadding {
  kTfLitePaddingUnknown = 0,
  kTfLitePaddingSame,
  kTfLitePaddingValid,
} TfLitePadding;

typedef enum TfLiteFusedActivation {
  kTfLiteActNone = 0,
  kTfLiteActRelu,
  kTfLiteActReluN1To1,
  kTfLiteActRelu6,
  kTfLiteActTanh,
  kTfLiteActSignBit,
  kTfLiteActSigmoid,
} TfLiteFusedActivation;

typedef struct TfLiteConvParams {
  TfLitePadding padding;
  int stride_width;
  int stride_height;
  TfLiteFusedActivation activation;
  int dilation_width_factor;
  int dilation_height_factor;
  // Absent before TFLite 2.15 (the runtime allocates 24 bytes there): never
  // read it without knowing the runtime's version.
  TfLiteType quantized_bias_type;
} TfLiteConvParams;

// Only the first three fields are read; later TFLite versions append more
// (asymmetric_quantize_inputs, quantized_bias_type).
typedef struct TfLiteFullyConnectedParams {
  TfLiteFusedActivation activation;
  int weights_format;  // an enum upstream; 0 = default (float or plain int8)
  bool keep_num_dims;
} TfLiteFullyConnectedParams;

typedef struct TfLiteDepthwiseConvParams {
  TfLitePadding padding;
  int stride_width;
  int stride_height;
  int depth_multiplier;
  TfLiteFusedActivation activation;
  int dilation_width_factor;
  int dilation_height_factor;
} TfLiteDepthwiseConvParams;

typedef struct TfLitePaddingValues {
  int width;
  int height;
  int width_offset;
  int height_offset;
} TfLitePaddingValues;

typedef struct TfLitePoolParams {
  TfLitePadding padding;
  int stride_width;
  int stride_height;
  int filter_width;
  int filter_height;
  TfLiteFusedActivation activation;
  struct {
    TfLitePaddingValues padding;
  } computed;
} TfLitePoolParams;

// Only the first field is read; later TFLite versions append more.
typedef struct TfLiteAddParams {
  TfLiteFusedActivation activation;
} TfLiteAddParams;

// ---- builtin_ops.h subset -------------------------------------------------

typedef enum TfLiteBuiltinOperator {
  kTfLiteBuiltinAdd = 0,
  kTfLiteBuiltinConv2d = 3,
  kTfLiteBuiltinDepthwiseConv2d = 4,
  kTfLiteBuiltinFullyConnected = 9,
  kTfLiteBuiltinMaxPool2d = 17,
  kTfLiteBuiltinCustom = 32,
  kTfLiteBuiltinPad = 34,
  kTfLiteBuiltinDelegate = 51,
  kTfLiteBuiltinDensify = 124,
} TfLiteBuiltinOperator;

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // COCOPIE_USE_UPSTREAM_TFLITE_HEADERS
#endif  // COCOPIE_DELEGATE_ABI_TFLITE_ABI_H_
