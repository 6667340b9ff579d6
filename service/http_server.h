// The HTTP/1.1 side of a Tandem binary: Prometheus /metrics on every server,
// and the router's OpenAI-compatible API. A thin owner of a cpp-httplib
// server that binds host:port (port 0 picks a free one), serves from a pool
// of threads of its own and stops cleanly.
//
// Handlers run on the pool's threads and may block (a streamed completion
// holds its thread until the stream ends), so the pool is sized for the
// most requests that may be in flight at once.
#ifndef TANDEM_SERVICE_HTTP_SERVER_H_
#define TANDEM_SERVICE_HTTP_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "httplib.h"

namespace tandem {

struct HttpServerOptions {
  // host:port; port 0 picks a free port.
  std::string listen;
  // Requests handled at once; more wait for a thread.
  int threads = 8;
  // Longest a connection may sit idle between requests or mid-read.
  int read_timeout_s = 30;
  int write_timeout_s = 30;
};

class HttpServer {
 public:
  // Calls `routes` to register the handlers, then binds and starts serving.
  // InvalidArgument if `listen` is not host:port or `threads` is below 1;
  // Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const HttpServerOptions& options,
      const std::function<void(httplib::Server&)>& routes);

  // Stops if Stop was not called.
  ~HttpServer();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound address ("127.0.0.1:8080").
  const std::string& address() const { return address_; }
  int port() const { return port_; }

  // Stops accepting connections, waits for the handlers in progress (a
  // streaming handler must notice on its own that it should end) and joins
  // the serving thread. Idempotent.
  void Stop();

 private:
  HttpServer() = default;

  httplib::Server server_;
  std::thread thread_;
  std::atomic<bool> ended_{false};  // the serving loop returned
  std::string address_;
  int port_ = 0;
};

// Splits "host:port" into its parts; InvalidArgument naming `what` (for
// example "--http_listen") when it is not of that form or the port is not
// a number in [0, 65535].
absl::Status ParseHostPort(const std::string& address, const char* what,
                           std::string* host, int* port);

}  // namespace tandem

#endif  // TANDEM_SERVICE_HTTP_SERVER_H_
