#include "engine/checkpoint.h"

#include <fstream>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

absl::Status Invalid(const fs::path& file, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(file.string(), ": ", std::string(what)));
}

// A shard name must name a file directly inside the model directory.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

// Reads the index's "weight_map": tensor name -> shard file name.
absl::StatusOr<std::map<std::string, std::string>> ReadIndex(
    const fs::path& path) {
  TANDEM_ASSIGN_OR_RETURN(std::string text, ReadFileBytes(path));
  Json root = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Invalid(path, "not valid JSON");
  if (!root.is_object()) return Invalid(path, "top level is not an object");
  auto map = root.find("weight_map");
  if (map == root.end() || !map->is_object()) {
    return Invalid(path, "field 'weight_map' is missing or not an object");
  }
  std::map<std::string, std::string> weight_map;
  for (const auto& [tensor, file] : map->items()) {
    if (!file.is_string() || !IsPlainFileName(file.get<std::string>())) {
      return Invalid(path,
                     absl::StrCat("weight_map entry for tensor '", tensor,
                                  "' is not a plain file name: ", file.dump()));
    }
    weight_map[tensor] = file.get<std::string>();
  }
  return weight_map;
}

absl::Status AddTensors(const SafetensorsFile& file, CheckpointFiles& out) {
  for (const SafetensorsTensor& t : file.contents().tensors) {
    if (IsIgnoredTensor(t.name)) continue;
    auto [it, added] = out.tensors.emplace(t.name, CheckpointTensor{&t, &file});
    if (!added) {
      return Invalid(file.path(),
                     absl::StrCat("tensor '", t.name, "' is also in ",
                                  it->second.file->path().string()));
    }
  }
  return absl::OkStatus();
}

// Checks that the index and the shards agree, tensor for tensor.
absl::Status MatchIndex(const fs::path& index_path,
                        const std::map<std::string, std::string>& weight_map,
                        const CheckpointFiles& out) {
  for (const auto& [name, located] : out.tensors) {
    auto listed = weight_map.find(name);
    const std::string file = located.file->path().filename().string();
    if (listed == weight_map.end() || listed->second != file) {
      return Invalid(
          located.file->path(),
          absl::StrCat("holds tensor '", name, "', which ",
                       kWeightsIndexFileName, " does not list for this file"));
    }
  }
  for (const auto& [name, file] : weight_map) {
    if (IsIgnoredTensor(name)) continue;
    if (out.tensors.find(name) == out.tensors.end()) {
      return Invalid(index_path,
                     absl::StrCat("lists tensor '", name, "' in ", file,
                                  ", which does not contain it"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckpointFiles> OpenSharded(const fs::path& dir) {
  const fs::path index_path = dir / kWeightsIndexFileName;
  TANDEM_ASSIGN_OR_RETURN(auto weight_map, ReadIndex(index_path));
  std::set<std::string> shards;
  for (const auto& [tensor, file] : weight_map) shards.insert(file);
  CheckpointFiles out;
  out.source = index_path.string();
  for (const std::string& shard : shards) {
    TANDEM_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(dir / shard));
    out.files.push_back(std::move(file));
    TANDEM_RETURN_IF_ERROR(AddTensors(*out.files.back(), out));
  }
  TANDEM_RETURN_IF_ERROR(MatchIndex(index_path, weight_map, out));
  return out;
}

}  // namespace

absl::StatusOr<std::string> ReadFileBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      return absl::NotFoundError(absl::StrCat(path.string(), ": no such file"));
    }
    return Invalid(path, "cannot be opened");
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Invalid(path, "read failed");
  return text.str();
}

bool IsIgnoredTensor(std::string_view name) {
  return name.ends_with("rotary_emb.inv_freq");
}

absl::StatusOr<CheckpointFiles> OpenCheckpointFiles(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / kWeightsIndexFileName, ec)) return OpenSharded(dir);
  const fs::path single = dir / kSingleWeightsFileName;
  if (!fs::exists(single, ec)) {
    return absl::NotFoundError(absl::StrCat(dir.string(), ": neither ",
                                            kSingleWeightsFileName, " nor ",
                                            kWeightsIndexFileName, " exists"));
  }
  CheckpointFiles out;
  out.source = single.string();
  TANDEM_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(single));
  out.files.push_back(std::move(file));
  TANDEM_RETURN_IF_ERROR(AddTensors(*out.files.back(), out));
  return out;
}

}  // namespace tandem
