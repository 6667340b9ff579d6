// A fixture for tests of the whole router against the scripted workers of
// fake_workers.h: the suite writes a test model once (context 128); each
// test serves a fake prefill and a fake decode worker on loopback and may
// start a RouterServer over them.
#ifndef TANDEM_ROUTER_ROUTER_OVER_FAKES_TEST_H_
#define TANDEM_ROUTER_ROUTER_OVER_FAKES_TEST_H_

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "router/fake_workers.h"
#include "router/router_server.h"
#include "tests/test_model.h"

namespace tandem::testing {

class RouterOverFakesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    static int suites = 0;
    namespace fs = std::filesystem;
    model_dir_ = new fs::path(
        fs::path(::testing::TempDir()) /
        absl::StrCat("router_over_fakes_", getpid(), "_", suites++) / "tiny");
    fs::remove_all(model_dir_->parent_path());
    fs::create_directories(model_dir_->parent_path());
    TestModelOptions options;
    options.context = 128;
    ASSERT_TRUE(WriteTestModel(*model_dir_, options).ok());
  }

  static void TearDownTestSuite() {
    std::filesystem::remove_all(model_dir_->parent_path());
    delete model_dir_;
    model_dir_ = nullptr;
  }

  void SetUp() override {
    prefill_server_ = ServeFake(&prefill_);
    decode_server_ = ServeFake(&decode_);
  }

  void TearDown() override {
    if (router_ != nullptr) router_->Shutdown(absl::ZeroDuration());
    prefill_server_.server->Shutdown();
    if (decode_server_.server) decode_server_.server->Shutdown();
  }

  // Router options over the fakes: gRPC on a free loopback port, the
  // suite's model, the prefill fake and, if `with_decode`, the decode fake
  // listed statically.
  RouterOptions FakeOptions(bool with_decode) const {
    RouterOptions options;
    options.listen = "127.0.0.1:0";
    options.model_dir = model_dir_->string();
    options.prefill_workers = {prefill_server_.address};
    if (with_decode) options.decode_workers = {decode_server_.address};
    return options;
  }

  // Starts router_ with `options`; a failure fails the test.
  void StartRouterWith(const RouterOptions& options) {
    absl::StatusOr<std::unique_ptr<RouterServer>> router =
        RouterServer::Start(options);
    ASSERT_TRUE(router.ok()) << router.status();
    router_ = *std::move(router);
  }

  static inline std::filesystem::path* model_dir_ = nullptr;
  FakePrefillWorker prefill_;
  FakeDecodeWorker decode_;
  FakeServer prefill_server_;
  FakeServer decode_server_;
  std::unique_ptr<RouterServer> router_;
};

}  // namespace tandem::testing

#endif  // TANDEM_ROUTER_ROUTER_OVER_FAKES_TEST_H_
