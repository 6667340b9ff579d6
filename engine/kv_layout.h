// Shape of one KV cache block, shared by the paged cache, the block codec and
// the attention kernels.
//
// A block holds K and V for `block_size` consecutive tokens of one sequence
// across all layers, laid out [layer][k|v][kv_head][token][head_dim] in F32.
#ifndef TANDEM_ENGINE_KV_LAYOUT_H_
#define TANDEM_ENGINE_KV_LAYOUT_H_

#include <cstddef>

namespace tandem {

struct KvLayout {
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 16;  // tokens per block

  // Floats in one [token][head_dim] plane of one head.
  size_t HeadFloats() const {
    return static_cast<size_t>(block_size) * head_dim;
  }
  size_t BlockFloats() const {
    return static_cast<size_t>(num_layers) * 2 * num_kv_heads * HeadFloats();
  }
  size_t BlockBytes() const { return BlockFloats() * sizeof(float); }
  // Offset in floats of the [token][head_dim] plane of (layer, k|v, head).
  size_t PlaneOffset(int layer, int is_value, int head) const {
    return ((static_cast<size_t>(layer) * 2 + is_value) * num_kv_heads +
            head) *
           HeadFloats();
  }
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_KV_LAYOUT_H_
