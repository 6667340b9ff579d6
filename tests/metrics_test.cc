// Prometheus /metrics on every binary of a cluster in processes: the
// router (on its --http_listen server), and the prefill, decode and store
// nodes (--metrics_listen 127.0.0.1:0 with --metrics_address_file) are
// scraped before and after Generate requests, and the counters each
// request must move are checked, prefix reuse on a repeated prompt
// included.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "service/http_server.h"
#include "tests/cluster_test_util.h"

namespace tandem::testing {
namespace {

ModelEnvironment* const environment = RegisterModelEnvironment();

// The value of the sample `series` (a metric name with its labels exactly
// as the text writes them, e.g. `x_total{rpc="get"}`) in Prometheus text
// format `text`; nullopt if it is absent or its value is not a number.
std::optional<double> SampleValue(const std::string& text,
                                  const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, series) ||
        !absl::ConsumePrefix(&line, " ")) {
      continue;
    }
    // A timestamp may follow the value.
    const absl::string_view value = line.substr(0, line.find(' '));
    double parsed;
    if (value == "+Inf") return std::numeric_limits<double>::infinity();
    if (!absl::SimpleAtod(value, &parsed)) return std::nullopt;
    return parsed;
  }
  return std::nullopt;
}

TEST(SampleValueTest, FindsTheSeriesByExactNameAndLabels) {
  const std::string text =
      "# HELP x_total Things\n"
      "# TYPE x_total counter\n"
      "x_total{rpc=\"get\"} 3\n"
      "x_total{rpc=\"getmany\"} 7\n"
      "x_total_extra 9\n"
      "x_total 11 1700000000\n"
      "y_seconds_bucket{le=\"+Inf\"} 2.5e-05\n";
  EXPECT_EQ(SampleValue(text, "x_total{rpc=\"get\"}"), 3);
  EXPECT_EQ(SampleValue(text, "x_total{rpc=\"getmany\"}"), 7);
  EXPECT_EQ(SampleValue(text, "x_total"), 11);
  EXPECT_EQ(SampleValue(text, "y_seconds_bucket{le=\"+Inf\"}"), 2.5e-05);
  EXPECT_EQ(SampleValue(text, "x_total{rpc=\"put\"}"), std::nullopt);
  EXPECT_EQ(SampleValue(text, "x"), std::nullopt);
}

TEST(SampleValueTest, RejectsAValueThatIsNotANumber) {
  EXPECT_EQ(SampleValue("x_total lots\n", "x_total"), std::nullopt);
}

// Reads the address a server wrote to `path`, waiting for it to appear.
std::string ReadAddressFile(const std::string& path) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    std::ifstream in(path);
    std::string address;
    if (in >> address && !address.empty()) return address;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ADD_FAILURE() << "no address in " << path;
  return "";
}

std::string Scrape(const std::string& address) {
  std::string host;
  int port = 0;
  EXPECT_TRUE(ParseHostPort(address, "address", &host, &port).ok());
  httplib::Client client(host, port);
  client.set_read_timeout(5, 0);
  const httplib::Result result = client.Get("/metrics");
  if (!result) {
    ADD_FAILURE() << "scraping " << address << " failed";
    return "";
  }
  EXPECT_EQ(result->status, 200) << address;
  return result->body;
}

// Series of one node, read at one time; an absent series reads as 0.
struct Snapshot {
  std::string text;
  double operator[](const std::string& series) const {
    return SampleValue(text, series).value_or(0);
  }
};

class MetricsTest : public ClusterTest {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("tandem_metrics_test_", getpid());
    std::filesystem::create_directories(dir_);
    ServingClusterOptions options;
    options.router_flags = {"--http_listen=127.0.0.1:0",
                            "--http_address_file=" + File("router")};
    options.prefill_flags = MetricsFlags("prefill");
    options.decode_flags = MetricsFlags("decode");
    options.store_flags = MetricsFlags("store");
    StartCluster(options);
    for (const char* node : {"router", "prefill", "decode", "store"}) {
      addresses_[node] = ReadAddressFile(File(node));
    }
  }

  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string File(const std::string& node) const {
    return (dir_ / (node + ".address")).string();
  }
  std::vector<std::string> MetricsFlags(const std::string& node) const {
    return {"--metrics_listen=127.0.0.1:0",
            "--metrics_address_file=" + File(node)};
  }

  Snapshot Read(const std::string& node) {
    return Snapshot{Scrape(addresses_.at(node))};
  }

  // Scrapes `node` until `series` has moved by at least `delta` from
  // `before` (counters a node updates just after it answers), or 10 s.
  Snapshot AwaitDelta(const std::string& node, const Snapshot& before,
                      const std::string& series, double delta) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    Snapshot now = Read(node);
    while (now[series] - before[series] < delta && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      now = Read(node);
    }
    return now;
  }

  std::filesystem::path dir_;
  std::map<std::string, std::string> addresses_;
};

