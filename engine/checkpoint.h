// The weight files of a Hugging Face model directory: `model.safetensors`,
// or the shards that `model.safetensors.index.json` lists. Used by
// ModelWeights::Load; separate so that the file rules are tested on their own.
#ifndef TANDEM_ENGINE_CHECKPOINT_H_
#define TANDEM_ENGINE_CHECKPOINT_H_

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/safetensors.h"

namespace tandem {

inline constexpr char kConfigFileName[] = "config.json";
inline constexpr char kSingleWeightsFileName[] = "model.safetensors";
inline constexpr char kWeightsIndexFileName[] = "model.safetensors.index.json";

// The whole content of `path`. NotFound if it does not exist,
// InvalidArgument naming the file if it cannot be read.
absl::StatusOr<std::string> ReadFileBytes(const std::filesystem::path& path);

// True for buffers a checkpoint may carry that Tandem recomputes instead
// (`*.rotary_emb.inv_freq`); they are never reported as unexpected.
bool IsIgnoredTensor(std::string_view name);

// A tensor of the checkpoint and the file that holds it.
struct CheckpointTensor {
  const SafetensorsTensor* tensor;  // points into `file`'s contents
  const SafetensorsFile* file;
};

// The opened, parsed weight files of one directory. Move-only.
struct CheckpointFiles {
  // Every weight file, in file-name order.
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  // Every tensor by name, ignored buffers excluded.
  std::map<std::string, CheckpointTensor> tensors;
  // Where tensors were looked for, for errors: the single file's path or
  // the index's path.
  std::string source;
};

// Opens the weight files of `dir`. With an index, its "weight_map" (tensor
// name -> shard file name) must match the shards exactly: every listed
// tensor is in the listed file, and every tensor in a shard is listed for
// that shard. Returns NotFound when neither `model.safetensors` nor the
// index exists, or a listed shard is missing; InvalidArgument, naming the
// file and the fault, for a malformed index (not JSON, no "weight_map"
// object, a shard name that is not a plain file name in `dir`), a malformed
// safetensors file, a mismatch between index and shards, or a tensor name
// that appears twice.
absl::StatusOr<CheckpointFiles> OpenCheckpointFiles(
    const std::filesystem::path& dir);

}  // namespace tandem

#endif  // TANDEM_ENGINE_CHECKPOINT_H_
