// Shape of one KV cache block, shared by the paged cache, the block codec and
// the attention kernels.
//
// A block holds K and V for `block_size` consecutive tokens of one sequence
// across all layers, laid out [layer][k|v][kv_head][token][head_dim] in F32:
// for each layer, first the keys of every KV head, then the values; within
// one (layer, k|v, head) plane, token t's head_dim floats start at
// t * head_dim. Token t of a sequence lives in block t / block_size, slot
// t % block_size.
#ifndef TANDEM_ENGINE_KV_LAYOUT_H_
#define TANDEM_ENGINE_KV_LAYOUT_H_

#include <cstddef>

namespace tandem {

struct KvLayout {
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 16;  // tokens per block

  friend bool operator==(const KvLayout&, const KvLayout&) = default;

  // True if every dimension is positive and a block's size in bytes fits in
  // size_t. Every other member function REQUIRES IsValid().
  bool IsValid() const {
    if (num_layers <= 0 || num_kv_heads <= 0 || head_dim <= 0 ||
        block_size <= 0) {
      return false;
    }
    size_t bytes = sizeof(float) * 2;
    for (int dim : {num_layers, num_kv_heads, head_dim, block_size}) {
      if (__builtin_mul_overflow(bytes, static_cast<size_t>(dim), &bytes)) {
        return false;
      }
    }
    return true;
  }

  // Floats in one [token][head_dim] plane of one head.
  size_t HeadFloats() const {
    return static_cast<size_t>(block_size) * head_dim;
  }
  // Number of (layer, k|v, head) planes in a block.
  size_t NumPlanes() const {
    return static_cast<size_t>(num_layers) * 2 * num_kv_heads;
  }
  size_t BlockFloats() const { return NumPlanes() * HeadFloats(); }
  size_t BlockBytes() const { return BlockFloats() * sizeof(float); }
  // Offset in floats of the [token][head_dim] plane of (layer, k|v, head).
  size_t PlaneOffset(int layer, int is_value, int head) const {
    return ((static_cast<size_t>(layer) * 2 + is_value) * num_kv_heads + head) *
           HeadFloats();
  }
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_KV_LAYOUT_H_
