#include "router/api_key.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path WriteFile(const std::string& name, const std::string& contents) {
  const fs::path path = fs::path(::testing::TempDir()) /
                        absl::StrCat("api_key_test_", getpid(), "_", name);
  std::ofstream(path) << contents;
  return path;
}

TEST(ApiKeyTest, LoadsTheFlagOrTheTrimmedFile) {
  EXPECT_EQ(*LoadApiKey("", ""), "");
  EXPECT_EQ(*LoadApiKey("abc", ""), "abc");
  const fs::path file = WriteFile("key", "  k-123\n");
  EXPECT_EQ(*LoadApiKey("", file.string()), "k-123");
  fs::remove(file);
}

TEST(ApiKeyTest, RejectsBadConfigurationNamingIt) {
  const fs::path file = WriteFile("both", "k");
  EXPECT_EQ(LoadApiKey("a", file.string()).status().code(),
            absl::StatusCode::kInvalidArgument);
  const absl::Status missing = LoadApiKey("", "/nonexistent/key").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("/nonexistent/key"));
  const fs::path empty = WriteFile("empty", " \n");
  const absl::Status blank = LoadApiKey("", empty.string()).status();
  EXPECT_EQ(blank.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(blank.message(), HasSubstr(empty.string()));
  EXPECT_EQ(LoadApiKey("a b", "").status().code(),
            absl::StatusCode::kInvalidArgument);
  fs::remove(file);
  fs::remove(empty);
}

TEST(ApiKeyTest, AcceptsOnlyTheBearerKey) {
  EXPECT_TRUE(CheckAuthorization(std::nullopt, "").ok());
  EXPECT_TRUE(CheckAuthorization("Bearer anything", "").ok());
  EXPECT_TRUE(CheckAuthorization("Bearer k-123", "k-123").ok());
  EXPECT_TRUE(CheckAuthorization("bearer k-123", "k-123").ok());
  for (const char* wrong : {"", "k-123", "Basic k-123", "Bearer k-12",
                            "Bearer k-1234", "Bearer K-123", "Bearer "}) {
    EXPECT_EQ(CheckAuthorization(wrong, "k-123").code(),
              absl::StatusCode::kUnauthenticated)
        << wrong;
  }
  EXPECT_EQ(CheckAuthorization(std::nullopt, "k-123").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(BearerValue("k"), "Bearer k");
}

}  // namespace
}  // namespace tandem
