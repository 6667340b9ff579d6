#include "service/http_server.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "service/metrics.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;

TEST(ParseHostPortTest, AcceptsHostAndPort) {
  std::string host;
  int port = -1;
  ASSERT_TRUE(ParseHostPort("127.0.0.1:8080", "x", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 8080);
  ASSERT_TRUE(ParseHostPort("[::1]:0", "x", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 0);
}

TEST(ParseHostPortTest, RejectsMalformedAddresses) {
  std::string host;
  int port = 0;
  for (const char* bad :
       {"", "8080", ":80", "host:", "host:http", "host:65536", "host:-1"}) {
    const absl::Status status =
        ParseHostPort(bad, "--http_listen", &host, &port);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(status.message(), HasSubstr("--http_listen")) << bad;
  }
}

TEST(HttpServerTest, ServesRoutesOnAPickedPortAndStops) {
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  auto server = HttpServer::Start(options, [](httplib::Server& s) {
    s.Get("/ping", [](const httplib::Request&, httplib::Response& r) {
      r.set_content("pong", "text/plain");
    });
  });
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);
  EXPECT_EQ((*server)->address(),
            "127.0.0.1:" + std::to_string((*server)->port()));
  httplib::Client client("127.0.0.1", (*server)->port());
  auto reply = client.Get("/ping");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "pong");
  EXPECT_EQ(client.Get("/nothing")->status, 404);
  (*server)->Stop();
  (*server)->Stop();  // idempotent
  EXPECT_FALSE(client.Get("/ping"));
}

TEST(HttpServerTest, RejectsBadOptions) {
  HttpServerOptions options;
  options.listen = "127.0.0.1";
  EXPECT_EQ(HttpServer::Start(options, [](httplib::Server&) {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.listen = "127.0.0.1:0";
  options.threads = 0;
  EXPECT_EQ(HttpServer::Start(options, [](httplib::Server&) {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HttpServerTest, ReportsAPortInUse) {
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  auto first = HttpServer::Start(options, [](httplib::Server&) {});
  ASSERT_TRUE(first.ok());
  options.listen = (*first)->address();
  EXPECT_EQ(HttpServer::Start(options, [](httplib::Server&) {}).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(MetricsServerTest, ServesTheRegistryAsPrometheusText) {
  prometheus::Registry registry;
  auto& requests = prometheus::BuildCounter()
                       .Name("tandem_test_requests_total")
                       .Help("Requests seen by the test.")
                       .Register(registry)
                       .Add({{"outcome", "ok"}});
  requests.Increment(3);
  auto server = StartMetricsServer("127.0.0.1:0", registry);
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  auto reply = client.Get("/metrics");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_THAT(reply->get_header_value("Content-Type"),
              HasSubstr("version=0.0.4"));
  EXPECT_THAT(reply->body,
              HasSubstr("tandem_test_requests_total{outcome=\"ok\"} 3"));
  EXPECT_THAT(reply->body, HasSubstr("# TYPE tandem_test_requests_total "
                                     "counter"));
}

TEST(MetricsServerTest, EmptyListenStartsNothing) {
  prometheus::Registry registry;
  auto server = StartMetricsServer("", registry);
  ASSERT_TRUE(server.ok());
  EXPECT_EQ(*server, nullptr);
}

TEST(MetricsServerTest, ServeMetricsWritesTheBoundAddress) {
  prometheus::Registry registry;
  const std::filesystem::path file =
      std::filesystem::path(::testing::TempDir()) /
      ("metrics_address_" + std::to_string(getpid()));
  auto endpoint = ServeMetrics("127.0.0.1:0", file.string(), registry);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  ASSERT_NE(endpoint->server, nullptr);
  EXPECT_EQ(endpoint->address,
            "127.0.0.1:" + std::to_string(endpoint->server->port()));
  std::ifstream in(file);
  std::string written;
  std::getline(in, written);
  EXPECT_EQ(written, endpoint->address);
  std::filesystem::remove(file);

  auto none = ServeMetrics("", "", registry);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->server, nullptr);
  EXPECT_EQ(none->address, "");
}

}  // namespace
}  // namespace tandem
