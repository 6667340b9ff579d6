// Test-only helpers for the weights tests: a self-deleting temporary
// directory, whole-file writes and hand-made safetensors bytes.
#ifndef TANDEM_ENGINE_WEIGHTS_TEST_UTIL_H_
#define TANDEM_ENGINE_WEIGHTS_TEST_UTIL_H_

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "gtest/gtest.h"

namespace tandem::testing {

// A fresh directory under the temp dir, removed with its contents when this
// goes out of scope.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "tandem_weights_XXXXXX")
            .string();
    if (mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed for " << pattern;
    }
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Writes `bytes` to `path`, replacing it.
inline void WriteFile(const std::filesystem::path& path,
                      std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) ADD_FAILURE() << "cannot write " << path;
}

// A safetensors file made by hand: the 8-byte little-endian length of
// `header`, then `header` itself, then `data`.
inline std::string RawSafetensors(std::string_view header,
                                  std::string_view data) {
  std::string out;
  for (int i = 0; i < 8; ++i) {
    out.push_back(
        static_cast<char>((uint64_t{header.size()} >> (8 * i)) & 0xff));
  }
  out.append(header);
  out.append(data);
  return out;
}

}  // namespace tandem::testing

#endif  // TANDEM_ENGINE_WEIGHTS_TEST_UTIL_H_
