#include "service/http_server.h"

#include <sys/socket.h>

#include <chrono>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem {

absl::Status ParseHostPort(const std::string& address, const char* what,
                           std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  int value = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &value) || value < 0 ||
      value > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must be host:port with a port in [0, 65535], got '", address,
        "'"));
  }
  *host = address.substr(0, colon);
  // "[::1]:80": httplib takes the host without brackets.
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  *port = value;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HttpServerOptions& options,
    const std::function<void(httplib::Server&)>& routes) {
  std::string host;
  int port = 0;
  absl::Status parsed =
      ParseHostPort(options.listen, "HTTP listen address", &host, &port);
  if (!parsed.ok()) return parsed;
  if (options.threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "HTTP server threads must be at least 1, got ", options.threads));
  }
  std::unique_ptr<HttpServer> http(new HttpServer());
  httplib::Server& server = http->server_;
  const int threads = options.threads;
  server.new_task_queue = [threads] {
    return new httplib::ThreadPool(threads);
  };
  server.set_read_timeout(options.read_timeout_s, 0);
  server.set_write_timeout(options.write_timeout_s, 0);
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which
  // would let a second server bind a port that is already serving.
  server.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  routes(server);
  const int bound = port == 0 ? server.bind_to_any_port(host)
                              : (server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", options.listen));
  }
  http->port_ = bound;
  http->address_ = absl::StrCat(
      options.listen.substr(0, options.listen.rfind(':')), ":", bound);
  http->thread_ = std::thread([s = &http->server_] { s->listen_after_bind(); });
  // Stop() does nothing to a server whose loop has not started yet, so
  // Start returns only once it has.
  while (!server.is_running() && !http->ended_.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return http;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (!thread_.joinable()) return;
  server_.stop();
  thread_.join();
}

}  // namespace tandem