double Outcomes(const Snapshot& router) {
  return router["tandem_router_requests_total{outcome=\"ok_stop\"}"] +
         router["tandem_router_requests_total{outcome=\"ok_length\"}"];
}

TEST_F(MetricsTest, EveryNodeCountsARequestAndItsPrefixReuse) {
  const Snapshot router0 = Read("router");
  const Snapshot prefill0 = Read("prefill");
  const Snapshot decode0 = Read("decode");
  const Snapshot store0 = Read("store");
  // Gauges set before any request.
  EXPECT_EQ(router0["tandem_router_workers{role=\"prefill\"}"], 1);
  EXPECT_GT(prefill0["tandem_prefill_kv_blocks_free"], 0);
  EXPECT_GT(decode0["tandem_decode_kv_blocks_free"], 0);

  // 95 bytes and BOS: six full blocks of 16 tokens.
  const v1::GenerateRequest request = Greedy(std::string(95, 'm'), 12);
  const Completion cold = Remote(*stub_, request);
  ASSERT_TRUE(cold.status.ok()) << cold.status;
  const int completion = cold.usage.completion_tokens();
  ASSERT_GT(completion, 0);

  const Snapshot router1 = Read("router");
  EXPECT_EQ(Outcomes(router1) - Outcomes(router0), 1);
  EXPECT_EQ(router1["tandem_router_generated_tokens_total"] -
                router0["tandem_router_generated_tokens_total"],
            completion);
  EXPECT_EQ(router1["tandem_router_time_to_first_token_seconds_count"] -
                router0["tandem_router_time_to_first_token_seconds_count"],
            1);
  EXPECT_EQ(router1["tandem_router_queue_time_seconds_count"] -
                router0["tandem_router_queue_time_seconds_count"],
            1);
  EXPECT_EQ(router1["tandem_router_requests_in_flight"], 0);

  const Snapshot prefill1 = Read("prefill");
  EXPECT_EQ(prefill1["tandem_prefill_computed_tokens_total"] -
                prefill0["tandem_prefill_computed_tokens_total"],
            96);
  EXPECT_GT(prefill1["tandem_prefill_batch_tokens_count"],
            prefill0["tandem_prefill_batch_tokens_count"]);

  const std::string decoded = "tandem_decode_generated_tokens_total";
  const Snapshot decode1 = AwaitDelta("decode", decode0, decoded, completion);
  EXPECT_EQ(decode1[decoded] - decode0[decoded], completion);
  EXPECT_GT(decode1["tandem_decode_fetched_blocks_total"],
            decode0["tandem_decode_fetched_blocks_total"]);

  const std::string bytes_in = "tandem_kvstore_bytes_in_total";
  const Snapshot store1 = AwaitDelta("store", store0, bytes_in, 1);
  EXPECT_GT(store1[bytes_in], store0[bytes_in]);
  EXPECT_GT(store1["tandem_kvstore_blocks_stored"], 0);
  EXPECT_GT(store1["tandem_kvstore_calls_total{rpc=\"put\"}"], 0);

  // The same prompt again: its full blocks come from the store.
  const Completion warm = Remote(*stub_, request);
  ASSERT_TRUE(warm.status.ok()) << warm.status;
  ASSERT_GT(warm.usage.cached_tokens(), 0);
  const Snapshot router2 = Read("router");
  EXPECT_EQ(router2["tandem_router_cached_tokens_total"] -
                router1["tandem_router_cached_tokens_total"],
            warm.usage.cached_tokens());
  const Snapshot prefill2 = Read("prefill");
  EXPECT_EQ(prefill2["tandem_prefill_cached_tokens_total"] -
                prefill1["tandem_prefill_cached_tokens_total"],
            warm.usage.cached_tokens());
  EXPECT_EQ(prefill2["tandem_prefill_prefix_lookups_total{result=\"hit\"}"] -
                prefill1["tandem_prefill_prefix_lookups_total{result=\"hit\"}"],
            1);
}

}  // namespace
}  // namespace tandem::testing
